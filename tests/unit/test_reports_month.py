"""SLA reports against a hand-worked data set: events applied through ingest on SQLite with a
manual clock (pauses, business hours, a breach carried by an escalation, a reopened issue, an
issue still open at the end; tests/support/report_month.py), and the figures worked out by hand
in the comments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tests.support.report_month import SINCE, UNTIL, at, fill
from worker.cli.main import app
from worker.services.notes import NoteRefused, add_note
from worker.services.reports import Asked, as_csv, breached_notes, sla_report
from worker.services.uow import Units


@pytest.fixture
def month(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The script applied one event per batch, the clock at each event's time."""
    return fill(sessions)


def asked(by: tuple[str, ...] = (), tz: str = "UTC") -> Asked:
    return Asked(SINCE, UNTIL, by, tz)


def rows(found: list[dict[str, Any]], **where: Any) -> dict[str, Any]:
    [row] = [r for r in found if all(r.get(k) == v for k, v in where.items())]
    return row


def test_targets_match_the_hand_worked_figures(month: sessionmaker[Session]) -> None:
    """Per target: clocks, met, breached, open, breach rate, time to meet, time paused."""
    report = sla_report(month, asked())
    ack = rows(report.targets, target="acknowledge")
    # five clocks: A, B, C (two cycles), D; B met after 20 min, breached (carried at 10 min)
    assert (ack["clocks"], ack["met"], ack["breached"], ack["open"]) == (5, 5, 1, 0)
    assert ack["breach_rate"] == 0.2  # 1 / 5
    # times to meet: 240, 1200, 300, 120, 60 s; mean 1920 / 5 = 384
    # nearest rank on [60, 120, 240, 300, 1200]: p50 rank ceil(2.5)=3 -> 240, p90 rank 5 -> 1200
    assert ack["time_to_meet_s_mean"] == 384
    assert (ack["time_to_meet_s_p50"], ack["time_to_meet_s_p90"]) == (240, 1200)
    assert ack["time_to_meet_s_p99"] == 1200
    resolve = rows(report.targets, target="resolve")
    # A: 09-10 (1 h) + 11-12 (1 h) = 7200 s, paused 3600 s of wall time
    # B: Mon 16:30-17:00 (30 min) + Tue 09:00-10:30 (90 min) business = 7200 s
    # C: 1800 s, then 3600 s; D: open at the end (not met, not breached)
    assert (resolve["clocks"], resolve["met"], resolve["open"], resolve["breached"]) == (5, 4, 1, 0)
    assert resolve["time_to_meet_s_mean"] == 4950  # (7200 + 7200 + 1800 + 3600) / 4
    # nearest rank on [1800, 3600, 7200, 7200]: p50 rank 2 -> 3600, p90 rank 4 -> 7200
    assert (resolve["time_to_meet_s_p50"], resolve["time_to_meet_s_p90"]) == (3600, 7200)
    assert resolve["paused_s"] == 3600


def test_cycles_tiers_and_lateness_match_the_hand_worked_figures(
    month: sessionmaker[Session],
) -> None:
    """Per cycle MTTA and MTTR (wall time), escalations, tiers reached and ended at, lateness."""
    report = sla_report(month, asked())
    [cycles] = report.cycles
    assert (cycles["cycles"], cycles["acknowledged"], cycles["resolved"]) == (5, 5, 4)
    assert cycles["mtta_s"] == 384  # (240 + 1200 + 300 + 120 + 60) / 5
    # A 3 h, B 18 h, C 30 min then 1 h: (10800 + 64800 + 1800 + 3600) / 4 = 20250
    assert cycles["mttr_s"] == 20250
    assert (cycles["escalations"], cycles["escalations_per_cycle"]) == (1, 0.2)
    l1, l2 = rows(report.tiers, tier="L1"), rows(report.tiers, tier="L2")
    assert (l1["reached"], l1["escalated_to"], l1["ended"]) == (5, 0, 3)  # A, C, C end at L1
    assert (l2["reached"], l2["escalated_to"], l2["ended"]) == (1, 1, 1)  # B ends at L2
    [late] = report.lateness
    # due 16:40, fired when the 16:50 acknowledgement was applied: 600,000 ms late
    assert (late["escalations"], late["late_p50_ms"], late["late_p99_ms"]) == (1, 600000, 600000)


def test_groups_and_days_in_a_time_zone(month: sessionmaker[Session]) -> None:
    """By severity, and by day in Tokyo (UTC+9), where B's Monday 16:30 is Tuesday 01:30."""
    by_severity = sla_report(month, asked(("severity",))).targets
    p1 = rows(by_severity, severity="P1", target="acknowledge")
    assert (p1["clocks"], p1["time_to_meet_s_mean"]) == (3, 220)  # (240 + 300 + 120) / 3
    utc = {r["day"]: r["cycles"] for r in sla_report(month, asked(("day",))).cycles}
    assert utc == {"2024-03-04": 2, "2024-03-05": 2, "2024-03-06": 1}
    tokyo = {r["day"]: r["cycles"] for r in sla_report(month, asked(("day",), "Asia/Tokyo")).cycles}
    assert tokyo == {"2024-03-04": 1, "2024-03-05": 3, "2024-03-06": 1}
    labelled = sla_report(month, asked(("label",))).cycles
    assert rows(labelled, label="db")["cycles"] == 1  # A only; the rest have no label


def test_notes_of_breached_issues(month: sessionmaker[Session]) -> None:
    """A note is refused on an open issue, written on a resolved one, and listed when the
    issue breached in the period."""
    units, now = Units(month), at(2, 11)
    with pytest.raises(NoteRefused, match="notes are for resolved issues"):
        add_note(units, "jira:D", "too early", "ann", now)
    add_note(units, "jira:B", "root cause: L1 pager muted", "ann", now)
    add_note(units, "jira:A", "not breached: not listed", "ann", now)
    [note] = breached_notes(month, asked())
    assert (note.issue, note.author, note.text) == ("jira:B", "ann", "root cause: L1 pager muted")


def test_csv_and_cli_agree_with_the_service(
    month: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`escalator report --format json|csv` prints the same figures as the service."""
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", str(engine.url))
    runner = CliRunner()
    args = ["report", "--since", "2024-03-04", "--until", "2024-03-06T12:00:00+00:00"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert rows(body["cycles"])["mttr_s"] == 20250
    assert rows(body["targets"], target="acknowledge")["breached"] == 1
    csv_out = runner.invoke(app, [*args, "--format", "csv", "--section", "cycles"])
    assert csv_out.output == as_csv(sla_report(month, asked()), "cycles")
    bad = runner.invoke(app, ["report", "--by", "colour"])
    assert bad.exit_code == 2 and "cannot group by 'colour'" in bad.output
