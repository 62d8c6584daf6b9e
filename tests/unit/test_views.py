"""The read views (worker/store/views.py): issue lists with their next deadline in one statement."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from worker.cli import inspect
from worker.cli import main as cli
from worker.store import views
from worker.store.models import Deadline, TimelineEntry

from .factories import T0, issue_row


def add_issue(
    sessions: sessionmaker[Session],
    name: str,
    due_in: tuple[int, ...] = (),
    fired_in: tuple[int, ...] = (),
    lifecycle: str = "open",
    severity: str = "P1",
) -> int:
    """An issue `jira:<name>` with armed deadlines due in `due_in` minutes and fired ones."""
    with sessions() as s, s.begin():
        issue = issue_row(name, title=f"{name} is down", severity=severity, lifecycle=lifecycle)
        s.add(issue)
        for minutes, state in [(m, "armed") for m in due_in] + [(m, "fired") for m in fired_in]:
            s.add(
                Deadline(
                    issue=issue,
                    kind="escalate",
                    target="acknowledge",
                    tier_index=minutes,
                    clock_version=1,
                    due_at=T0 + timedelta(minutes=minutes),
                    state=state,
                )
            )
        s.flush()
        return issue.id


@pytest.fixture
def selects() -> Iterator[list[str]]:
    """Every SELECT any engine sends while the test runs (the CLI builds engines of its own)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_next_deadline_is_the_armed_one_due_first(sessions: sessionmaker[Session]) -> None:
    """Each listed issue carries its earliest armed deadline; fired ones and none are skipped."""
    busy = add_issue(sessions, "OPS-1", due_in=(15, 5, 10), fired_in=(1,))
    idle = add_issue(sessions, "OPS-2", fired_in=(2,))
    done = add_issue(sessions, "OPS-3", due_in=(3,), lifecycle="resolved")
    with sessions() as s:
        listed = {row.issue.id: row.next_deadline for row in views.issues_by_urgency(s)}
        everything = {row.issue.id for row in views.issues_by_urgency(s, include_resolved=True)}
        page = views.issue_page(s, open_only=False, offset=0, limit=10)
        one = views.issue_by_key(s, "jira", "OPS-1")
        missing = views.issue_by_key(s, "jira", "OPS-9")
    assert set(listed) == {busy, idle} and everything == {busy, idle, done}
    nxt = listed[busy]
    assert nxt is not None and nxt.due_at == T0 + timedelta(minutes=5)
    assert listed[idle] is None
    assert [row.issue.id for row in page] == [busy, idle, done]
    assert page[2].next_deadline is not None and page[2].next_deadline.tier_index == 3
    assert one is not None and one.next_deadline is not None
    assert one.next_deadline.due_at == T0 + timedelta(minutes=5)
    assert missing is None


@pytest.mark.parametrize("count", [3, 7])
def test_an_issue_list_is_one_statement_whatever_the_count(
    sessions: sessionmaker[Session], selects: list[str], count: int
) -> None:
    """Listing issues with their next deadline sends one SELECT, for 3 issues as for 7."""
    for n in range(count):
        add_issue(sessions, f"OPS-{n}", due_in=(5 + n, 20), fired_in=(1,))
    with sessions() as s:
        selects.clear()
        urgent = views.issues_by_urgency(s)
        assert len(selects) == 1
        selects.clear()
        page = views.issue_page(s, open_only=True, offset=0, limit=50)
        assert len(selects) == 1
    assert len(urgent) == len(page) == count
    assert all(row.next_deadline is not None for row in urgent)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI on the unit test's SQLite file, without logging set-up, on a wide console."""
    for name in list(os.environ):
        if name.startswith("ESCALATOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", f"sqlite:///{tmp_path / 'unit.db'}")
    monkeypatch.setattr(cli, "configure_logging", lambda _settings: None)
    monkeypatch.setattr(inspect, "console", Console(width=300))


def _issues_command(selects: list[str]) -> tuple[str, int]:
    selects.clear()
    result = CliRunner().invoke(cli.app, ["issues"])
    assert result.exit_code == 0, result.output
    return result.output, len(selects)


def test_the_issues_command_does_not_query_per_issue(
    cli_env: None, sessions: sessionmaker[Session], selects: list[str]
) -> None:
    """`escalator issues` sends as many SELECTs for 6 issues as for 3, and shows the next one."""
    for n in range(3):
        add_issue(sessions, f"OPS-{n}", due_in=(5 + n, 30))
    output, three = _issues_command(selects)
    for n in range(3, 6):
        add_issue(sessions, f"OPS-{n}", due_in=(5 + n, 30))
    output, six = _issues_command(selects)
    assert three == six
    assert all(f"jira:OPS-{n}" in output for n in range(6))
    assert output.count("acknowledge escalate") == 6


def test_show_prints_timeline_and_armed_deadlines(
    cli_env: None, sessions: sessionmaker[Session]
) -> None:
    """`escalator show` lists the timeline in order of time and every armed deadline."""
    issue_id = add_issue(sessions, "OPS-1", due_in=(5, 10), fired_in=(1,))
    with sessions() as s, s.begin():
        later = T0 + timedelta(minutes=1)
        s.add(TimelineEntry(issue_id=issue_id, at=later, kind="event", message="later"))
        s.add(TimelineEntry(issue_id=issue_id, at=T0, kind="event", message="first"))
    result = CliRunner().invoke(cli.app, ["show", "jira:OPS-1"])
    assert result.exit_code == 0, result.output
    assert result.output.index("first") < result.output.index("later")
    assert result.output.count("armed: acknowledge escalate") == 2
    missing = CliRunner().invoke(cli.app, ["show", "jira:OPS-9"])
    assert missing.exit_code == 1 and "no issue" in missing.output


def test_recent_timeline_keeps_the_newest_in_order(sessions: sessionmaker[Session]) -> None:
    """The API's timeline is the last N entries, oldest of them first."""
    issue_id = add_issue(sessions, "OPS-1")
    with sessions() as s, s.begin():
        for n in range(5):
            s.add(TimelineEntry(issue_id=issue_id, at=T0, kind="event", message=str(n)))
    with sessions() as s:
        assert [e.message for e in views.recent_timeline(s, issue_id, 3)] == ["2", "3", "4"]
        assert [e.message for e in views.timeline(s, issue_id)] == ["0", "1", "2", "3", "4"]
