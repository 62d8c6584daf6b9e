"""`escalator status`: is every role alive, do escalations run, is anything piling up?

It prints the operations snapshot (`worker/services/operations.py: snapshot`) as tables: each
role instance with the age of its heartbeat, the event stream, the deadline index, the dead
letters and dead notifications, the canary and the policy version; `--json` prints the same as
one JSON object. Exit code 0: healthy; 1: the engine is unhealthy (no canary fired recently or on
time), or a role has no live instance; 2: Redis or the database cannot be reached (one line says
which, and how to start it).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from worker.bootstrap import readers, redis_client
from worker.broker.heartbeats import ROLES, Beat
from worker.cli.failures import UNREACHABLE, database_line, redis_line
from worker.domain.clock import SystemClock
from worker.services.operations import Operations, snapshot

console = Console()
err = Console(stderr=True)
HEALTHY, UNHEALTHY = 0, 1


def problems(ops: Operations) -> list[str]:
    """What makes the deployment unhealthy: the engine, and each role with no live instance."""
    now = ops.at.timestamp()
    found = [] if ops.engine.healthy else [f"engine unhealthy: {ops.engine.reason}"]
    for role in sorted({*ROLES, *(b.role for b in ops.beats)}):
        mine = [b for b in ops.beats if b.role == role]
        if not any(not b.silent(now) for b in mine):
            found.append(f"{role}: silent" if mine else f"{role}: no heartbeat")
    return found


def exit_code(ops: Operations) -> int:
    return UNHEALTHY if problems(ops) else HEALTHY


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def as_json(ops: Operations) -> dict[str, Any]:
    """The snapshot as JSON types, with each beat's age and the verdict."""
    body: dict[str, Any] = _plain(asdict(ops))
    now = ops.at.timestamp()
    for beat, plain in zip(ops.beats, body["beats"], strict=True):
        plain["age_s"] = round(beat.age(now), 3)
        plain["silent"] = beat.silent(now)
    body["problems"] = problems(ops)
    body["healthy"] = not body["problems"]
    return body


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _beat_row(beat: Beat, now: float) -> list[str]:
    age = _seconds(beat.age(now)) + " ago"
    shown = f"[red]{age} (silent)[/red]" if beat.silent(now) else f"[green]{age}[/green]"
    info = ", ".join(f"{k}={v}" for k, v in sorted(beat.info.items()))
    return [beat.role, beat.instance, shown, _seconds(max(0.0, now - beat.started)), info]


def roles_table(ops: Operations) -> Table:
    """One row per role instance; a role with none says so in red."""
    now = ops.at.timestamp()
    table = Table(title="Roles")
    for column in ("Role", "Instance", "Heartbeat", "Up for", "Info"):
        table.add_column(column, overflow="fold")
    for role in sorted({*ROLES, *(b.role for b in ops.beats)}):
        mine = [b for b in ops.beats if b.role == role]
        if not mine:
            table.add_row(role, "-", "[red]no heartbeat[/red]", "", "")
        for beat in mine:
            table.add_row(*_beat_row(beat, now))
    return table


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    local = at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{local} ({_seconds(max(0.0, (now - at).total_seconds()))} ago)"


def engine_table(ops: Operations) -> Table:
    """The engine's health, the canary and what may be piling up."""
    engine, stream = ops.engine, ops.stream
    table = Table(title="Engine", show_header=False)
    table.add_column("What")
    table.add_column("Value", overflow="fold")
    verdict = (
        "[green]healthy[/green]" if engine.healthy else f"[red]unhealthy[/red]: {engine.reason}"
    )
    lateness = "-" if engine.lateness_s is None else f"{engine.lateness_s:.3f} s"
    unread = "" if stream.lag is None else f", {stream.lag} not yet read"  # Redis 7's lag
    policy = "none stored yet"
    if ops.policy_digest is not None:
        policy = f"version {ops.policy_version} ({ops.policy_digest})"
    dead = ops.notifications_dead
    rows = [
        ("Engine", verdict),
        ("Canary lateness", lateness),
        ("Canary last fired", _when(engine.last_fired_at, ops.at)),
        ("Stream", f"{stream.length} entries, {stream.pending} pending{unread}"),
        ("Stream lag", _seconds(stream.lag_s)),
        ("Deadlines", f"{ops.armed} armed, {ops.inflight} in flight"),
        ("Dead letters", f"[red]{ops.dead_letters}[/red]" if ops.dead_letters else "0"),
        ("Notifications", f"{ops.notifications_pending} pending"),
        ("Dead notifications", f"[red]{dead}[/red]" if dead else "0"),
        ("Policy", policy),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def status(
    ctx: typer.Context,
    as_json_: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Every role's heartbeat, the canary, stream lag, dead letters: 0 healthy, 1 not, 2 down."""
    settings: Settings = ctx.obj
    now = SystemClock().now()
    try:
        with redis_client(settings) as redis, readers(settings) as sessions:
            try:
                redis.ping()
            except (RedisError, OSError) as exc:
                err.print(redis_line(settings, exc), soft_wrap=True, markup=False)
                raise typer.Exit(UNREACHABLE) from None
            ops = snapshot(redis, sessions, settings, now)
    except (RedisError, OSError) as exc:
        err.print(redis_line(settings, exc), soft_wrap=True, markup=False)
        raise typer.Exit(UNREACHABLE) from None
    except SQLAlchemyError as exc:
        err.print(database_line(settings, exc), soft_wrap=True, markup=False)
        raise typer.Exit(UNREACHABLE) from None
    if as_json_:
        typer.echo(json.dumps(as_json(ops), indent=2))
    else:
        console.print(roles_table(ops))
        console.print(engine_table(ops))
        for problem in problems(ops):
            console.print(f"[red]{problem}[/red]")
        if not problems(ops):
            console.print("[green]healthy[/green]")
    raise typer.Exit(exit_code(ops))


def register(app: typer.Typer) -> None:
    """Attach `status` to the CLI."""
    app.command("status")(status)
