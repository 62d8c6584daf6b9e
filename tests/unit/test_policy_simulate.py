"""`escalator policy simulate`: the timeline of a hypothetical issue, from the policy alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from config.settings import PACKAGED_POLICY
from schemas.events import EventType, Severity
from worker.cli.main import app
from worker.domain.simulate import PlannedEvent, simulate
from worker.services.policy_loader import load_policy


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_p3_on_business_hours_matches_the_hand_worked_case() -> None:
    """P3 opened Friday 16:30 UTC: L2 Monday 09:30, L3 13:30; first response breached Monday
    12:30, resolve Wednesday 16:30."""
    steps = simulate(load_policy(PACKAGED_POLICY), Severity.P3, utc(2026, 3, 6, 16, 30))
    escalations = [(s.at, s.tier) for s in steps if s.kind == "escalate"]
    assert escalations == [(utc(2026, 3, 9, 9, 30), "L2"), (utc(2026, 3, 9, 13, 30), "L3")]
    reminders = [s.at for s in steps if s.kind == "remind"]
    assert reminders == [utc(2026, 3, 10, 13, 30), utc(2026, 3, 11, 13, 30)]
    breaches = [s.at for s in steps if s.kind == "breach"]
    assert breaches == [utc(2026, 3, 9, 12, 30), utc(2026, 3, 11, 16, 30)]


def test_acknowledging_stops_the_ladder_but_not_the_resolve_target() -> None:
    """A P1 acknowledged at L2 escalates once and still breaches its 4 h resolve target."""
    ack = PlannedEvent(EventType.ACKNOWLEDGED, utc(2026, 3, 6, 16, 40))
    steps = simulate(load_policy(PACKAGED_POLICY), Severity.P1, utc(2026, 3, 6, 16, 30), [ack])
    kinds = [(s.kind, s.tier) for s in steps if s.kind not in ("armed",)]
    assert kinds == [
        ("opened", "L1"),
        ("escalate", "L2"),
        ("event", "L2"),
        ("warn", "L2"),  # half of the 4 h resolve time
        ("warn", "L2"),  # three quarters
        ("breach", "L2"),
    ]


def test_a_severity_upgrade_escalates_at_once() -> None:
    """A P4 raised to P1 after 20 minutes is past P1's L1 (10:05) and L2 (10:15) deadlines: at
    the upgrade it takes both steps, one after the other (L2 and L3 are each told); the manager's
    turn stays on schedule."""
    upgrade = PlannedEvent(EventType.UPDATED, utc(2026, 3, 4, 10, 20), Severity.P1)
    steps = simulate(load_policy(PACKAGED_POLICY), Severity.P4, utc(2026, 3, 4, 10, 0), [upgrade])
    escalations = [(s.at, s.tier) for s in steps if s.kind == "escalate"]
    assert escalations == [
        (utc(2026, 3, 4, 10, 20), "L2"),  # at the upgrade, one step at a time
        (utc(2026, 3, 4, 10, 20), "L3"),
        (utc(2026, 3, 4, 10, 30), "manager"),  # 10:15 + L3's 15 minutes
    ]


def test_the_cli_prints_json_in_the_local_zone_and_utc(tmp_path: Path) -> None:
    """--json gives each step in the chosen zone and in UTC; --events feeds later events."""
    events = tmp_path / "timeline.jsonl"
    events.write_text('{"type": "issue.resolved", "at": "2026-03-27T17:00:00+01:00"}\n')
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "simulate",
            str(PACKAGED_POLICY),
            "--severity",
            "critical",
            "--opened",
            "2026-03-27T16:30:00+01:00",
            "--tz",
            "Europe/Berlin",
            "--events",
            str(events),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["policy"] == "critical"
    first = data["timeline"][0]
    assert (first["at"], first["at_utc"]) == (
        "2026-03-27T16:30:00+01:00",
        "2026-03-27T15:30:00+00:00",
    )
    kinds = [row["kind"] for row in data["timeline"]]
    assert kinds[-1] == "event" and "breach" not in kinds


def test_the_cli_refuses_a_naive_opening_time() -> None:
    """--opened without an offset is an error with exit status 2, not a guess."""
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "simulate",
            str(PACKAGED_POLICY),
            "--severity",
            "P2",
            "--opened",
            "2026-03-27T16:30:00",
        ],
    )
    assert result.exit_code == 2
    assert "time zone offset" in result.output
