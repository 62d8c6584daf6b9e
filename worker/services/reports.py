"""SLA reports over a period (docs/reports.md): read the store, count with the domain, and lay
the tables out as JSON or CSV for the CLI, the API and the console."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.durations import parse_duration
from worker.domain.report_records import MessageRecord, records
from worker.domain.reports import SECTIONS, Report, check_by, summarize
from worker.errors import PermanentError
from worker.store.db import SessionFactory
from worker.store.report_queries import Note, fact_lines, messages, notes_of

DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=400)  # the longest period a report reads (docs/reports.md)...
MAX_SPAN_BY_MONTH = timedelta(days=3660)  # ...unless grouped by month: ten years
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads these as a formula


class ReportError(PermanentError):
    """A report asked for with a bad period, group or zone: the message says which."""


@dataclass(frozen=True, slots=True)
class Asked:
    """A report's period, groups and zone, checked."""

    since: datetime
    until: datetime
    by: tuple[str, ...]
    tz: str


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(
            f"unknown time zone {tz!r}: give an IANA name, e.g. Europe/Paris"
        ) from None


def when(text: str, now: datetime, tz: ZoneInfo, name: str) -> datetime:
    """`30d` (that long before now), an ISO date (its midnight in `tz`) or date and time."""
    text = text.strip()
    try:  # an OverflowError (too long ago) goes up: `ask` makes it a ReportError
        return now - parse_duration(text)
    except (ValueError, TypeError):
        pass
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day, time(), tzinfo=tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(
            f"--{name} {text!r}: give e.g. 30d, 2026-03-01 or 2026-03-01T08:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def ask(
    since: str | None, until: str | None, by: list[str] | tuple[str, ...], tz: str, now: datetime
) -> Asked:
    """The period [since, until) (default: the last 30 days up to now), the groups, the zone."""
    zone_info = zone(tz)
    try:
        groups = check_by(b.strip() for part in by for b in part.split(",") if b.strip())
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    try:  # e.g. since=99999999d: before year 1, OverflowError
        end = when(until, now, zone_info, "until") if until else now
        start = when(since, now, zone_info, "since") if since else end - DEFAULT_SPAN
        empty = start >= end
        span = end - start
    except (ArithmeticError, ValueError):
        raise ReportError(
            f"the period since {since!r} until {until or 'now'!r} is out of range"
        ) from None
    if empty:
        raise ReportError(f"the period is empty: since {start.isoformat()} is not before until")
    longest = MAX_SPAN_BY_MONTH if "month" in groups else MAX_SPAN
    if span > longest:
        raise ReportError(
            f"the period is {span.days} days: at most {longest.days} days"
            + ("" if "month" in groups else f" ({MAX_SPAN_BY_MONTH.days} grouped by month)")
        )
    return Asked(start, end, groups, tz)


def sla_report(readers: SessionFactory, asked: Asked) -> Report:
    """Every table of the report for the period, from the facts recorded on the timeline."""
    [report] = sla_reports(readers, asked, [asked.by])
    return report


def sla_reports(
    readers: SessionFactory, asked: Asked, groupings: Sequence[tuple[str, ...]]
) -> list[Report]:
    """The report under each of several groupings (`asked.by` ignored), from one read of the
    store: the console's charts."""
    found, _ = sla_reports_and_notes(readers, asked, groupings, notes=False)
    return found


def breached_notes(readers: SessionFactory, asked: Asked) -> list[Note]:
    """The notes of the issues with a clock that started in the period and breached."""
    _, notes = sla_reports_and_notes(readers, asked, [], reports=False)
    return notes


def sla_reports_and_notes(
    readers: SessionFactory,
    asked: Asked,
    groupings: Sequence[tuple[str, ...]],
    *,
    reports: bool = True,
    notes: bool = True,
) -> tuple[list[Report], list[Note]]:
    """The report under each grouping and the breached issues' notes, from one read of the
    period's facts (`fact_lines`, the costly part): what a caller wanting both should ask."""
    sent: list[MessageRecord] = []
    found: list[Note] = []
    with readers() as session:
        lines = fact_lines(session, asked.since, asked.until)
        if reports:
            sent = messages(session, asked.since, asked.until)
        clocks, cycles = records(lines, asked.since, asked.until)
        if notes:
            breached = {c.issue for c in clocks if c.breached}
            found = notes_of(session, breached) if breached else []
    tables = [
        summarize(clocks, cycles, sent, asked.since, asked.until, by, asked.tz) for by in groupings
    ]
    return tables, found


def as_json(report: Report, notes: list[Note] | None = None) -> dict[str, Any]:
    """The report as a JSON object: its period, groups, zone, and each table's rows."""
    body: dict[str, Any] = {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "tz": report.tz,
        "by": list(report.by),
        **report.sections(),
    }
    if notes is not None:
        body["notes"] = [
            {"issue": n.issue, "at": n.at.isoformat(), "author": n.author, "text": n.text}
            for n in notes
        ]
    return body


def as_csv(report: Report, section: str = "targets") -> str:
    """One table of the report as CSV (a header row, then a row per group)."""
    if section not in SECTIONS:
        raise ReportError(f"no section {section!r}: choose from {', '.join(SECTIONS)}")
    rows = report.sections()[section]
    out = io.StringIO()
    columns = list(rows[0]) if rows else []
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(v) for k, v in row.items()})
    return out.getvalue()


def cell(value: object) -> object:
    """A CSV cell: "" for None; text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`,
    tab, CR first: ticket data such as labels, assignees, titles) behind a `'`. Only text: a
    number, negative included, stays a number. A CR in text is written as a newline, which the
    writer quotes (with `lineterminator="\n"` it would leave a bare CR that ends the row)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")
