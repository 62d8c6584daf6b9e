"""`escalator notifications list|retry` and `escalator oncall` (worker/cli/notifications.py)."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from schemas.policy import PolicyFile
from worker.cli import main as cli
from worker.cli import notifications
from worker.domain.clock import ManualClock
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store.models import OutboxMessage

from .factories import T0, event_json


@pytest.fixture
def env(cli_tasks: list[Any], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The CLI on the unit test's SQLite file, its tables wide, tasks recorded not sent."""
    monkeypatch.setattr(notifications, "console", Console(width=300))
    return cli_tasks


def test_list_dead_and_retry_all_dead(
    env: list[Any], sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """A dead message is listed with --dead; retry --all-dead makes it pending and sends it."""
    [mid] = apply_batch(
        Units(sessions), [("1-0", event_json(at=T0))], policies, clock
    ).effects.outbox
    with sessions() as s, s.begin():
        s.execute(update(OutboxMessage).values(state="dead", attempts=8, last_error="HTTP 500"))
    runner = CliRunner()
    listed = runner.invoke(cli.app, ["notifications", "list", "--dead"])
    assert listed.exit_code == 0, listed.output
    assert mid in listed.output and "HTTP 500" in listed.output
    retried = runner.invoke(cli.app, ["notifications", "retry", "--all-dead"])
    assert retried.exit_code == 0, retried.output
    assert env == [("outbox.deliver_batch", [[mid]])]
    with sessions() as s:
        row = s.get_one(OutboxMessage, mid)
        assert (row.state, row.attempts) == ("pending", 0)
    again = runner.invoke(cli.app, ["notifications", "retry", mid])
    assert again.exit_code == 1 and "no dead message" in again.output


def test_oncall_shows_each_tier(env: list[Any]) -> None:
    """`escalator oncall` prints every tier of the policy with who is on call."""
    result = CliRunner().invoke(cli.app, ["oncall"])
    assert result.exit_code == 0, result.output
    for name in ("L1", "l1-oncall", "manager", "incident-manager"):
        assert name in result.output
