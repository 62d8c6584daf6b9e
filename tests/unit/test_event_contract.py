"""The inbound contract: IssueEvent strictness and normalisation (schemas/events.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import EventType, IssueEvent, Severity

from .factories import event_dict


def errors_of(data: dict[str, Any]) -> str:
    """The validation error text for `data` (the test fails if it validates)."""
    with pytest.raises(ValidationError) as info:
        IssueEvent.model_validate(data)
    return str(info.value)


def test_a_valid_event_parses() -> None:
    """A complete event validates; issue_key is `source:id`."""
    evt = IssueEvent.model_validate(event_dict(issue_id="OPS-9", source="github"))
    assert evt.type is EventType.OPENED
    assert evt.issue_key == "github:OPS-9"


def test_extra_top_level_field_is_rejected() -> None:
    """Unknown top-level fields are refused: the contract is ours."""
    text = errors_of({**event_dict(), "priority": "urgent"})
    assert "priority" in text and "Extra inputs are not permitted" in text


def test_extra_issue_field_is_rejected() -> None:
    """Unknown fields inside `issue` are refused too."""
    data = event_dict()
    data["issue"]["priority"] = 1
    assert "issue.priority" in errors_of(data)


def test_naive_timestamp_is_rejected() -> None:
    """occurred_at without a time-zone offset is refused."""
    data = event_dict()
    data["occurred_at"] = "2024-03-04T09:00:00"
    assert "timezone" in errors_of(data).lower()


def test_occurred_at_is_normalised_to_utc() -> None:
    """An offset timestamp is converted to the same instant in UTC."""
    data = event_dict()
    data["occurred_at"] = "2024-03-04T11:30:00+02:30"
    evt = IssueEvent.model_validate(data)
    assert evt.occurred_at == datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    assert evt.occurred_at.utcoffset() is not None and evt.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("critical", Severity.P1),
        ("high", Severity.P2),
        ("medium", Severity.P3),
        ("low", Severity.P4),
        ("p1", Severity.P1),
        ("P2", Severity.P2),
        (" p3 ", Severity.P3),
        ("CRITICAL", Severity.P1),
    ],
)
def test_severity_aliases_and_case(given: str, expected: Severity) -> None:
    """Severity accepts P1-P4 in any case and the words critical/high/medium/low."""
    assert IssueEvent.model_validate(event_dict(severity=given)).issue.severity is expected


def test_unknown_severity_lists_the_allowed_values() -> None:
    """An unknown severity says which values are allowed."""
    text = errors_of(event_dict(severity="urgent"))
    assert "unknown severity 'urgent'" in text
    for allowed in ("P1", "P2", "P3", "P4", "critical", "high", "medium", "low"):
        assert allowed in text


def test_severity_of_wrong_type_is_rejected() -> None:
    """A number is not a severity."""
    data = event_dict()
    data["issue"]["severity"] = 1
    assert "issue.severity" in errors_of(data)


def test_unknown_event_type_is_rejected() -> None:
    """Only the documented event types are accepted."""
    assert "type" in errors_of(event_dict(type_="issue.deleted"))


@pytest.mark.parametrize("source", ["Jira", "my jira", "-jira", ""])
def test_source_must_be_a_lowercase_slug(source: str) -> None:
    """source is lowercase letters, digits and _.- only."""
    assert "source" in errors_of(event_dict(source=source))


def test_empty_issue_id_is_rejected() -> None:
    """issue.id cannot be empty (nor only spaces, which are stripped)."""
    data = event_dict()
    data["issue"]["id"] = "   "
    assert "issue.id" in errors_of(data)


def test_url_must_be_a_url() -> None:
    """issue.url must be an http(s) URL."""
    assert "issue.url" in errors_of(event_dict(url="not a url"))


def test_labels_must_be_a_list() -> None:
    """issue.labels is a list of strings, not one string."""
    assert "issue.labels" in errors_of(event_dict(labels="backend"))


def test_event_is_frozen() -> None:
    """Parsed events cannot be changed."""
    evt = IssueEvent.model_validate(event_dict())
    with pytest.raises(ValidationError):
        evt.event_id = "other"  # type: ignore[misc]
