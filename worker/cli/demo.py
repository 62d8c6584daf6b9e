"""`escalator demo`: the embedded stack, a policy whose tiers last seconds, and a live log.

Three issues are published: one nobody acknowledges (it climbs L1 → L2 → L3 → manager), one
acknowledged within its first tier, one resolved. Everything runs through the production code
paths: the stream, ingest, the deadline index, the scheduler, Celery, the outbox.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.logging import configure_logging
from config.settings import DEMO_POLICY, Settings
from schemas.events import IssueEvent
from worker.bootstrap import readers, redis_client
from worker.broker.producer import Producer
from worker.domain.clock import SystemClock
from worker.domain.states import OutboxState
from worker.roles.supervisor import Supervisor
from worker.store.db import SessionFactory
from worker.store.models import Issue, OutboxMessage, TimelineEntry

STYLE = {
    "escalate": "bold red",
    "remind": "red",
    "resolve": "magenta",
    "event": "cyan",
    "notified": "green",
    "ignored": "dim",
    "notification_dead": "bold red",
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(kind: str, issue: str, severity: str, title: str, n: int) -> IssueEvent:
    """The event, stamped now: build it when it is sent, never ahead."""
    return IssueEvent.model_validate(
        {
            "event_id": f"demo-{issue}-{n}",
            "type": kind,
            "occurred_at": SystemClock().now(),
            "source": "demo",
            "issue": {"id": issue, "severity": severity, "title": title},
        }
    )


def _wait_ready(log: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if " ready." in text and "scheduler.started" in text and "ingest.started" in text:
            return True
        time.sleep(0.2)
    return False


def run_demo(settings: Settings, console: Console, seconds: float) -> int:
    """Run the demo; 0 when it showed what it promises, 1 otherwise."""
    data_dir = Path(tempfile.mkdtemp(prefix="escalator-demo-"))
    env = {
        "ESCALATOR_DATA_DIR": str(data_dir),
        "ESCALATOR_POLICY_FILE": str(DEMO_POLICY),
        "ESCALATOR_REDIS_URL": "",
        "ESCALATOR_DATABASE_URL": "",
        "ESCALATOR_API_PORT": str(_free_port()),
        "ESCALATOR_LOG_FORMAT": "json",
        "ESCALATOR_SCHEDULER_LEASE_S": "5",
    }
    demo = settings.model_copy(
        update={
            "data_dir": data_dir,
            "redis_url": None,
            "database_url": None,
            "policy_file": DEMO_POLICY,
            "log_level": "WARNING",
        }
    )
    configure_logging(demo)
    console.print(
        Panel.fit(
            "Three issues go onto the event stream of an embedded Escalator.\n"
            "Policy: each tier has [bold]6 s[/bold] to acknowledge a P1 (L1 → L2 → L3 → manager).\n"
            "  DEMO-1  P1, nobody acknowledges: it escalates tier by tier\n"
            "  DEMO-2  P1, acknowledged after 3 s: it stays with L1\n"
            "  DEMO-3  P2, resolved after 5 s\n"
            "Everything lives in a temporary folder, removed when the demo ends.",
            title="escalator demo",
        )
    )
    log_path = data_dir / "roles.log"
    with log_path.open("wb") as output:
        supervisor = Supervisor(demo, env=env, output=output)
        watcher = threading.Thread(target=supervisor.watch, daemon=True)
        try:
            with console.status("starting Redis, the database and every role ..."):
                supervisor.start()
                watcher.start()
                if not _wait_ready(log_path, 60):
                    console.print("[red]the roles did not start[/red]")
                    return _keep_log(console, log_path, 1)
            code = _show(demo, console, seconds, data_dir)
            return code if code == 0 else _keep_log(console, log_path, code)
        except KeyboardInterrupt:
            console.print("interrupted")
            return 130
        finally:
            with console.status("stopping every role ..."):
                supervisor.shutdown()
            shutil.rmtree(data_dir, ignore_errors=True)


def _keep_log(console: Console, log_path: Path, code: int) -> int:
    """Copy the role logs out of the folder about to be removed, and say where they are."""
    kept = Path(tempfile.gettempdir()) / f"escalator-demo-{os.getpid()}.log"
    shutil.copyfile(log_path, kept)
    console.print(f"the role logs are kept in {kept}", highlight=False, soft_wrap=True)
    return code


def _show(settings: Settings, console: Console, seconds: float, data_dir: Path) -> int:
    with redis_client(settings) as redis, readers(settings) as sessions:
        return _watch(Producer(redis), sessions, console, seconds)


def _watch(producer: Producer, readers: SessionFactory, console: Console, seconds: float) -> int:
    start = time.monotonic()
    producer.send_many(
        [
            _event("issue.opened", "DEMO-1", "P1", "Checkout API returns 500s", 1),
            _event("issue.opened", "DEMO-2", "P1", "Payment webhooks backing up", 1),
            _event("issue.opened", "DEMO-3", "P2", "Search latency above 2 s", 1),
        ]
    )
    pending = [  # (after s, the event's fields): each is stamped when it is sent
        (3.0, ("issue.acknowledged", "DEMO-2", "P1", "Payment webhooks backing up", 2)),
        (5.0, ("issue.resolved", "DEMO-3", "P2", "Search latency above 2 s", 2)),
    ]
    last_id = 0
    done = False
    while not done and time.monotonic() - start < seconds:
        elapsed = time.monotonic() - start
        while pending and pending[0][0] <= elapsed:
            producer.send(_event(*pending.pop(0)[1]))
        with readers() as session:
            rows = session.execute(
                select(TimelineEntry, Issue.external_id)
                .join(Issue)
                .where(TimelineEntry.id > last_id)
                .order_by(TimelineEntry.id)
            ).all()
            for entry, issue_id in rows:
                last_id = entry.id
                at = entry.at.astimezone().strftime("%H:%M:%S")
                style = STYLE.get(entry.kind, "")
                line = Table.grid(padding=(0, 1))  # the message wraps under itself
                line.add_column(no_wrap=True)
                line.add_column(no_wrap=True, style="bold")
                line.add_column(no_wrap=True, min_width=9, style=style)
                line.add_column(overflow="fold")
                line.add_row(at, issue_id, entry.kind, escape(_line(session, entry)))
                console.print(line, highlight=False)
            reminders = session.scalar(
                select(func.count())
                .select_from(TimelineEntry)
                .join(Issue)
                .where(Issue.external_id == "DEMO-1", TimelineEntry.kind == "remind")
            )
        done = bool(reminders) and not pending
        time.sleep(0.3)
    return _summary(readers, console, timedelta(seconds=time.monotonic() - start))


def _line(session: Session, entry: TimelineEntry) -> str:
    """The entry's line; for a message sent, who was paged, where, and its headline."""
    message_id = (entry.data or {}).get("message_id") if entry.kind == "notified" else None
    row = session.get(OutboxMessage, message_id) if message_id else None
    if row is None:
        return entry.message
    payload = row.payload or {}
    who = ", ".join(payload.get("people") or ()) or payload.get("assignee") or row.channel
    headline = str(payload.get("text", "")).strip().splitlines()[:1]
    return f"paged {who} via {row.channel}: " + (headline[0] if headline else row.kind)


def _summary(readers: SessionFactory, console: Console, took: timedelta) -> int:
    table = Table(title=f"Summary after {took.total_seconds():.0f} s")
    for column in ("Issue", "Sev", "State", "Tier", "Assignee", "Escalated", "Sent"):
        table.add_column(column, no_wrap=column != "Assignee")
    outcome: dict[str, tuple[str, int]] = {}
    with readers() as session:
        for issue in session.scalars(select(Issue).order_by(Issue.external_id)):
            escalations = (
                session.scalar(
                    select(func.count())
                    .select_from(TimelineEntry)
                    .where(TimelineEntry.issue_id == issue.id, TimelineEntry.kind == "escalate")
                )
                or 0
            )
            sent = (
                session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(
                        OutboxMessage.issue_id == issue.id, OutboxMessage.state == OutboxState.SENT
                    )
                )
                or 0
            )
            outcome[issue.external_id] = (issue.lifecycle, escalations)
            table.add_row(
                issue.external_id,
                issue.severity,
                issue.lifecycle,
                issue.tier,
                issue.assignee or "",
                str(escalations),
                str(sent),
            )
    console.print(table)
    ok = (
        outcome.get("DEMO-1", ("", 0))[1] >= 2
        and outcome.get("DEMO-2") == ("acknowledged", 0)
        and outcome.get("DEMO-3", ("", 0))[0] == "resolved"
    )
    if ok:
        console.print(
            "[green]DEMO-1 escalated through the tiers, DEMO-2 was acknowledged in time, "
            "DEMO-3 was resolved.[/green]\nTry it on your own events: `escalator run`, then "
            "`escalator send` (README: Quick start)."
        )
        return 0
    console.print("[red]the demo did not go as planned; the role logs were in the data dir[/red]")
    return 1
