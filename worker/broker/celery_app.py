"""The Celery application. Tasks are routed to two queues; messages are acked after the work.

Each queue has worker processes of its own (`escalator worker --queue escalations|outbox`), so
a backlog of deliveries never holds a slot, or a prefetched place, an escalation needs. The
escalation pool reserves one task per process (prefetch multiplier 1): a busy or killed process
holds at most the one it runs, and the rest stay on the queue for the other processes.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from config.settings import Settings
from worker.broker.connection import broker_url
from worker.broker.keys import ESCALATION_QUEUE, OUTBOX_QUEUE

app = Celery(
    "escalator", include=["worker.roles.tasks", "worker.roles.watchdog", "worker.roles.pulse"]
)

QUEUES = (ESCALATION_QUEUE, OUTBOX_QUEUE)
# Tasks a worker reserves per pool process: one, the one it runs. A task reserved but not
# started is lost with its worker until the broker's visibility timeout (an hour), while the
# lease or mark it holds says it is alive: so no worker keeps any at hand.
PREFETCH = {ESCALATION_QUEUE: 1, OUTBOX_QUEUE: 1}


def configure(settings: Settings) -> Celery:
    """Point the app at the settings' Redis and apply Escalator's delivery guarantees."""
    app.conf.update(
        broker_url=broker_url(settings.resolved_redis_url()),
        # The broker away, at start or later: retry for ever (Celery's capped backoff, each
        # attempt logged at error level) rather than give up after 100 attempts and exit.
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        broker_transport_options={"visibility_timeout": 3600},
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,  # a task killed mid-way is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=PREFETCH[ESCALATION_QUEUE],  # each worker sets its own
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=ESCALATION_QUEUE,
        task_routes={
            "escalation.*": {"queue": ESCALATION_QUEUE},
            "outbox.*": {"queue": OUTBOX_QUEUE},
        },
    )
    return app


def worker_argv(queue: str, concurrency: int, pool: str, loglevel: str) -> list[str]:
    """`celery worker` arguments for a worker that consumes `queue` only.

    Its node name is `QUEUE@host` (`escalations@web-1`, `outbox@web-1`): two workers of one
    machine never share a name, and a health check can ping the one it means.
    """
    if queue not in PREFETCH:
        raise ValueError(f"unknown queue {queue!r}: one of {', '.join(QUEUES)}")
    return [
        "worker",
        f"--queues={queue}",
        f"--concurrency={concurrency}",
        f"--prefetch-multiplier={PREFETCH[queue]}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        f"--hostname={queue}@%h",
    ]


def run_worker(argv: Sequence[str], quiet: bool = False) -> int:
    """Run `celery --app worker.broker.celery_app:app ARGV` in this process; returns its exit code.

    Neither `Celery.worker_main` nor `Celery.start` returns it (click hands the code back in
    non-standalone mode and `start` drops it), so a worker that died of an "Unrecoverable
    error" used to exit 0, and a restart-on-failure policy never brought it back. This calls
    the same `worker` command and keeps the code. Call `configure` first: the app is this
    module's. Only the `worker` command is loaded, here: `celery`'s whole command line also
    loads its shell and REPL (click_repl, prompt_toolkit), 9 MB in each worker process, and
    the other roles, which only send tasks, load neither. `quiet` leaves out Celery's startup
    banner (printed to stdout, outside the log).
    """
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker as worker_command

    command, *args = argv
    if command != "worker":
        raise ValueError(f"not a worker command line: {list(argv)!r}")
    code = worker_command.main(
        args=args,
        prog_name="celery worker",
        standalone_mode=False,
        obj=CLIContext(app=app, no_color=False, workdir=None, quiet=quiet),
    )
    return code if isinstance(code, int) else 0
