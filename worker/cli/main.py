"""`escalator`: run every role in one command, or each role on its own, and inspect the state."""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from pydantic import ValidationError
from rich.console import Console

from config.logging import configure_logging
from config.settings import Settings
from schemas.events import EventType, IssueEvent, IssueSnapshot
from worker.bootstrap import Container, build, install, redis_client
from worker.cli.failures import DEBUG, EscalatorGroup, refuse, settings_lines, validation_lines
from worker.cli.usage import print_version, role_epilog
from worker.domain.clock import SystemClock
from worker.errors import EscalatorError

app = typer.Typer(
    name="escalator",
    help="Self-hosted SLA escalation worker: durable, second-precise deadlines "
    "beside any ticket system.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    cls=EscalatorGroup,  # Redis or the database away: one line, exit 2 (worker/cli/failures.py)
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
dead_app = typer.Typer(
    help="The dead-letter stream: events that could not be applied.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(dead_app, name="dead")

console = Console()
err = Console(stderr=True, soft_wrap=True)  # a message is one line, however narrow
log = structlog.get_logger("escalator.cli")


def settings_of(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@app.callback()
def _main(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a failure, not one line.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Configuration comes from ESCALATOR_* variables and .env (see README: Configuration)."""
    ctx.meta[DEBUG] = debug
    try:
        ctx.obj = Settings()
    except ValidationError as exc:
        raise refuse(settings_lines(exc), "invalid configuration:") from None
    configure_logging(ctx.obj)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _handler(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def _container(settings: Settings) -> Container:
    install(settings)
    return build(settings)


@app.command(epilog=role_epilog("api", "ingest", "scheduler", "worker"))
def run(ctx: typer.Context) -> None:
    """Run every role in one supervised command (embedded Redis unless a URL is set)."""
    from worker.roles.supervisor import Supervisor

    Supervisor(settings_of(ctx), banner=sys.stdout).run_forever()


@app.command()
def demo(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option(help="Stop after this long at most.")] = 60.0,
) -> None:
    """Watch issues escalate live, on the embedded stack with tiers that last seconds."""
    from worker.cli.demo import run_demo

    raise typer.Exit(run_demo(settings_of(ctx), console, seconds))


@app.command(epilog=role_epilog("api"))
def api(ctx: typer.Context) -> None:
    """Role: the HTTP gateway (webhooks, POST /v1/events, /v1/issues, /healthz, /readyz, ...)."""
    import uvicorn

    from worker.roles.observe import start_metrics

    settings = settings_of(ctx)
    start_metrics(settings, port=False)  # /metrics is on the api's own port
    uvicorn.run(
        "worker.roles.serve:app_from_environment",
        factory=True,
        workers=settings.api_workers,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )


@app.command(epilog=role_epilog("ingest"))
def ingest(ctx: typer.Context) -> None:
    """Role: consume the event stream into the store (run as many as you like)."""
    from worker.roles.ingest import Ingest
    from worker.roles.observe import start_metrics

    start_metrics(settings_of(ctx))
    consumer = Ingest(_container(settings_of(ctx)), stop=_stop_on_signals())

    def _reload(*_: Any) -> None:
        consumer.reloader.requested = True  # SIGHUP: reload the policy file between batches

    signal.signal(signal.SIGHUP, _reload)
    consumer.run()


@app.command(epilog=role_epilog("scheduler"))
def scheduler(ctx: typer.Context) -> None:
    """Role: claim due deadlines and hand them to the workers (several may run)."""
    from worker.roles.observe import start_metrics
    from worker.roles.scheduler import Scheduler

    start_metrics(settings_of(ctx))
    Scheduler(_container(settings_of(ctx)), stop=_stop_on_signals()).run()


class WorkerQueue(StrEnum):
    """What `escalator worker` consumes."""

    ESCALATIONS = "escalations"
    OUTBOX = "outbox"
    ALL = "all"


@app.command(epilog=role_epilog("worker"))
def worker(
    ctx: typer.Context,
    queue: Annotated[
        WorkerQueue,
        typer.Option(
            "--queue",
            "-Q",
            help="escalations: fire escalations (one task reserved per process); outbox: "
            "deliver notifications and write-backs; all: both, each in its own Celery worker "
            "process, and the command exits non-zero as soon as either stops.",
        ),
    ] = WorkerQueue.ALL,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Pool processes of this worker (default: worker_concurrency)."),
    ] = None,
) -> None:
    """Role: Celery workers that fire escalations and deliver notifications."""
    from worker.broker.celery_app import configure, run_worker, worker_argv

    settings = settings_of(ctx)
    if queue is WorkerQueue.ALL:
        from worker.roles.supervisor import run_together

        extra = [] if concurrency is None else [f"--concurrency={concurrency}"]
        pools = [
            ["worker", "--queue", q.value, *extra]
            for q in (WorkerQueue.ESCALATIONS, WorkerQueue.OUTBOX)
        ]
        from worker.gateway.metrics import current_directory
        from worker.roles.observe import start_metrics

        start_metrics(settings)  # one directory and one metrics port for both pools
        raise typer.Exit(run_together(pools, current_directory()))
    from worker.roles.observe import start_metrics

    start_metrics(settings)  # before the pool forks: its processes inherit the directory
    install(settings)
    configure(settings)
    argv = worker_argv(
        queue.value,
        concurrency or settings.worker_concurrency,
        settings.worker_pool,
        settings.log_level,
    )
    # Celery's 20-line startup banner goes to stdout, outside the log: only when debugging.
    code = run_worker(argv, quiet=settings.log_level.upper() != "DEBUG")
    if code:
        log.error("worker.exited", queue=queue.value, code=code)
    raise typer.Exit(code)


@app.command()
def send(
    ctx: typer.Context,
    issue: Annotated[
        str | None, typer.Option(help="The issue's id in its source, e.g. OPS-1.")
    ] = None,
    type: Annotated[EventType, typer.Option("--type", help="What happened.")] = EventType.OPENED,
    severity: Annotated[
        str | None,
        typer.Option(
            help="P1-P4 or critical/high/medium/low. Required for issue.opened, issue.updated "
            "and issue.status_changed (they carry the whole snapshot); ignored by the others."
        ),
    ] = None,
    source: Annotated[str, typer.Option(help="The ticket system.")] = "cli",
    title: Annotated[str, typer.Option(help="The issue's title.")] = "",
    status: Annotated[
        str, typer.Option(help="The issue's status, e.g. pending_customer (pauses some clocks).")
    ] = "open",
    label: Annotated[list[str] | None, typer.Option(help="A label; repeatable.")] = None,
    assignee: Annotated[str | None, typer.Option(help="The issue's assignee.")] = None,
    snooze_until: Annotated[
        datetime | None,
        typer.Option(help="With --type issue.snoozed: when the ladder resumes (ISO 8601)."),
    ] = None,
    event_id: Annotated[str | None, typer.Option(help="Dedup key; random when omitted.")] = None,
    at: Annotated[
        datetime | None,
        typer.Option(help="When it happened (ISO 8601 with offset); now when omitted."),
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option("--json", help="Send events from a JSON Lines file ('-' for stdin) instead."),
    ] = None,
) -> None:
    """Put events on the stream, validated first, as any producer would."""
    from worker.broker.producer import Producer

    settings = settings_of(ctx)
    events: list[IssueEvent] = []
    where = "invalid event:"
    try:
        if json_file is not None:
            lines = (sys.stdin if str(json_file) == "-" else json_file.open()).read().splitlines()
            for number, line in enumerate(lines, start=1):
                where = f"invalid event on line {number} of {json_file}:"
                if line.strip():
                    events.append(IssueEvent.model_validate_json(line))
        elif issue is None:
            err.print("[red]give --issue (or --json FILE)[/red]")
            raise typer.Exit(2)
        else:
            snapshot_types = (EventType.OPENED, EventType.UPDATED, EventType.STATUS_CHANGED)
            if severity is None and type in snapshot_types:
                err.print(
                    f"[red]{type.value} carries the issue's snapshot: give --severity "
                    "(P1-P4 or critical/high/medium/low)[/red]"
                )
                raise typer.Exit(2)
            snapshot = IssueSnapshot(
                id=issue,
                title=title,
                severity=severity or "P3",  # not read for the other event types
                status=status,
                labels=tuple(label or ()),
                assignee=assignee,
            )
            events = [
                IssueEvent(
                    event_id=event_id or f"cli-{uuid.uuid4().hex}",
                    type=type,
                    occurred_at=at or SystemClock().now(),
                    source=source,
                    issue=snapshot,
                    snooze_until=snooze_until,
                )
            ]
    except ValidationError as exc:
        raise refuse(validation_lines(exc), where) from None
    with redis_client(settings) as redis:
        ids = Producer(redis).send_many(events)
    for event, stream_id in zip(events, ids, strict=True):
        console.print(f"sent {event.type.value} for {event.issue_key} as {stream_id}")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema to the latest version."""
    from worker.store.migrate import upgrade

    settings = settings_of(ctx)
    upgrade(settings.resolved_database_url())
    console.print("database schema is up to date")


from worker.cli import inspect as _inspect  # noqa: E402  (registers issues, show, dead, reconcile)
from worker.cli.notifications import register as _outbound  # noqa: E402
from worker.cli.policy import policy_app  # noqa: E402
from worker.cli.report import register as _report  # noqa: E402  (report, note)
from worker.cli.status import register as _status  # noqa: E402

_inspect.register(app, dead_app)
_report(app)
app.add_typer(policy_app, name="policy")
_outbound(app)  # notifications list|retry, oncall
_status(app)  # status


def main() -> None:
    try:
        app()
    except EscalatorError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    except Exception:
        # A role that dies says why, in the log's own format (its traceback as text), and
        # exits non-zero so that its supervisor restarts it.
        log.critical("escalator.crashed", argv=sys.argv[1:], exc_info=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
