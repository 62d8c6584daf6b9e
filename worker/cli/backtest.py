"""`escalator policy backtest NEW.yaml --since 30d`: what a policy would have done over real
history, side by side with what happened (docs/reports.md, Backtest). Reads only."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from config.settings import Settings
from worker.domain.backtest_compare import Comparison, as_dict, both_timelines, sections
from worker.domain.clock import SystemClock
from worker.errors import PermanentError
from worker.services.backtest import backtest, count_issues, period
from worker.services.policy_loader import check_policy
from worker.store.db import make_reader_engine, reader_factory

console = Console()
err = Console(stderr=True)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


def _change(real: int, replayed: int) -> str:
    delta = replayed - real
    return "" if delta == 0 else f"[bold]{delta:+d}[/bold]"


def render(report: Comparison, out: Console) -> None:
    """The report as rich tables: a summary, each side-by-side table, the issues changed most."""
    out.print(
        f"backtest {report.since.isoformat()} .. {report.until.isoformat()} (pages in "
        f"{report.zone} unless a tier's roster has its own zone): {report.real.issues} issue(s) "
        f"replayed, {len(report.skipped)} skipped; {report.differences} difference(s) in "
        f"{report.changed_issues} issue(s)",
        highlight=False,
        soft_wrap=True,
    )
    for section in sections(report):
        if not section.rows:
            continue
        table = Table(title=section.title, title_justify="left")
        for label in section.labels:
            table.add_column(label)
        for name in ("happened", "would have", "change"):
            table.add_column(name, justify="right")
        for labels, real, replayed in section.rows:
            table.add_row(*labels, str(real), str(replayed), _change(real, replayed))
        out.print(table)
    for changed in report.top:
        lines = Table(
            title=f"{changed.key}: {changed.differences} difference(s)", title_justify="left"
        )
        lines.add_column("when (UTC)", no_wrap=True)
        lines.add_column("happened", ratio=1)
        lines.add_column("would have", ratio=1)
        for at, happened, would in both_timelines(changed):
            lines.add_row(at.strftime("%Y-%m-%d %H:%M:%S"), happened, would)
        out.print(lines)
    if report.skipped:
        out.print(f"skipped {len(report.skipped)} issue(s), e.g.:")
        for key, why in sorted(report.skipped.items())[:5]:
            out.print(f"  {key}: {why}", highlight=False, soft_wrap=True)


def backtest_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The policy file to try over real history.")],
    since: Annotated[
        str, typer.Option(help="Start of the period: a span back from now (30d, 12h, 2w) or ISO.")
    ] = "30d",
    until: Annotated[
        str | None, typer.Option(help="End of the period (default: now), as --since.")
    ] = None,
    top: Annotated[
        int, typer.Option(min=0, max=1000, help="How many most-changed issues to show.")
    ] = 10,
    zone: Annotated[
        str,
        typer.Option(
            "--tz", help="Night and weekend pages in this zone, for tiers with no roster."
        ),
    ] = "UTC",
    fmt: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.TABLE,
) -> None:
    """Replay the events recorded in a period under FILE (no Redis, nothing written) and show,
    beside what really happened: escalations per tier and target, breaches per target,
    notifications per channel, kind and tier, pages per person (per week, night and weekend
    apart), and the issues whose course changes most, with both timelines."""
    settings: Settings = ctx.obj
    policies, problems = check_policy(file)
    if policies is None:
        first = problems[0] if problems else "not a policy file"
        err.print(f"[red]{file}: {first}[/red] ({len(problems)} error(s))", highlight=False)
        raise typer.Exit(2)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        err.print(f"[red]--tz: unknown time zone {zone!r}[/red]")
        raise typer.Exit(2) from None
    engine = make_reader_engine(settings.resolved_database_url())
    try:
        readers = reader_factory(engine)
        start, end = period(since, until, SystemClock().now())
        total = count_issues(readers, start, end)
        columns = (
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("issues"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True, disable=total == 0) as bar:
            task = bar.add_task("replay", total=total)
            report = backtest(
                readers, policies, start, end, zone, top, lambda n: bar.advance(task, n)
            )
    except PermanentError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if fmt is Format.JSON:
        print(json.dumps(as_dict(report), indent=2))
        return
    render(report, console)
