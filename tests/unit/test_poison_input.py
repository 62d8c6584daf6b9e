"""Poison input at ingest: out-of-range times, NUL bytes and times outside the window are refused
with the field named; a year-overdue ladder fires in O(1) (schemas/events.py,
worker/services/ingest.py, worker/domain/sla.py, worker/domain/firing.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from schemas.events import EventWindow, IssueEvent
from schemas.messages import NotificationKind
from schemas.policy import PolicyFile, Target
from worker.domain.clock import ManualClock
from worker.domain.firing import Fired, FiringDeadline, decide
from worker.domain.sla import (
    DeadlineKind,
    Lifecycle,
    TargetClock,
    advance,
    skip_reminders,
    start,
    step_end,
)
from worker.errors import InvalidEvent
from worker.services.ingest import Outcome, apply_batch, parse_event
from worker.services.uow import Units
from worker.store.models import Issue

from .factories import T0, event_dict, event_json

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
WINDOW = EventWindow.of_seconds(300, 366 * 86400)
BEYOND_9999 = "9999-12-31T23:59:59-01:00"  # its UTC form is in year 10000
BEFORE_1 = "0001-01-01T00:00:00+01:00"  # its UTC form is in year 0
GO_ZERO = "0001-01-01T00:00:00Z"


def errors_of(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted field, message) of every error validating `raw` as JSON, as ingest does."""
    with pytest.raises(ValidationError) as caught:
        IssueEvent.model_validate_json(json.dumps(raw))
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize("at", [BEYOND_9999, BEFORE_1])
def test_an_occurred_at_whose_utc_form_leaves_years_1_to_9999_is_a_validation_error(
    at: str,
) -> None:
    """No OverflowError escapes: the error names occurred_at and says why."""
    [(field, message)] = errors_of({**event_dict(), "occurred_at": at})
    assert field == "occurred_at"
    assert "outside years 1-9999 in UTC" in message


def test_a_snooze_until_out_of_range_is_a_validation_error_naming_it() -> None:
    """snooze_until goes through the same UTC conversion and fails the same way."""
    raw = {**event_dict("issue.snoozed"), "snooze_until": BEYOND_9999}
    assert [f for f, _ in errors_of(raw)] == ["snooze_until"]


def test_the_same_times_parsed_from_python_values_fail_the_same_way() -> None:
    """A gateway adapter hands over datetime objects: they are refused alike."""
    raw = {**event_dict(), "occurred_at": datetime.fromisoformat(BEYOND_9999)}
    with pytest.raises(ValidationError) as caught:
        IssueEvent.model_validate(raw)
    assert [e["loc"] for e in caught.value.errors()] == [("occurred_at",)]


NUL_FIELDS: list[tuple[str, Any]] = [
    ("event_id", lambda d: d.update(event_id="evt\x00-1")),
    ("source", lambda d: d.update(source="ji\x00ra")),
    ("type", lambda d: d.update(type="issue.opened\x00")),
    ("issue.id", lambda d: d["issue"].update(id="OPS\x00-1")),
    ("issue.title", lambda d: d["issue"].update(title="down\x00")),
    ("issue.severity", lambda d: d["issue"].update(severity="P1\x00")),
    ("issue.status", lambda d: d["issue"].update(status="open\x00")),
    ("issue.assignee", lambda d: d["issue"].update(assignee="\x00al")),
    ("issue.labels", lambda d: d["issue"].update(labels=["db", "a\x00b"])),
    ("issue.url", lambda d: d["issue"].update(url="https://jira.example.com/\x00")),
]


@pytest.mark.parametrize(("field", "poison"), NUL_FIELDS, ids=[f for f, _ in NUL_FIELDS])
def test_a_nul_byte_in_any_string_field_is_refused_naming_the_field(
    field: str, poison: Any
) -> None:
    """PostgreSQL cannot store NUL: every database is spared it, and the error says where."""
    raw = event_dict()
    poison(raw)
    found = errors_of(raw)
    assert [f for f, _ in found] == [field]
    assert "NUL" in found[0][1]


def test_a_nul_free_event_still_validates() -> None:
    """The NUL check leaves ordinary text alone, labels and URL included."""
    IssueEvent.model_validate_json(
        json.dumps(event_dict(labels=["db"], assignee="al", url="https://x.example.com/1"))
    )


@pytest.mark.parametrize(
    ("occurred_at", "why"),
    [
        (NOW + timedelta(seconds=301), "in the future"),
        (NOW + timedelta(days=3650), "in the future"),
        (NOW - timedelta(days=366, seconds=1), "in the past"),
        (datetime(1970, 1, 1, tzinfo=UTC), "in the past"),
        (datetime.fromisoformat(GO_ZERO), "in the past"),
    ],
    ids=["5m1s-ahead", "10y-ahead", "366d1s-old", "unix-epoch", "go-zero-time"],
)
def test_the_window_refuses_times_far_ahead_or_far_behind_naming_occurred_at(
    occurred_at: datetime, why: str
) -> None:
    """Outside 5 minutes ahead / 366 days behind: a ValidationError on occurred_at."""
    event = IssueEvent.model_validate(event_dict(at=occurred_at))
    with pytest.raises(ValidationError) as caught:
        WINDOW.check(event, NOW)
    [error] = caught.value.errors()
    assert error["loc"] == ("occurred_at",)
    assert why in error["msg"]


@pytest.mark.parametrize(
    "occurred_at",
    [NOW, NOW + timedelta(seconds=300), NOW - timedelta(days=366), NOW - timedelta(days=200)],
    ids=["now", "exactly-5m-ahead", "exactly-366d-old", "a-backlog-import"],
)
def test_the_window_admits_times_within_it(occurred_at: datetime) -> None:
    """The limits themselves are inside; a half-year-old backlog is admitted."""
    WINDOW.check(IssueEvent.model_validate(event_dict(at=occurred_at)), NOW)


def test_the_window_defaults_come_from_settings() -> None:
    """event_max_skew_s defaults to 300 s and event_max_age_s to 366 days."""
    settings = Settings(_env_file=None)
    assert settings.event_max_skew_s == 300
    assert settings.event_max_age_s == 366 * 86400
    window = EventWindow.of_seconds(settings.event_max_skew_s, settings.event_max_age_s)
    assert window == WINDOW


def test_parse_event_applies_the_window_when_given_now_and_a_window() -> None:
    """Ingest's parse names occurred_at for a Go zero time; without a window it is let through."""
    raw = event_json(at=datetime.fromisoformat(GO_ZERO))
    with pytest.raises(InvalidEvent, match=r"^invalid event: occurred_at: lies .* in the past"):
        parse_event(raw, NOW, WINDOW)
    assert parse_event(raw).occurred_at == datetime.fromisoformat(GO_ZERO)
    future = event_json(at=NOW + timedelta(hours=1))
    with pytest.raises(InvalidEvent, match=r"occurred_at: lies 1h in the future"):
        parse_event(future, NOW, WINDOW)
    assert parse_event(event_json(at=NOW), NOW, WINDOW).occurred_at == NOW


def raw_with(**changes: Any) -> str:
    """A JSON line: a valid event with top-level or `issue_*` fields replaced."""
    raw = event_dict()
    for name, value in changes.items():
        if name.startswith("issue_"):
            raw["issue"][name.removeprefix("issue_")] = value
        else:
            raw[name] = value
    return json.dumps(raw)


POISON_LINES = {
    "1-0": (raw_with(occurred_at=BEYOND_9999), "occurred_at: Value error, 9999-12-31T23:59:59"),
    "2-0": (raw_with(occurred_at=BEFORE_1), "occurred_at: Value error, 0001-01-01T00:00:00+01"),
    "3-0": (
        raw_with(type="issue.snoozed", snooze_until=BEYOND_9999),
        "snooze_until: Value error",
    ),
    "4-0": (raw_with(issue_id="OPS\x00-9"), "issue.id: Value error, contains a NUL byte"),
    "5-0": (raw_with(issue_title="\x00"), "issue.title: Value error, contains a NUL byte"),
    "6-0": (raw_with(event_id="e\x00"), "event_id: Value error, contains a NUL byte"),
}


def test_parse_event_turns_every_poison_line_into_an_invalid_event_naming_the_field() -> None:
    """Out-of-range times and NUL bytes raise InvalidEvent (dead letter), never OverflowError."""
    for raw, expect in POISON_LINES.values():
        with pytest.raises(InvalidEvent) as caught:
            parse_event(raw)
        assert expect in str(caught.value)


def test_apply_batch_dead_letters_poison_lines_and_applies_their_neighbours(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """Each poison line is DEAD with the field named; the valid events around it are applied."""
    good = {
        "0-0": event_json(issue_id="OPS-1", at=T0),
        "9-0": event_json(issue_id="OPS-2", at=T0),
    }
    entries: list[tuple[str, str | bytes | None]] = [("0-0", good["0-0"])]
    entries += [(sid, raw) for sid, (raw, _) in POISON_LINES.items()]
    entries.append(("9-0", good["9-0"]))

    batch = apply_batch(Units(sessions), entries, policies, clock)

    by_id = {r.stream_id: r for r in batch.results}
    for stream_id, (_, expect) in POISON_LINES.items():
        assert by_id[stream_id].outcome is Outcome.DEAD
        assert expect in by_id[stream_id].note, by_id[stream_id].note
    assert {by_id[s].outcome for s in good} == {Outcome.APPLIED}
    with sessions() as session:
        assert sorted(session.scalars(select(Issue.external_id))) == ["OPS-1", "OPS-2"]


# O(1) catch-up of a long-overdue ladder.

YEAR = timedelta(days=365)


def minute_ladder() -> Target:
    """L1 5m, L2 10m, L3 15m, then the last tier reminded every minute."""
    return Target.model_validate(
        {
            "ladder": [
                {"tier": "L1", "within": "5m"},
                {"tier": "L2", "within": "10m"},
                {"tier": "L3", "within": "15m"},
            ],
            "renotify_every": "1m",
        }
    )


def at_step(clock: TargetClock, step: int, base_min: int, reminded: int = 0) -> TargetClock:
    return replace(clock, step=step, step_base=timedelta(minutes=base_min), reminded=reminded)


def test_a_reminder_fired_a_year_late_counts_the_passed_reminders_at_once() -> None:
    """Opened a year ago, renotify 1 min: one reminder, the count jumps past 525,570 missed
    ones, and the next is due a minute from now (not a loop per minute: it returns at once)."""
    tgt = minute_ladder()
    opened = NOW - YEAR
    clock = at_step(start("acknowledge", opened), 2, 15)  # L3 since 15 min, no reminder yet
    budget = step_end(clock, tgt)  # 30 min
    deadline = FiringDeadline(DeadlineKind.REMIND, "acknowledge", 2, budget, 1, opened + budget)

    fired = decide(Lifecycle.OPEN, 1, clock, tgt, deadline, NOW)

    assert isinstance(fired, Fired)
    assert fired.notify is NotificationKind.REMINDER
    minutes_spent = int(YEAR / timedelta(minutes=1))  # 525,600
    assert fired.clock.reminded == minutes_spent - 30 + 1  # every reminder up to now counted
    [following] = fired.arm
    assert following.due_at == NOW + timedelta(minutes=1)


def test_an_escalation_to_the_last_tier_a_year_late_skips_the_passed_reminders_at_once() -> None:
    """advance() onto the last step a year late: the reminders it missed are counted, none sent."""
    tgt = minute_ladder()
    opened = NOW - YEAR
    clock = at_step(start("acknowledge", opened), 1, 5)
    moved = advance(clock, tgt, 2, timedelta(minutes=15), NOW)
    assert moved.reminded == int(YEAR / timedelta(minutes=1)) - 30 + 1
    assert step_end(moved, tgt) > YEAR >= step_end(replace(moved, reminded=moved.reminded - 1), tgt)


def looped(clock: TargetClock, tgt: Target, spent: timedelta) -> TargetClock:
    """The loop skip_reminders replaced, as a reference."""
    while step_end(clock, tgt) <= spent:
        clock = replace(clock, reminded=clock.reminded + 1)
    return clock


@pytest.mark.parametrize("renotify", ["1m", "7m", "15m", "1h"])
def test_skip_reminders_agrees_with_the_loop_it_replaced(renotify: str) -> None:
    """For spent times around and between reminder boundaries, the division equals the loop."""
    tgt = Target.model_validate(
        {
            "ladder": [{"tier": "L1", "within": "5m"}, {"tier": "L2", "within": "10m"}],
            "renotify_every": renotify,
        }
    )
    micro = timedelta(microseconds=1)
    for reminded in (0, 1, 3):
        clock = at_step(start("acknowledge", T0), 1, 5, reminded)
        for minutes in range(0, 200, 3):
            for nudge in (-micro, timedelta(), micro):
                spent = timedelta(minutes=minutes) + nudge
                assert skip_reminders(clock, tgt, spent) == looped(clock, tgt, spent)


def test_skip_reminders_leaves_a_clock_before_the_last_step_alone() -> None:
    """Before the last step the end does not depend on reminders: nothing to count (no loop)."""
    tgt = minute_ladder()
    clock = at_step(start("acknowledge", T0), 0, 0)
    assert skip_reminders(clock, tgt, YEAR) == clock


def test_the_bad_input_corpus_holds_the_poison_cases() -> None:
    """tests/fixtures/bad_events.jsonl (run through apply and ingest by test_bad_input) carries
    the out-of-range and NUL cases, so they are dead-lettered there with their neighbours."""
    corpus = Path(__file__).resolve().parent.parent / "fixtures" / "bad_events.jsonl"
    names = {json.loads(line)["name"] for line in corpus.read_text().splitlines() if line}
    assert {
        "occurred_at beyond year 9999 in UTC",
        "occurred_at before year 1 in UTC",
        "snooze_until beyond year 9999 in UTC",
        "NUL byte in issue.id",
        "NUL byte in title",
        "NUL byte in a label",
        "NUL byte in event_id",
    } <= names
