"""The README's and docs/*.md's examples agree with the code: every `escalator` command in their
shell blocks parses against the real CLI, the event type list is the enum, the sample event
validates, and the README's runnable blocks use "now" and the port the README names."""

from __future__ import annotations

import json
import re

import pytest

from schemas.events import EventType, IssueEvent
from tests.support.readme import README, ROOT, SHELL, Block, blocks, cli_problem, escalator_argv

DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks() -> list[Block]:
    return [b for path in DOCS for b in blocks(path) if b.lang in SHELL]


@pytest.mark.parametrize("block", shell_blocks(), ids=lambda b: b.where)
def test_every_escalator_command_parses(block: Block) -> None:
    """Each `escalator ...` line of a shell block names commands and flags the CLI has, with
    values it accepts (placeholders aside); nothing runs."""
    problems = [p for argv in escalator_argv(block.text) if (p := cli_problem(argv))]
    assert not problems, f"{block.where}: " + "; ".join(problems)


def test_the_parser_catches_a_wrong_flag() -> None:
    """The check above is not vacuous: an unknown flag, command or choice is reported."""
    assert cli_problem(["send", "--issue", "X", "--sevrity", "P1"])
    assert cli_problem(["dead", "purge"])
    assert cli_problem(["worker", "--queue", "everything"])
    assert cli_problem(["send", "--issue", "X", "--severity", "P1"]) is None


def test_readme_lists_every_event_type() -> None:
    """The README's `type` bullet names exactly the types of schemas/events.py."""
    text = README.read_text(encoding="utf-8")
    bullet = re.search(r"^- `type`: (.*?)(?=^- )", text, flags=re.MULTILINE | re.DOTALL)
    assert bullet, "the README has no `- `type`:` bullet"
    assert set(re.findall(r"`(issue\.\w+)`", bullet.group(1))) == {t.value for t in EventType}


def test_readme_sample_event_validates() -> None:
    """Every JSON block of the README that is an event is a valid `IssueEvent`."""
    events = [json.loads(b.text) for b in blocks(README) if b.lang == "json"]
    events = [e for e in events if isinstance(e, dict) and "event_id" in e]
    assert events
    for event in events:
        IssueEvent.model_validate(event)


def test_runnable_blocks_use_now_and_the_readme_port() -> None:
    """A runnable README block never hard-codes an `occurred_at` (it would breach at once) and
    reaches the API on http://127.0.0.1:8080, the address the README names (the test of the
    README substitutes its own port there)."""
    for block in blocks(README):
        if block.not_run is not None or block.lang not in {*SHELL, "python"}:
            continue
        assert not re.search(r'"occurred_at":\s*"\d', block.text), block.where
        for url in re.findall(r"(?:https?://)?(?:localhost|127\.0\.0\.1):\d+", block.text):
            assert url == "http://127.0.0.1:8080", f"{block.where}: {url}"
