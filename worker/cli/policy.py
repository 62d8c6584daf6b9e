"""`escalator policy check|reload|simulate|backtest`: validate, reload and try out a policy file
(over real history: `worker/cli/backtest.py`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from config.settings import Settings
from schemas.events import EventType, SeverityField
from schemas.policy import IssueFacts, PolicyFile
from worker.bootstrap import redis_client, scoped
from worker.broker.keys import POLICY_GENERATION
from worker.cli.backtest import backtest_cmd
from worker.domain import Gap, PlannedEvent, coverage_gaps, match_policy, simulate
from worker.domain.clock import SystemClock
from worker.domain.wording import gap_text
from worker.services.policy import explain, open_issue_count, replan_open
from worker.services.policy_loader import GAP_WINDOW_DAYS, check_policy
from worker.store.policy_versions import remember
from worker.store.repository import issue_by_ref

policy_app = typer.Typer(
    help="The policy file: check, simulate, reload or apply it; explain an issue's policy.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)
_SEVERITY: TypeAdapter[SeverityField] = TypeAdapter(SeverityField)


def _report(path: Path, start: datetime | None = None) -> tuple[PolicyFile | None, list[Gap]]:
    """Print the file's errors, or OK and a warning per tier gap (none fail it); the file if it
    is valid, and its gaps."""
    policies, problems = check_policy(path)
    for problem in problems:
        err.print(f"[red]{problem}[/red]", highlight=False, soft_wrap=True)
    if policies is None:
        err.print(f"{len(problems)} error(s) in {path}")
        return None, []
    console.print(
        f"{path}: OK: {len(policies.policies)} policies "
        f"({', '.join(p.name for p in policies.policies)}; default {policies.default}), "
        f"{len(policies.tiers)} tiers, {len(policies.channels)} channels",
        highlight=False,
        soft_wrap=True,
    )
    gaps = coverage_gaps(policies, start or SystemClock().now(), GAP_WINDOW_DAYS)
    for gap in gaps:
        err.print(f"[yellow]WARNING {gap_text(gap)}[/yellow]", highlight=False, soft_wrap=True)
    if gaps:
        err.print(f"{len(gaps)} warning(s): a tier reaches nobody (docs/policies.md, On call)")
    return policies, gaps


@policy_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The policy file to check.")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit status 1) on warnings too.")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Look for on-call gaps in 14 days from this ISO 8601 time (default: now).",
        ),
    ] = None,
) -> None:
    """Validate FILE; print every error with its line, and a warning per tier that reaches
    nobody in the next 14 days; exit status 1 on errors (with --strict, on warnings too)."""
    at: datetime | None = None
    if start is not None:
        try:
            at = datetime.fromisoformat(start)
        except ValueError as exc:
            err.print(f"[red]--from: {exc}[/red]", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        if at.tzinfo is None:
            err.print("[red]--from needs a time zone offset, e.g. 2026-12-05T18:00:00+01:00[/red]")
            raise typer.Exit(2)
    policies, gaps = _report(file, at)
    if policies is None:
        raise typer.Exit(1)
    if strict and gaps:
        err.print("--strict: warnings fail the check")
        raise typer.Exit(1)


@policy_app.command("reload")
def reload(ctx: typer.Context) -> None:
    """Validate the configured policy file, then ask every running role to reload it."""
    settings: Settings = ctx.obj
    if _report(settings.policy_file)[0] is None:
        err.print("refused: the running roles keep the policy they have")
        raise typer.Exit(1)
    with redis_client(settings) as redis:
        generation = redis.incr(POLICY_GENERATION)
    console.print(f"reload requested (generation {generation}); roles reload within a second")


def _planned(path: Path) -> list[PlannedEvent]:
    """`--events` lines: {"type": "issue.acknowledged", "at": "2026-03-27T17:00:00+01:00"}."""
    events = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            at = datetime.fromisoformat(data["at"])
            if at.tzinfo is None:
                raise ValueError("'at' needs a time zone offset")
            severity = _SEVERITY.validate_python(data["severity"]) if "severity" in data else None
            until = datetime.fromisoformat(data["until"]) if "until" in data else None
            if until is not None and until.tzinfo is None:
                raise ValueError("'until' needs a time zone offset")
            status = str(data["status"]) if "status" in data else None
            events.append(PlannedEvent(EventType(data["type"]), at, severity, status, until))
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            err.print(f"[red]{path}:{number}: {exc}[/red]", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return events


@policy_app.command("simulate")
def simulate_cmd(
    file: Annotated[Path, typer.Argument(help="The policy file.")],
    severity: Annotated[str, typer.Option(help="P1-P4 or critical/high/medium/low.")],
    opened: Annotated[str, typer.Option(help="When the issue opens, ISO 8601 with offset.")],
    events: Annotated[
        Path | None,
        typer.Option(
            help='JSON Lines of later events: {"type": ..., "at": ..., "severity": ..., '
            '"status": ..., "until": ...}.'
        ),
    ] = None,
    source: Annotated[str, typer.Option(help="The issue's source, for policy matching.")] = "sim",
    label: Annotated[
        list[str] | None, typer.Option(help="A label, for matching; repeatable.")
    ] = None,
    status: Annotated[str, typer.Option(help="The issue's status when it opens.")] = "open",
    reminders: Annotated[int, typer.Option(help="Stop after this many reminders.")] = 2,
    tz: Annotated[
        str | None, typer.Option(help="Zone for local times; default the calendar's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The timeline of deadlines and escalations for a hypothetical issue, without Redis or a DB."""
    policies, _ = check_policy(file)
    if policies is None:
        _report(file)
        raise typer.Exit(1)
    try:
        level = _SEVERITY.validate_python(severity)
        start = datetime.fromisoformat(opened)
        if start.tzinfo is None:
            raise ValueError("--opened needs a time zone offset, e.g. 2026-03-27T16:30:00+01:00")
        planned = _planned(events) if events else []
    except (ValueError, ValidationError) as exc:
        err.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    labels = tuple(label or ())
    policy = match_policy(policies, IssueFacts(level, source, labels, status))
    spec = next((t.calendar_spec for _, t in policy.targets() if t.calendar_spec), None)
    zone = ZoneInfo(tz) if tz else (spec.zone if spec else ZoneInfo("UTC"))
    steps = simulate(policies, level, start, planned, source, labels, reminders, status)
    if as_json:
        rows = [
            {
                "at": s.at.astimezone(zone).isoformat(),
                "at_utc": s.at.astimezone(UTC).isoformat(),
                "kind": s.kind,
                "tier": s.tier,
                "message": s.message,
                "due": s.due.astimezone(zone).isoformat() if s.due else None,
                "due_utc": s.due.astimezone(UTC).isoformat() if s.due else None,
            }
            for s in steps
        ]
        console.print_json(json.dumps({"policy": policy.name, "zone": str(zone), "timeline": rows}))
        return
    table = Table(title=f"{level} under policy {policy.name} (local time: {zone})")
    for column in ("Local", "UTC", "What", "Tier", "Detail"):
        table.add_column(column, overflow="fold")
    for s in steps:
        detail = s.message
        if s.due is not None:
            due_local = s.due.astimezone(zone).strftime("%a %Y-%m-%d %H:%M")
            detail += f": due {due_local} ({s.due.astimezone(UTC).strftime('%H:%M')} UTC)"
        table.add_row(
            s.at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M"),
            s.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            s.kind,
            s.tier,
            detail,
        )
    console.print(table)


@policy_app.command("apply")
def apply_cmd(
    ctx: typer.Context,
    replan: Annotated[
        bool,
        typer.Option(
            "--replan", help="Also move every open issue onto this file and re-plan its deadlines."
        ),
    ] = False,
) -> None:
    """Validate ESCALATOR_POLICY_FILE, record it as the current version and reload the roles.

    New issues follow it at once; open issues keep the version they were opened under unless
    --replan moves them (from their original start: a deadline now past fires at once).
    """
    settings: Settings = ctx.obj
    if _report(settings.policy_file)[0] is None:
        err.print("refused: nothing changed")
        raise typer.Exit(1)
    with scoped(settings) as c:
        now = c.clock.now()
        version = remember(c.sessions, c.policies, now)
        generation = c.redis.incr(POLICY_GENERATION)
        console.print(f"version {version} is current; roles reload it (generation {generation})")
        if not replan:
            waiting = open_issue_count(c.readers, version)
            console.print(
                f"{waiting} open issue(s) keep their earlier version; --replan moves them"
            )
            return
        total = open_issue_count(c.readers, version)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("re-planning open issues", total=total)
            report = replan_open(c.units, c.policies, now, lambda n: progress.advance(task, n))
        console.print(
            f"re-planned {report.replanned} open issue(s) under version {version}: "
            f"{len(report.effects.arm)} deadlines armed, {len(report.effects.disarm)} cancelled"
        )


policy_app.command("backtest")(backtest_cmd)  # worker/cli/backtest.py


@policy_app.command("explain")
def explain_cmd(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="source:id, e.g. jira:OPS-1")],
) -> None:
    """Which policy an issue matched and why, and the state of each of its targets."""
    settings: Settings = ctx.obj
    with scoped(settings) as c, c.readers() as session:
        row = issue_by_ref(session, issue)
        if row is None:
            err.print(f"[red]no issue {issue!r}[/red] (name it as source:id)")
            raise typer.Exit(1)
        for line in explain(session, row, c.policies, c.clock.now()):
            console.print(line, highlight=False, soft_wrap=True)
