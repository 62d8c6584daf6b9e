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
from worker.domain.report_records import records
from worker.domain.reports import SECTIONS, Report, check_by, summarize
from worker.errors import PermanentError
from worker.store.db import SessionFactory
from worker.store.report_queries import Note, fact_lines, messages, notes_of

DEFAULT_SPAN = timedelta(days=30)


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
    try:
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
    end = when(until, now, zone_info, "until") if until else now
    start = when(since, now, zone_info, "since") if since else end - DEFAULT_SPAN
    if start >= end:
        raise ReportError(f"the period is empty: since {start.isoformat()} is not before until")
    try:
        groups = check_by(b.strip() for part in by for b in part.split(",") if b.strip())
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    return Asked(start, end, groups, tz)


def sla_report(readers: SessionFactory, asked: Asked) -> Report:
    """Every table of the report for the period, from the facts recorded on the timeline."""
    with readers() as session:
        lines = fact_lines(session, asked.since, asked.until)
        sent = messages(session, asked.since, asked.until)
    clocks, cycles = records(lines, asked.since, asked.until)
    return summarize(clocks, cycles, sent, asked.since, asked.until, asked.by, asked.tz)


def sla_reports(
    readers: SessionFactory, asked: Asked, groupings: Sequence[tuple[str, ...]]
) -> list[Report]:
    """The report under each of several groupings (`asked.by` ignored), from one read of the
    store: the console's charts."""
    with readers() as session:
        lines = fact_lines(session, asked.since, asked.until)
        sent = messages(session, asked.since, asked.until)
    clocks, cycles = records(lines, asked.since, asked.until)
    return [
        summarize(clocks, cycles, sent, asked.since, asked.until, by, asked.tz) for by in groupings
    ]


def breached_notes(readers: SessionFactory, asked: Asked) -> list[Note]:
    """The notes of the issues with a clock that started in the period and breached."""
    with readers() as session:
        lines = fact_lines(session, asked.since, asked.until)
        clocks, _ = records(lines, asked.since, asked.until)
        breached = {c.issue for c in clocks if c.breached}
        return notes_of(session, breached) if breached else []


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
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()
