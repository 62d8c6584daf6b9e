"""Tracebacks reach the log as text, in JSON and on the console, from structlog and stdlib."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from config.logging import configure_logging
from config.settings import Settings


def _fail() -> None:
    raise ValueError("the broker went away")


def _log_both() -> None:
    """One stdlib record (as Celery logs "Unrecoverable error") and one structlog event."""
    try:
        _fail()
    except ValueError as exc:
        logging.getLogger("celery.worker").critical("Unrecoverable error: %r", exc, exc_info=True)
        structlog.get_logger("escalator.test").error("role.failed", exc_info=True)


def test_json_lines_carry_the_traceback_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    """In JSON, exc_info becomes `exception`: the formatted traceback, not a tuple's repr."""
    configure_logging(Settings(_env_file=None, log_format="json"))
    _log_both()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert [line["event"] for line in lines] == [
        "Unrecoverable error: ValueError('the broker went away')",
        "role.failed",
    ]
    for line in lines:
        assert "exc_info" not in line
        assert line["exception"].startswith("Traceback (most recent call last):")
        assert "in _fail" in line["exception"]
        assert line["exception"].rstrip().endswith("ValueError: the broker went away")


def test_console_lines_carry_the_traceback_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    """On the console, each event is followed by its traceback, with no tuple's repr."""
    configure_logging(Settings(_env_file=None, log_format="console"))
    _log_both()
    err = capsys.readouterr().err
    assert err.count("Traceback (most recent call last):") == 2
    assert err.count("ValueError: the broker went away") == 2
    assert "<traceback object" not in err
