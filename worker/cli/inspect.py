"""Read-side commands: `issues`, `show`, `dead list|replay`, `reconcile`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from config.settings import Settings
from worker.bootstrap import readers, redis_client, scoped
from worker.broker.dead_letters import list_dead, replay
from worker.domain.clock import SystemClock
from worker.services.reconcile import reconcile as run_reconcile
from worker.store import views
from worker.store.repository import issue_by_ref

console = Console()


def human(delta: timedelta) -> str:
    """`4m 05s`, `-1h 02m` (overdue), `2d 3h`."""
    seconds = int(delta.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m {secs:02d}s"


def local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _cut(text: str) -> Text:
    """A cell that is cut with an ellipsis when its column is narrower, never wrapped."""
    return Text(text, no_wrap=True, overflow="ellipsis")


ISSUE_COLUMNS = ("Issue", "Sev", "Title", "Tier", "Assignee", "State", "Next", "Time left")
WIDE = 110  # narrower terminals leave out the assignee and the state


def issues_table(
    settings: Settings, include_resolved: bool = False, width: int | None = None
) -> Table:
    """Open issues with their tier and the time left to their next deadline, fitting `width`.

    Keys, tiers and times never wrap (a "jira:OPS-" / "1" key misleads); the title and the
    assignee give way (rich shrinks wrappable columns first), cut with an ellipsis (`_cut`).
    """
    now = SystemClock().now()
    shown = [c for c in ISSUE_COLUMNS if (width or WIDE) >= WIDE or c not in ("Assignee", "State")]
    table = Table(
        title="Issues" if include_resolved else "Open issues",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in shown:
        table.add_column(column, no_wrap=column not in ("Title", "Assignee"))
    with readers(settings) as sessions, sessions() as session:
        for row in views.issues_by_urgency(session, include_resolved):
            issue, nxt = row.issue, row.next_deadline
            left = nxt.due_at - now if nxt else None
            style = "red" if left is not None and left.total_seconds() < 0 else ""
            cells: tuple[str | Text, ...] = (
                issue.key,
                issue.severity,
                _cut(issue.title[:60]),
                issue.tier,
                _cut(issue.assignee or ""),
                issue.lifecycle,
                f"{nxt.target} {nxt.kind}" if nxt else "",
                human(left) if left else "—",
            )
            kept = [cell for name, cell in zip(ISSUE_COLUMNS, cells, strict=True) if name in shown]
            table.add_row(*kept, style=style)
    return table


def register(app: typer.Typer, dead_app: typer.Typer) -> None:
    """Attach these commands to the CLI."""

    @app.command()
    def issues(
        ctx: typer.Context,
        all: Annotated[bool, typer.Option("--all", help="Include resolved issues.")] = False,
    ) -> None:
        """A table of open issues with tier and time left."""
        console.print(issues_table(ctx.obj, include_resolved=all, width=console.width))

    @app.command()
    def show(
        ctx: typer.Context, issue: Annotated[str, typer.Argument(help="source:id, e.g. jira:OPS-1")]
    ) -> None:
        """An issue's timeline: events, escalations, notifications."""
        with readers(ctx.obj) as sessions, sessions() as session:
            row = issue_by_ref(session, issue)
            if row is None:
                console.print(f"[red]no issue {issue!r}[/red] (name it as source:id)")
                raise typer.Exit(1)
            console.print(
                f"[bold]{row.key}[/bold] {row.severity} {row.title!r}\n"
                f"state {row.lifecycle} · tier {row.tier} · assignee {row.assignee or '—'} · "
                f"policy {row.policy_name} · clock started {local(row.cycle_started_at)}"
            )
            table = Table(title="Timeline")
            for column in ("When", "What", "Detail"):
                table.add_column(column, overflow="fold")
            for entry in views.timeline(session, row.id):
                table.add_row(local(entry.at), entry.kind, entry.message)
            console.print(table)
            for d in views.armed(session, row.id):
                console.print(
                    f"armed: {d.target} {d.kind} at {local(d.due_at)} (step {d.tier_index})"
                )
            for m in views.dead_messages(session, row.id):
                console.print(f"[red]dead notification[/red] {m.id} to {m.channel}: {m.last_error}")

    @dead_app.command("list")
    def dead_list(ctx: typer.Context, count: int = 100) -> None:
        """Entries that could not be applied, with the reason."""
        with redis_client(ctx.obj) as redis:
            entries = list_dead(redis, count)
        table = Table(title=f"Dead entries ({len(entries)})")
        for column in ("Id", "Failed at", "Error", "Event"):
            table.add_column(column, overflow="fold")
        for e in entries:
            table.add_row(e.id, e.failed_at, e.error, e.event[:120])
        console.print(table)

    @dead_app.command("replay")
    def dead_replay(
        ctx: typer.Context,
        ids: Annotated[
            list[str] | None, typer.Argument(help="Dead entry ids; see `dead list`.")
        ] = None,
        all: Annotated[bool, typer.Option("--all", help="Replay every dead entry.")] = False,
    ) -> None:
        """Put dead entries back on the event stream (after fixing what made them fail)."""
        if not ids and not all:
            console.print("[red]name entry ids or pass --all[/red]")
            raise typer.Exit(2)
        with redis_client(ctx.obj) as redis:
            count = replay(redis, None if all else ids)
        console.print(f"replayed {count} entries")

    @app.command()
    def reconcile(ctx: typer.Context) -> None:
        """Rebuild the Redis deadline index from the database now (schedulers also do it)."""
        with scoped(ctx.obj) as c:
            report = run_reconcile(c.index, c.readers, c.clock)
        console.print(
            f"{report.armed} armed deadlines; {report.rearmed} re-armed, "
            f"{report.dropped} stale dropped"
        )
