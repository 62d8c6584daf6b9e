"""Bounds on the expensive reads (report and backtest periods, one backtest at a time), reports
read from one pass over the facts, CSV cells safe from spreadsheet formulas, and a backtest
that skips what it cannot read instead of failing."""

from __future__ import annotations

import csv
import io
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from schemas.policy import PolicyFile
from tests.support.report_month import SINCE, UNTIL, fill
from worker.cli.main import app
from worker.domain.clock import ManualClock
from worker.domain.reports import Report
from worker.services import backtest as backtest_service
from worker.services import reports as report_service
from worker.services.backtest import BadPeriod, Busy, backtest, backtest_alone, period
from worker.services.ingest import apply_batch
from worker.services.reports import Asked, ReportError, as_csv, ask, cell
from worker.services.uow import Units
from worker.store import report_queries
from worker.store.backtest_views import OUTBOX
from worker.store.event_bodies import PROCESSED

from .factories import T0, event_json, minutes

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("since", ["99999999d", "9" * 400 + "d", "0001-01-01T00:00+05:00"])
def test_a_report_period_out_of_range_is_bad_input(since: str) -> None:
    """A `since` before year 1 (or past any timedelta) is a ReportError, not an OverflowError."""
    with pytest.raises(ReportError):
        ask(since, None, ["month"], "UTC", NOW)


def test_a_report_period_is_capped_at_400_days_unless_by_month() -> None:
    """400 days at most (day, week, no period); by month up to 3660 days, not more."""
    assert ask("400d", None, ["day"], "UTC", NOW).since == NOW - timedelta(days=400)
    for by in (["day"], ["week"], []):
        with pytest.raises(ReportError, match="at most 400 days"):
            ask("401d", None, by, "UTC", NOW)
    assert ask("3660d", None, ["month"], "UTC", NOW).by == ("month",)
    with pytest.raises(ReportError, match="at most 3660 days"):
        ask("3661d", None, ["month", "severity"], "UTC", NOW)


def test_the_cli_report_with_an_overflowing_period_exits_2_with_one_line(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`escalator report --since 99999999d`: exit status 2 and a single line, no traceback."""
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", str(engine.url))
    result = CliRunner().invoke(app, ["report", "--since", "99999999d"])
    assert result.exit_code == 2, result.output
    assert "out of range" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_reports_and_notes_read_the_facts_once(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sla_reports_and_notes` calls `fact_lines` once and gives what the two calls give."""
    month = fill(sessions)
    asked = Asked(SINCE, UNTIL, ("day",), "UTC")
    groupings = [("day",), ("severity",), ()]
    apart = report_service.sla_reports(month, asked, groupings)
    notes = report_service.breached_notes(month, asked)
    calls: list[object] = []
    real = report_queries.fact_lines

    def counted(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(report_service, "fact_lines", counted)
    together, both_notes = report_service.sla_reports_and_notes(month, asked, groupings)
    assert len(calls) == 1
    assert [r.sections() for r in together] == [r.sections() for r in apart]
    assert both_notes == notes


class _Rows:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def sections(self) -> dict[str, list[dict[str, Any]]]:
        return {"targets": self.rows}


def test_csv_cells_that_start_a_formula_are_quoted_and_numbers_are_not() -> None:
    """Text starting with = + - @ tab CR gets a leading ', numbers (negative too) stay numbers."""
    row = {
        "label": '=HYPERLINK("http://x")',
        "assignee": "+1",
        "source": "-cmd",
        "target": "@SUM(A1)",
        "tab": "\tx",
        "cr": "\rx",
        "plain": "ack",
        "late": -5,
        "rate": -0.5,
        "none": None,
    }
    text = as_csv(cast(Report, _Rows([row])), "targets")
    [header, cells] = list(csv.reader(io.StringIO(text, newline="")))
    assert header == list(row)
    assert cells[:6] == ['\'=HYPERLINK("http://x")', "'+1", "'-cmd", "'@SUM(A1)", "'\tx", "'\nx"]
    assert cells[6:] == ["ack", "-5", "-0.5", ""]
    assert text.splitlines()[-1].endswith(",ack,-5,-0.5,")  # numbers written bare, unquoted
    assert [cell(v) for v in ("-1", -1, 0.0, None, "a\r\nb")] == ["'-1", -1, 0.0, "", "a\nb"]


@pytest.mark.parametrize(
    "since",
    ["401d", "58w", "99999999999999d", "9" * 5000 + "d", "2024-01-01T00:00+00:00"],
)
def test_a_backtest_period_is_capped_at_400_days(since: str) -> None:
    """More than 400 days (as a span, an overflowing span, or ISO times) is a BadPeriod."""
    with pytest.raises(BadPeriod):
        period(since, None, NOW)
    assert period("400d", None, NOW) == (NOW - timedelta(days=400), NOW)


def test_only_one_backtest_runs_at_a_time(
    sessions: sessionmaker[Session], policies: PolicyFile
) -> None:
    """While one backtest holds the process's slot another is refused at once with Busy."""
    start, end = T0 - minutes(60), T0 + minutes(60)
    assert backtest_service._RUNNING.acquire(blocking=False)
    try:
        with pytest.raises(Busy, match="already running"):
            backtest_alone(sessions, policies, start, end)
    finally:
        backtest_service._RUNNING.release()
    assert backtest_alone(sessions, policies, start, end).skipped == {}  # the slot is free again


def _two_issues(sessions: sessionmaker[Session], policies: PolicyFile) -> None:
    """OPS-1 and OPS-2 opened at T0, escalated at 5 min (L1 5m), acknowledged at 12 min."""
    clock = ManualClock(T0)
    opened: list[tuple[str, str | bytes | None]] = [
        (f"{n}-0", event_json(issue_id=f"OPS-{n}", at=T0)) for n in (1, 2)
    ]
    apply_batch(Units(sessions), opened, policies, clock)
    clock.set(T0 + minutes(12))
    acked: list[tuple[str, str | bytes | None]] = [
        (f"{n + 2}-1", event_json("issue.acknowledged", issue_id=f"OPS-{n}", at=T0 + minutes(12)))
        for n in (1, 2)
    ]
    apply_batch(Units(sessions), acked, policies, clock)


@pytest.mark.parametrize(
    "body",
    [
        b"not zlib",
        zlib.compress(b"{not json"),
        zlib.compress(b'{"no_such_field": 1}'),
        zlib.compress(b"[1, 2]"),
    ],
)
def test_an_unreadable_event_skips_its_issue_and_the_backtest_goes_on(
    sessions: sessionmaker[Session], policies: PolicyFile, body: bytes
) -> None:
    """A body that does not decompress, parse or validate skips that issue with the reason;
    the other issue is still replayed."""
    _two_issues(sessions, policies)
    with sessions() as session, session.begin():
        [(row_id,)] = session.execute(
            select(PROCESSED.c.event_id)
            .where(PROCESSED.c.type == "issue.opened")
            .order_by(PROCESSED.c.event_id)
            .limit(1)
        ).all()
        session.execute(update(PROCESSED).where(PROCESSED.c.event_id == row_id).values(body=body))
    result = backtest(sessions, policies, T0 - minutes(60), T0 + minutes(13))
    assert len(result.skipped) == 1
    [why] = result.skipped.values()
    assert row_id in why and "cannot be read" in why
    assert result.real.issues == 1 and result.real.escalations_by_tier == {"L2": 1}


def test_an_outbox_row_without_occurred_at_is_left_out(
    sessions: sessionmaker[Session], policies: PolicyFile
) -> None:
    """A notification payload without `occurred_at` (or with a bad one) is skipped, not a
    TypeError: the backtest still answers and counts the other rows."""
    _two_issues(sessions, policies)
    with sessions() as session, session.begin():
        ids = sorted(session.scalars(select(OUTBOX.c.id)))
        assert len(ids) >= 2, "the packaged policy writes notifications"
        session.execute(update(OUTBOX).where(OUTBOX.c.id == ids[0]).values(payload={}))
        session.execute(
            update(OUTBOX).where(OUTBOX.c.id == ids[1]).values(payload={"occurred_at": "soon"})
        )
    result = backtest(sessions, policies, T0 - minutes(60), T0 + minutes(13))
    assert result.skipped == {} and result.real.issues == 2
    assert result.real.escalations_by_tier == {"L2": 2}
