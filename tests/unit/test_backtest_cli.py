"""`escalator policy backtest` (worker/cli/backtest.py): the policy in force gives 0 differences
as JSON; a tighter one shows its extra escalation in the side-by-side tables and the issue's two
timelines; bad input is one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from config.settings import PACKAGED_POLICY
from schemas.policy import PolicyFile
from worker.cli import backtest as backtest_cli
from worker.cli import main as cli
from worker.domain.clock import ManualClock
from worker.services.ingest import apply_batch
from worker.services.uow import Units

from .factories import T0, event_json, minutes

PERIOD = ["--since", (T0 - minutes(60)).isoformat(), "--until", (T0 + minutes(13)).isoformat()]


@pytest.fixture
def lived(
    cli_tasks: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    sessions: sessionmaker[Session],
    policies: PolicyFile,
) -> None:
    """A P1 issue opened at T0 and acknowledged at 12 min under the packaged policy (L1 5m:
    it escalated to L2 once); the CLI's tables wide."""
    monkeypatch.setattr(backtest_cli, "console", Console(width=250))
    clock = ManualClock(T0)
    apply_batch(Units(sessions), [("1-0", event_json(issue_id="OPS-1", at=T0))], policies, clock)
    clock.set(T0 + minutes(12))
    acked = event_json("issue.acknowledged", issue_id="OPS-1", at=T0 + minutes(12))
    apply_batch(Units(sessions), [("2-0", acked)], policies, clock)


def test_the_policy_in_force_gives_no_difference(lived: None) -> None:
    """--format json: the same counts on both sides, 0 differences."""
    argv = ["policy", "backtest", str(PACKAGED_POLICY), *PERIOD, "--format", "json"]
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert report["differences"] == 0 and report["real"]["escalations_by_tier"] == {"L2": 1}


def test_a_tighter_policy_shows_its_extra_escalation(lived: None, tmp_path: Path) -> None:
    """L1 within 1m: L2 at 1 min and L3 at 11 min; the tables and the issue's timelines say so."""
    tighter = tmp_path / "tighter.yaml"
    tighter.write_text(PACKAGED_POLICY.read_text().replace("within: 5m", "within: 1m", 1))
    result = CliRunner().invoke(cli.app, ["policy", "backtest", str(tighter), *PERIOD])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1 issue(s) replayed" in out and "Escalations per tier" in out
    assert "jira:OPS-1" in out and "would have" in out and "+1" in out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["/nowhere/policy.yaml"], "cannot read it"),
        ([str(PACKAGED_POLICY), "--since", "yesterday"], "since"),
        ([str(PACKAGED_POLICY), "--tz", "Mars/Olympus"], "unknown time zone"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(lived: None, argv: list[str], said: str) -> None:
    """A file that cannot be read, a period or zone that cannot be understood: exit 2."""
    result = CliRunner().invoke(cli.app, ["policy", "backtest", *argv])
    assert result.exit_code == 2 and said in result.output
    assert "Traceback" not in result.output
