"""Post-resolution notes: what was learnt, written on a resolved issue's timeline.

A note goes straight to the database, not through the event stream: it changes no clock and
no deadline, so nothing orders it against the issue's events; the author is known when it is
written (the caller's name), and the person writing it wants to see it at once. It is a
timeline line of kind `note` (`data`: the author), shown with the rest of the issue's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from worker.errors import PermanentError
from worker.services.uow import Units
from worker.store.report_queries import NOTE

log = structlog.get_logger("escalator.notes")
NOTE_MAX = 10_000  # characters


class NoteRefused(PermanentError):
    """A note that cannot be written: `status` is the HTTP answer (404, 409, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Noted:
    """A note written."""

    issue: str
    at: datetime
    author: str
    text: str


def clean(text: str) -> str:
    """The note's text, trimmed; refused when empty, too long or holding a NUL byte."""
    text = text.strip()
    if not text:
        raise NoteRefused(422, "a note needs some text")
    if len(text) > NOTE_MAX:
        raise NoteRefused(422, f"a note is at most {NOTE_MAX} characters, this one {len(text)}")
    if "\x00" in text:
        raise NoteRefused(422, "a note cannot contain a NUL byte (\\x00)")
    return text


def add_note(units: Units, key: str, text: str, author: str, now: datetime) -> Noted:
    """Write a note on the resolved issue `source:id`, at `now`, by `author`."""
    text = clean(text)
    source, sep, external_id = key.partition(":")
    if not sep or not source or not external_id or "\x00" in key:
        raise NoteRefused(404, "an issue key is source:id, e.g. github:acme/app#42")
    with units() as uow:
        found = uow.store.issues.lock([(source, external_id)])
        if not found:
            raise NoteRefused(404, f"no issue {key}")
        issue = found[0]
        if issue.lifecycle != "resolved":
            raise NoteRefused(409, f"{key} is {issue.lifecycle}: notes are for resolved issues")
        uow.store.timeline.add(issue, now, NOTE, text, {"author": author})
    log.info("issue.noted", issue=key, author=author, chars=len(text))
    return Noted(key, now, author, text)
