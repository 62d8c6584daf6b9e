"""Policy files: durations, cross-references and load errors (schemas/, worker/policy_loader)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.settings import DEMO_POLICY, PACKAGED_POLICY
from schemas.durations import format_duration, parse_duration
from schemas.events import Severity
from schemas.policy import IssueFacts, PolicyFile
from worker.domain import match_policy
from worker.errors import PolicyError
from worker.services.policy_loader import load_policy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1H 30M", timedelta(hours=1, minutes=30)),
        (45, timedelta(seconds=45)),
        (2.5, timedelta(seconds=2.5)),
    ],
)
def test_parse_duration(text: Any, expected: timedelta) -> None:
    """Durations are unit-suffixed text or a number of seconds."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", [0, "0s", -5, "abc", "", "5x", "m5", True, None, [5]])
def test_parse_duration_rejects_zero_and_garbage(bad: Any) -> None:
    """Zero, negative, unitless garbage, booleans and other types are refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=2), "48h"),  # hours, as business time counts them
        (timedelta(0), "0s"),
    ],
)
def test_format_duration(delta: timedelta, text: str) -> None:
    """Durations render the way policy files write them and parse back to themselves."""
    assert format_duration(delta) == text
    if delta:
        assert parse_duration(text) == delta


def policy_data(**overrides: Any) -> dict[str, Any]:
    """A valid policy file as data; `overrides` replace top-level keys."""
    data: dict[str, Any] = {
        "channels": {"log": {"type": "log"}},
        "tiers": [{"name": "L1", "channels": ["log"]}, {"name": "L2"}],
        "policies": [
            {
                "name": "std",
                "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]},
            }
        ],
        "default": "std",
    }
    data.update(overrides)
    return data


def test_minimal_policy_file_validates() -> None:
    """The minimal file validates and matches every issue to its default."""
    policies = PolicyFile.model_validate(policy_data())
    assert match_policy(policies, IssueFacts(Severity.P2, "jira")).name == "std"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "policies": [
                    {"name": "std", "acknowledge": {"ladder": [{"tier": "L9", "within": 60}]}}
                ]
            },
            r"policies\.0\.acknowledge\.ladder\.0\.tier\n  no tier named 'L9'",
        ),
        (
            {"tiers": [{"name": "L1", "channels": ["pager"]}]},
            r"tiers\.0\.channels\.0\n  no channel named 'pager'",
        ),
        ({"default": "nope"}, r"default\n  no policy named 'nope'"),
        (
            {"tiers": [{"name": "L1"}, {"name": "L1"}]},
            r"tiers\.1\.name\n  tier 'L1' is defined twice",
        ),
    ],
    ids=["unknown-tier", "unknown-channel", "unknown-default", "duplicate-tier"],
)
def test_policy_file_rejects_dangling_names(overrides: dict[str, Any], message: str) -> None:
    """References to tiers, channels and policies that do not exist are errors naming them."""
    with pytest.raises(ValidationError, match=message):
        PolicyFile.model_validate(policy_data(**overrides))


def test_both_packaged_policy_files_load() -> None:
    """The default and demo policy files shipped in config/ load and validate."""
    default = load_policy(PACKAGED_POLICY)
    demo = load_policy(DEMO_POLICY)
    assert default.default == "medium"
    assert match_policy(demo, IssueFacts(Severity.P1, "demo")).name == "demo-critical"


def test_load_policy_error_names_the_file_and_the_field_path(tmp_path: Path) -> None:
    """A bad value deep in the file is reported as `<file>:<line>: policies.0.acknowledge...`."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        "tiers: [{name: L1}]\n"
        "policies:\n"
        "  - name: std\n"
        "    acknowledge: {ladder: [{tier: L1, within: soon}]}\n"
        "default: std\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text = str(info.value)
    assert text.startswith(f"{path}:4: ")  # the line of the bad value
    assert "policies.0.acknowledge.ladder.0.within" in text
    assert "bad duration 'soon'" in text


def test_load_policy_reference_error_names_the_file(tmp_path: Path) -> None:
    """A dangling reference is reported with the file name too."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        "tiers: [{name: L1}]\n"
        "policies: [{name: std, acknowledge: {ladder: [{tier: L1, within: 5m}]}}]\n"
        "default: missing\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="no policy named 'missing'") as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_load_policy_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    """An unreadable file and invalid YAML both raise PolicyError naming the file."""
    missing = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError, match="cannot read it") as info:
        load_policy(missing)
    assert str(missing) in str(info.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("tiers: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML") as info:
        load_policy(broken)
    assert str(broken) in str(info.value)
