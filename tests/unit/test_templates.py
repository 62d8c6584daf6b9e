"""Message templates (worker/notify/templates.py): packaged defaults and overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas.messages import IssueRef, Notification, NotificationKind
from schemas.outbound import Template
from worker.errors import PolicyError
from worker.notify.templates import Renderer

from .factories import T0


def message(kind: NotificationKind = NotificationKind.ESCALATED, **extra: object) -> Notification:
    """An escalation of jira:OPS-1 to L2, ten minutes before its next deadline."""
    fields: dict[str, object] = {
        "id": "msg_1",
        "kind": kind,
        "issue": IssueRef(
            key="jira:OPS-1",
            source="jira",
            id="OPS-1",
            title="Checkout is down",
            severity="P1",
            url="https://jira.example.com/browse/OPS-1",
        ),
        "tier": "L2",
        "assignee": "bob",
        "text": "P1 jira:OPS-1 escalated to L2",
        "occurred_at": T0,
        "reason": "L1 did not acknowledge by 09:05",
        "tier_number": 2,
        "people": ("bob", "carol"),
        "due_at": T0 + timedelta(minutes=10),
    }
    fields.update(extra)
    return Notification.model_validate(fields)


def test_default_escalation_names_everything_a_person_needs() -> None:
    """Title and body carry severity, key, tier, on-call person, roster, time left and links."""
    title, body = Renderer(public_url="https://esc.example.com/").render(message(), "slack")
    assert title == "[P1] jira:OPS-1 escalated to L2"
    for part in (
        "Checkout is down",
        "L1 did not acknowledge by 09:05",
        "Tier: L2 (tier 2)",
        "On call: bob (roster: bob, carol)",
        "Time left: 10m",
        "Ticket: https://jira.example.com/browse/OPS-1",
        "Escalator: https://esc.example.com/issues/jira:OPS-1",
    ):
        assert part in body, part


def test_breach_shows_time_over() -> None:
    """A deadline in the past shows as `Over by`, not `Time left`."""
    late = message(NotificationKind.BREACH, due_at=T0 - timedelta(hours=1, minutes=5))
    _, body = Renderer().render(late, "mail")
    assert "Over by: 1h5m" in body and "Time left" not in body and "Escalator:" not in body


def test_policy_override_per_kind_and_channel_wins_over_per_kind() -> None:
    """`escalated.mail` beats `escalated`, which beats the default; title and body separately."""
    renderer = Renderer(
        {
            "escalated": Template(title="ESC {{ issue.key }}"),
            "escalated.mail": Template(body="Dear {{ assignee }}, {{ issue.title }}"),
        }
    )
    assert renderer.render(message(), "mail") == ("ESC jira:OPS-1", "Dear bob, Checkout is down\n")
    assert renderer.render(message(), "slack")[0] == "ESC jira:OPS-1"
    assert "Tier: L2" in renderer.render(message(), "slack")[1]


def test_templates_directory_is_used_before_the_packaged_default(tmp_path: Path) -> None:
    """KIND.CHANNEL.title.j2 in the templates dir overrides the packaged title."""
    (tmp_path / "escalated.slack.title.j2").write_text(":rotating_light: {{ tier }}")
    renderer = Renderer(directory=tmp_path)
    assert renderer.render(message(), "slack")[0] == ":rotating_light: L2"
    assert renderer.render(message(), "mail")[0] == "[P1] jira:OPS-1 escalated to L2"


def test_digest_lists_every_message() -> None:
    """A digest message renders one line per message it carries."""
    items = (
        message(),
        message(id="msg_2", issue=message().issue.model_copy(update={"key": "x:2"})),
    )
    digest = message(covers=("msg_1", "msg_2"), items=items)
    title, body = Renderer().render(digest, "slack")
    assert title == "2 Escalator notifications"
    assert body.count("escalated (L2)") == 2 and "x:2" in body


def test_a_broken_template_is_a_policy_error() -> None:
    """A template that does not compile, or uses an unknown name, raises PolicyError."""
    with pytest.raises(PolicyError):
        Renderer({"escalated": Template(title="{{ oops ")}).render(message(), "x")
    with pytest.raises(PolicyError):
        Renderer({"escalated": Template(title="{{ nothing_here }}")}).render(message(), "x")
