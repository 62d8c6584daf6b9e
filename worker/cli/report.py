"""`escalator report` (SLA figures over a period) and `escalator note` (a post-resolution note)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from config.settings import Settings
from worker.bootstrap import readers, store
from worker.cli.failures import UNREACHABLE
from worker.domain.clock import SystemClock
from worker.domain.reports import SECTIONS, Report
from worker.services.notes import NoteRefused, add_note
from worker.services.reports import (
    ReportError,
    as_csv,
    as_json,
    ask,
    breached_notes,
    sla_report,
)
from worker.services.uow import Units
from worker.store.report_queries import Note

console = Console()
err = Console(stderr=True, soft_wrap=True)

TITLES = {
    "targets": "SLA targets (time in each target's own time)",
    "cycles": "Issue cycles (wall time)",
    "tiers": "Tiers: reached, escalated to, ended at",
    "notifications": "Notifications by channel and kind",
    "lateness": "Escalation lateness",
}


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    columns = list(rows[0]) if rows else ["(nothing recorded in the period)"]
    for name in columns:
        numeric = bool(rows) and isinstance(rows[0][name], int | float)
        table.add_column(name.replace("_", " "), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(row[name]) for name in columns))
    return table


def _print_tables(report: Report, notes: list[Note] | None) -> None:
    console.print(
        f"[bold]SLA report[/bold] {report.since.isoformat(timespec='seconds')} → "
        f"{report.until.isoformat(timespec='seconds')} ({report.tz})"
        + (f", by {', '.join(report.by)}" if report.by else "")
    )
    for name, rows in report.sections().items():
        console.print(_table(TITLES[name], rows))
    if notes is not None:
        table = Table(title="Notes of breached issues", title_justify="left")
        for column in ("Issue", "When", "Author", "Note"):
            table.add_column(column, overflow="fold")
        for n in notes:
            table.add_row(n.issue, n.at.isoformat(timespec="seconds"), n.author, n.text)
        console.print(table)


def report(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Start: 30d (before now), 2026-03-01, or a date and time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (excluded); default now.")] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            help="Group by severity, source, policy, tier, assignee, label, day, week or month "
            "(repeat it, or commas)."
        ),
    ] = None,
    tz: Annotated[str, typer.Option(help="IANA zone of dates and days/weeks/months.")] = "UTC",
    format: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.TABLE,
    section: Annotated[
        str, typer.Option(help=f"With --format csv, the table: {', '.join(SECTIONS)}.")
    ] = "targets",
    notes: Annotated[
        bool, typer.Option("--notes", help="List the notes of breached issues.")
    ] = False,
) -> None:
    """SLA figures over a period: per target, per cycle (MTTA, MTTR), tiers, notifications."""
    settings: Settings = ctx.obj
    try:
        asked = ask(since, until, by or [], tz, SystemClock().now())
        if section not in SECTIONS:
            raise ReportError(f"no section {section!r}: choose from {', '.join(SECTIONS)}")
    except ReportError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(UNREACHABLE) from None
    with readers(settings) as sessions:
        found = sla_report(sessions, asked)
        listed = breached_notes(sessions, asked) if notes else None
    if format is Format.JSON:
        typer.echo(json.dumps(as_json(found, listed), indent=2, default=str))
    elif format is Format.CSV:
        typer.echo(as_csv(found, section), nl=False)
    else:
        _print_tables(found, listed)


def note(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The resolved issue, source:id.")],
    text: Annotated[str, typer.Argument(help="What was learnt: root cause, follow-ups.")],
    author: Annotated[str, typer.Option(help="Who writes it.")] = "cli",
) -> None:
    """Add a post-resolution note to a resolved issue's timeline."""
    settings: Settings = ctx.obj
    with store(settings) as db:
        try:
            noted = add_note(Units(db.sessions), key, text, author, SystemClock().now())
        except NoteRefused as exc:
            err.print(f"[red]{exc}[/red]", highlight=False)
            raise typer.Exit(UNREACHABLE) from None
    console.print(f"noted on {noted.issue} at {noted.at.isoformat(timespec='seconds')}")


def register(app: typer.Typer) -> None:
    """Attach `report` and `note` to the CLI."""
    app.command("report")(report)
    app.command("note")(note)
