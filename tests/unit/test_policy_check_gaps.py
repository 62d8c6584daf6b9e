"""`escalator policy check` warns about tiers that reach nobody without failing, unless
--strict; roles log one line per gap when they load the policy."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs
from typer.testing import CliRunner

from worker.cli.main import app
from worker.services.policy_loader import load_policy, warn_gaps

FROM = "2026-12-01T12:00:00+00:00"
GAPPY = """\
channels:
  log: {type: log}
  hook: {type: webhook, url: "https://hooks.example.com/x"}
rosters:
  l2:
    members: [cat, dan]
    shift: 1d
    until: 2026-12-10
    overrides:
      - {who: null, start: "2026-12-05T18:00:00+00:00", end: "2026-12-07T09:00:00+00:00"}
tiers:
  - {name: L1, assignee: ana, channels: [hook]}
  - {name: L2, roster: l2, channels: [hook]}
  - {name: manager, assignee: mo, channels: {assigned: [hook], escalated: [log]}}
policies:
  - name: p
    acknowledge:
      ladder: [{tier: L1, within: 5m}, {tier: L2, within: 5m}, {tier: manager, within: 5m}]
default: p
"""
COVERED = """\
channels:
  hook: {type: webhook, url: "https://hooks.example.com/x"}
tiers:
  - {name: L1, assignee: ana, channels: [hook]}
policies:
  - {name: p, acknowledge: {ladder: [{tier: L1, within: 5m}]}}
default: p
"""


def write(tmp_path: Path, text: str) -> Path:
    """The policy `text` as a file."""
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_gaps_are_warnings_and_the_check_still_passes(tmp_path: Path) -> None:
    """Each gap prints one WARNING line naming the tier and the times; exit status 0."""
    path = write(tmp_path, GAPPY)
    result = CliRunner().invoke(app, ["policy", "check", str(path), "--from", FROM])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "OK: 1 policies" in out
    assert (
        "WARNING tier L2: nobody on call from Sat 2026-12-05 18:00 UTC to "
        "Mon 2026-12-07 09:00 UTC (1 day 15h)"
    ) in out
    assert "WARNING tier L2: nobody on call from Thu 2026-12-10 09:00 UTC on, with no end" in out
    assert "WARNING tier manager: escalations reach no channel" in out
    assert "tier L1" not in out
    assert out.count("WARNING") == 3 and "3 warning(s)" in out


def test_strict_makes_warnings_fail_the_check(tmp_path: Path) -> None:
    """With --strict a file with gaps exits 1; a fully covered file still exits 0."""
    gappy = CliRunner().invoke(
        app, ["policy", "check", str(write(tmp_path, GAPPY)), "--strict", "--from", FROM]
    )
    assert gappy.exit_code == 1 and "--strict" in gappy.output
    covered = CliRunner().invoke(
        app, ["policy", "check", str(write(tmp_path, COVERED)), "--strict"]
    )
    assert covered.exit_code == 0, covered.output
    assert "WARNING" not in covered.output


def test_errors_still_fail_and_a_bad_from_is_a_usage_error(tmp_path: Path) -> None:
    """An invalid file exits 1 (no warnings); --from without an offset exits 2."""
    bad = write(tmp_path, "tiers: [{name: L1}]\npolicies: []\ndefault: nowhere\n")
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 1 and "WARNING" not in result.output
    good = write(tmp_path, COVERED)
    naive = CliRunner().invoke(app, ["policy", "check", str(good), "--from", "2026-12-01T12:00"])
    assert naive.exit_code == 2 and "time zone offset" in naive.output


def test_roles_log_one_warning_per_gap_when_they_load_the_policy(tmp_path: Path) -> None:
    """`warn_gaps` (called where roles load and reload the policy) logs one event per gap."""
    path = write(tmp_path, GAPPY)
    with capture_logs() as logs:
        gaps = warn_gaps(load_policy(path), path, datetime(2026, 12, 1, 12, tzinfo=UTC))
    events = [e for e in logs if e["event"] == "policy.coverage_gap"]
    assert len(events) == len(gaps) == 3
    assert all(e["log_level"] == "warning" and e["file"] == str(path) for e in events)
    assert {(e["tier"], e["reason"]) for e in events} == {
        ("L2", "nobody_on_call"),
        ("manager", "no_channel"),
    }
    assert events[0]["start"] == "2026-12-05T18:00:00+00:00"
