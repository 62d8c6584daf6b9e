"""Wording (worker/domain/wording.py): every text a person reads names the right target in
proper English, and the adapters and handlers take their words from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.events import IssueEvent
from schemas.messages import IssueRef, Notification, NotificationKind
from schemas.policy import TARGET_NAMES, PolicyFile, Target
from worker.domain import (
    DeadlineKind,
    DeadlineSpec,
    Fired,
    FiringDeadline,
    Lifecycle,
    TargetClock,
    apply_event,
    decide,
    wording,
)
from worker.domain.sla import plan, start
from worker.notify.templates import Renderer
from worker.writeback.base import comment_text

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
KINDS = tuple(NotificationKind)

# Written out by hand, not from the module under test: (name, must do, has not done, headline).
SAID = {
    "acknowledge": ("acknowledge", "acknowledge", "acknowledged", "still not acknowledged"),
    "first_response": ("first response", "respond", "responded", "still no first response"),
    "next_response": ("next response", "respond", "responded", "still no next response"),
    "resolve": ("resolve", "resolve", "resolved", "still not resolved"),
}


def m(n: float) -> timedelta:
    return timedelta(minutes=n)


def expected_headline(kind: NotificationKind, target: str) -> str:
    """What the title of a `kind` message about `target` held by L3 should say."""
    name, _, _, reminder = SAID[target]
    return {
        NotificationKind.ASSIGNED: "assigned to L3",
        NotificationKind.ESCALATED: "escalated to L3",
        NotificationKind.REMINDER: f"{reminder} (L3)",
        NotificationKind.WARNING: f"is about to breach its {name} target",
        NotificationKind.BREACH: f"breached its {name} target",
        NotificationKind.RESOLVED: "resolved",
    }[kind]


def notification(kind: NotificationKind, target: str | None, **extra: Any) -> Notification:
    """A message of `kind` about `target` of jira:OPS-1, for L3."""
    fields: dict[str, Any] = {
        "id": "msg_1",
        "kind": kind,
        "issue": IssueRef(key="jira:OPS-1", source="jira", id="OPS-1", title="Down", severity="P1"),
        "tier": "L3",
        "assignee": "carol",
        "text": "x",
        "occurred_at": T0,
        "target": target,
    }
    fields.update(extra)
    return Notification.model_validate(fields)


def test_every_target_has_its_words() -> None:
    """The table covers exactly the policy's targets, with real past forms of their verbs."""
    assert set(wording.TARGETS) == set(TARGET_NAMES) == set(SAID)
    for name, (label, verb, done, _) in SAID.items():
        said = wording.words(name)
        assert (said.label, said.verb, said.done) == (label, verb, done)
        assert wording.label(name) == label


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_headline_names_the_target(kind: NotificationKind, target: str) -> None:
    """Every target and kind: the headline, and the packaged title built from it, read right."""
    assert wording.headline(kind, "L3", target) == expected_headline(kind, target)
    title, _ = Renderer().render(notification(kind, target), "slack")
    assert title == f"[P1] jira:OPS-1 {expected_headline(kind, target)}"
    assert "respondd" not in title and "dd " not in title


@pytest.mark.parametrize("target", ["first_response", "next_response", "acknowledge"])
def test_reminder_and_breach_headlines_no_longer_say_acknowledged_or_resolve(target: str) -> None:
    """The old bug: a reminder said `acknowledged` and a breach `resolve target`, whatever the
    target. Now the first-response reminder and breach speak of the first response."""
    reminder = wording.headline(NotificationKind.REMINDER, "L3", target)
    breach = wording.headline(NotificationKind.BREACH, "L3", target)
    assert "resolve target" not in breach
    if target != "acknowledge":
        assert "acknowledged" not in reminder
        assert SAID[target][0] in reminder and SAID[target][0] in breach


def test_headline_without_a_target_names_none() -> None:
    """An older message with no target gets neutral words, not another target's."""
    assert wording.headline(NotificationKind.REMINDER, "L3") == "still not met (L3)"
    assert wording.headline(NotificationKind.BREACH, "L3") == "breached a target"
    assert wording.headline(NotificationKind.WARNING, "L3") == "is about to breach"


def ladder_target() -> Target:
    """L1 5m, L2 10m, L3 15m (reminded every 15m); the target 20m, warned at half time."""
    return Target.model_validate(
        {
            "within": "20m",
            "warn_at": [0.5],
            "ladder": [
                {"tier": "L1", "within": "5m"},
                {"tier": "L2", "within": "10m"},
                {"tier": "L3", "within": "15m"},
            ],
            "renotify_every": "15m",
        }
    )


def fired(clock: TargetClock, target: Target, spec: DeadlineSpec, now: datetime) -> Fired:
    """Fire `spec`, which must count."""
    deadline = FiringDeadline(
        spec.kind, spec.target, spec.step, spec.budget, 1, spec.due_at, spec.fraction
    )
    result = decide(Lifecycle.OPEN, 1, clock, target, deadline, now)
    assert isinstance(result, Fired), result
    return result


def only(specs: list[DeadlineSpec], kind: DeadlineKind) -> DeadlineSpec:
    (found,) = [s for s in specs if s.kind is kind]
    return found


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_firing_texts_name_the_target_with_the_right_verb(name: str) -> None:
    """Escalation, reminder, warning and breach of each target: `did not respond`, `still has
    not responded (first response)` (never `respondd`), `50% of the first response time`."""
    label, verb, done, _ = SAID[name]
    target = ladder_target()
    clock = start(name, T0)
    specs = plan(clock, target)
    warn = fired(clock, target, only(specs, DeadlineKind.WARN), T0 + m(10))
    assert warn.message == (
        f"50% of the {label} time (20m) has passed; it breaches at 2026-03-04T10:20:00+00:00"
    )
    escalate = fired(clock, target, only(specs, DeadlineKind.ESCALATE), T0 + m(5))
    assert escalate.message == f"L1 did not {verb} within 5m: escalated to L2"
    at_l2 = escalate.clock
    escalate = fired(at_l2, target, escalate.arm[0], T0 + m(15))
    assert escalate.message == f"L2 did not {verb} within 10m: escalated to L3"
    breach = fired(escalate.clock, target, only(specs, DeadlineKind.BREACH), T0 + m(20))
    assert breach.message == f"breached the {label} target of 20m"
    remind = fired(breach.clock, target, escalate.arm[0], T0 + m(30))
    which = f" ({label})" if verb == "respond" else ""  # only "responded" needs the target
    assert remind.message == (
        f"L3 still has not {done}{which}; next reminder at 2026-03-04T10:45:00+00:00"
    )
    for text in (warn.message, escalate.message, breach.message, remind.message):
        assert "respondd" not in text and "acknowledged" not in text.replace(done, "")


def test_a_breach_carried_by_a_ladder_step_names_its_target() -> None:
    """A ladder step ending at the target time escalates and reports that target's breach."""
    steps = [{"tier": "L1", "within": "5m"}, {"tier": "L2", "within": "5m"}]
    target = Target.model_validate({"ladder": steps})
    clock = start("first_response", T0)
    escalate = fired(clock, target, only(plan(clock, target), DeadlineKind.ESCALATE), T0 + m(5))
    assert escalate.message == (
        "L1 did not respond within 5m: escalated to L2; the first response target is breached"
    )


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (NotificationKind.ASSIGNED, "P1 jira:OPS-1 assigned to L3: Down"),
        (NotificationKind.ESCALATED, "P1 jira:OPS-1 escalated to L3: why"),
        (NotificationKind.REMINDER, "P1 jira:OPS-1 reminder for L3: why"),
        (NotificationKind.WARNING, "P1 jira:OPS-1 warning for L3: why"),
        (NotificationKind.BREACH, "P1 jira:OPS-1 why"),
        (NotificationKind.RESOLVED, "P1 jira:OPS-1 resolved: Down"),
    ],
)
def test_message_text_per_kind(kind: NotificationKind, text: str) -> None:
    """The one-line `text` of each kind of notification (what the outbox writes)."""
    assert wording.message_text(kind, "P1", "jira:OPS-1", "L3", "Down", "why") == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (65, "1m5s"), (3600, "1h"), (90061, "25h1m1s"), (-65, "1m5s")],
)
def test_one_duration_format_for_people(seconds: int, text: str) -> None:
    """Durations read as policy files write them, hours the largest unit, without a sign."""
    assert wording.duration(timedelta(seconds=seconds)) == text


def test_template_time_left_and_over_use_that_format() -> None:
    """`Time left` and `Over by` in the packaged body use wording's duration."""
    ahead = notification(NotificationKind.REMINDER, "resolve", due_at=T0 + m(65))
    behind = notification(NotificationKind.BREACH, "resolve", due_at=T0 - m(90))
    assert "Time left: 1h5m" in Renderer().render(ahead, "x")[1]
    assert "Over by: 1h30m" in Renderer().render(behind, "x")[1]


def test_writeback_comment_reads_right() -> None:
    """The ticket comment: severity, reassignment, on-call person, reason, message id."""
    why = "L2 did not respond"
    message = notification(NotificationKind.ESCALATED, "first_response", reason=why)
    assert comment_text(message) == (
        "Escalator: P1 escalated to L3 (on call: carol). L2 did not respond. [msg_1]"
    )
    nobody = notification(NotificationKind.ASSIGNED, None, assignee=None)
    assert comment_text(nobody) == "Escalator: P1 assigned to L3 (on call: nobody). [msg_1]"


def test_adapters_take_their_words_from_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the words in wording and the write-back comment and the message title follow."""
    monkeypatch.setattr(wording, "comment", lambda *args: "WORDS")
    monkeypatch.setattr(wording, "headline", lambda *args: "HEADLINE")
    message = notification(NotificationKind.REMINDER, "first_response")
    assert comment_text(message) == "WORDS [msg_1]"
    assert Renderer().render(message, "x")[0] == "[P1] jira:OPS-1 HEADLINE"


POLICIES = PolicyFile.model_validate(
    {
        "tiers": [{"name": "L1"}],
        "policies": [
            {
                "name": "std",
                "first_response": {"within": "30m"},
                "resolve": {"within": "4h", "pause_on": ["on_hold"]},
            }
        ],
        "default": "std",
    }
)


def opened(status: str) -> IssueEvent:
    """jira:OPS-1 opened at T0 in `status`."""
    return IssueEvent.model_validate(
        {
            "event_id": f"e-{status}",
            "type": "issue.opened",
            "occurred_at": T0.isoformat(),
            "source": "jira",
            "issue": {"id": "OPS-1", "title": "Down", "severity": "P2", "status": status},
        }
    )


def test_timeline_notes_read_right() -> None:
    """An issue opened on hold: the open note and the resolve clock's pause note."""
    transition = apply_event(None, opened("on_hold"), POLICIES)
    assert transition.note == "opened as P2 under policy std"
    assert transition.notes == ("resolve clock paused (status 'on_hold') with 4h left",)
    assert transition.notify == ((NotificationKind.ASSIGNED, "opened under policy std"),)


def test_timeline_notes_come_from_wording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the words in wording and the handlers' notes follow."""
    monkeypatch.setattr(wording, "paused", lambda target, status, left: f"P:{target}:{status}")
    monkeypatch.setattr(wording, "opened", lambda severity, policy: f"O:{severity}:{policy}")
    transition = apply_event(None, opened("on_hold"), POLICIES)
    assert transition.note == "O:P2:std"
    assert transition.notes == ("P:resolve:on_hold",)


def test_delivery_lines_read_as_sentences() -> None:
    """What the timeline and the outbox say of a delivery, a moot message and a re-plan."""
    assert wording.sent("escalated", "L2", "chat") == "escalated sent to L2 via chat"
    assert wording.sent("reminder", "L1", "chat", "msg_1") == (
        "reminder sent to L1 via chat (digest msg_1)"
    )
    assert wording.what("assigned", writeback=True) == "write-back"
    assert wording.dead("warning", "hook", 3, "HTTP 500") == (
        "warning to hook is dead after 3 attempts: HTTP 500"
    )
    assert wording.writeback_failed("writeback:jira", 2, 4.0, "HTTP 503") == (
        "write-back via writeback:jira failed (attempt 2), retry in 4.0s: HTTP 503"
    )
    at = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    assert wording.mooted(None, at) == "issue resolved: cancelled at 2024-03-04T09:00:00+00:00"
    assert wording.mooted({"resolve", "acknowledge"}, at).startswith("acknowledge, resolve met:")
    assert wording.digest_text(["a", "b"]) == "2 notifications:\n- a\n- b"
    assert wording.escalated_from("L1", "L2", "no acknowledgement") == (
        "escalated L1 → L2: no acknowledgement"
    )
    assert wording.policy_applied("p@1", "p@2", "re-planned") == (
        "policy applied: p@1 → p@2: re-planned"
    )
