"""`escalator notifications list|retry` and `escalator oncall`: the outbox and the rosters."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from config.settings import Settings
from worker.bootstrap import readers, redis_client, store
from worker.broker.celery_app import app as celery
from worker.broker.celery_app import configure
from worker.broker.effects import Tasks
from worker.broker.inflight import InFlight
from worker.domain.clock import SystemClock
from worker.domain.oncall import next_shift, on_call, people
from worker.services.policy_loader import load_policy
from worker.store import views
from worker.store.outbox import SqlOutbox

notifications_app = typer.Typer(
    help="The outbox: notifications and write-backs, their state, and retrying dead ones.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


def _local() -> str:
    return SystemClock().now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@notifications_app.command("list")
def list_(
    ctx: typer.Context,
    dead: Annotated[bool, typer.Option("--dead", help="Only dead messages.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """Messages in the outbox: id, issue, kind, channel, state, attempts, last error."""
    settings: Settings = ctx.obj
    table = Table(title="Dead notifications" if dead else "Notifications")
    for column in ("Id", "Issue", "Kind", "Channel", "State", "Tries", "Created", "Last error"):
        table.add_column(column, overflow="fold")
    with readers(settings) as sessions, sessions() as session:
        for row, issue in views.outbox(session, dead, limit):
            table.add_row(
                row.id,
                issue.key,
                row.kind,
                row.channel,
                row.state,
                str(row.attempts),
                row.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
                row.last_error or "",
            )
    console.print(table)


@notifications_app.command("retry")
def retry(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Message ids (msg_...).")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead message.")] = False,
) -> None:
    """Make dead messages pending again, with a fresh count of attempts, and send them now."""
    if not ids and not all_dead:
        err.print("give message ids or --all-dead")
        raise typer.Exit(2)
    settings: Settings = ctx.obj
    now = SystemClock().now()
    with store(settings) as db, db.sessions() as session, session.begin():
        chosen = SqlOutbox(session).retry_dead(None if all_dead else ids or [], now)
    missing = sorted(set(ids or []) - set(chosen))
    for message_id in missing:
        err.print(f"{message_id}: no dead message with that id")
    if chosen:
        configure(settings)
        with redis_client(settings) as redis:
            marks = InFlight(redis)
            with contextlib.suppress(RedisError):  # held as by a queued task: the sweep waits
                marks.mark(chosen, now.timestamp() + settings.delivery_queued_lease_s)
            try:
                Tasks(celery).deliver(chosen)
            except Exception as exc:  # the scheduler's outbox sweep sends them anyway
                with contextlib.suppress(RedisError):
                    marks.unmark(chosen)
                err.print(
                    f"could not reach the workers ({type(exc).__name__}); the sweep will send"
                )
            else:
                with contextlib.suppress(RedisError):
                    marks.counted(len(chosen))
    console.print(f"{len(chosen)} message(s) queued again")
    if missing:
        raise typer.Exit(1)


def oncall(ctx: typer.Context) -> None:
    """Who is on call now and who is next, for each tier."""
    settings: Settings = ctx.obj
    policies = load_policy(settings.policy_file)
    now = SystemClock().now()
    table = Table(title=f"On call at {_local()}")
    for column in ("Tier", "On call", "Until", "Next", "Roster"):
        table.add_column(column, overflow="fold")
    for tier in policies.tiers:
        upcoming = next_shift(policies, tier.name, now)
        start = upcoming.start if upcoming else None
        table.add_row(
            tier.name,
            on_call(policies, tier.name, now) or "nobody",
            start.astimezone().strftime("%Y-%m-%d %H:%M %Z") if start else "",
            (upcoming.who or "nobody") if upcoming else "",
            ", ".join(people(policies, tier.name)) if tier.roster else "(fixed)",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach `notifications` and `oncall` to the CLI."""
    app.add_typer(notifications_app, name="notifications")
    app.command("oncall")(oncall)
