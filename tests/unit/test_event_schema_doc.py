"""docs/event.schema.json is the published event contract and stays in sync with the model."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from schemas.events import IssueEvent
from schemas.export import DOCS_SCHEMA, event_json_schema, render

from .factories import event_dict


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    """The schema file as committed."""
    return dict(json.loads(DOCS_SCHEMA.read_text(encoding="utf-8")))


def test_committed_schema_equals_the_model(committed: dict[str, Any]) -> None:
    """The committed file is what `python -m schemas.export` writes (regenerate it if not)."""
    assert committed == event_json_schema()
    assert DOCS_SCHEMA.read_text(encoding="utf-8") == render()


def test_export_returns_the_model_json_schema() -> None:
    """event_json_schema() is IssueEvent's own JSON Schema."""
    assert event_json_schema() == IssueEvent.model_json_schema()


def test_schema_is_a_valid_draft_2020_12_schema(committed: dict[str, Any]) -> None:
    """The file is itself a valid JSON Schema."""
    jsonschema.Draft202012Validator.check_schema(committed)


def test_a_good_event_validates_against_the_schema(committed: dict[str, Any]) -> None:
    """A valid sample event passes the published schema (and the model)."""
    sample = event_dict(url="https://jira.example.com/browse/OPS-1", labels=["db"], assignee="al")
    jsonschema.validate(sample, committed, cls=jsonschema.Draft202012Validator)
    IssueEvent.model_validate(sample)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("event_id"),
        lambda d: d.update(extra=1),
        lambda d: d["issue"].update(extra=1),
        lambda d: d.update(type="issue.deleted"),
        lambda d: d.update(source="Not A Slug"),
    ],
    ids=["missing-event_id", "extra-field", "extra-issue-field", "unknown-type", "bad-source"],
)
def test_schema_rejects_what_the_model_rejects(committed: dict[str, Any], mutate: Any) -> None:
    """Producers validating against the schema catch the same structural mistakes."""
    sample = event_dict()
    mutate(sample)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(sample, committed, cls=jsonschema.Draft202012Validator)


def test_schema_accepts_the_severity_aliases_the_model_accepts(committed: dict[str, Any]) -> None:
    """A producer validating with the schema may send `critical`, as the contract allows."""
    sample = event_dict(severity="critical")
    IssueEvent.model_validate(sample)
    jsonschema.validate(sample, committed, cls=jsonschema.Draft202012Validator)
