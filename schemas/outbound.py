"""Outbound parts of the policy file: rosters, people, templates, write-back per tier."""

from __future__ import annotations

from datetime import date, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from schemas.base import StrictModel
from schemas.durations import Duration


class TierWriteback(StrictModel):
    """What a tier means to the ticket systems it is written back to."""

    github_assignees: tuple[str, ...] = Field(
        default=(), description="GitHub logins; default: the on-call person's `github`."
    )
    zendesk_group_id: int | None = None


class Override(StrictModel):
    """`who` is on call from `start` until `end`, whatever the rotation says.

    `who: null` says that nobody is (a planned gap: the team is off); `escalator policy check`
    warns about it, and the tier's `assignee`, if it has one, is on call instead.
    """

    who: str | None = Field(min_length=1, description="Who is on call; null: nobody.")
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.end <= self.start:
            raise ValueError("an override must end after it starts")
        return self


class Roster(StrictModel):
    """Who is on call: a fixed list (no `shift`: the first member), or a rotation.

    A rotation hands over every `shift` at `handoff` local time in `timezone`, counted on the
    wall clock from `start` (members[0] holds the first shift), so a daylight-saving change
    never moves a handoff. With `until`, nobody is on call from `handoff` on that date on
    (the schedule is not planned further), except where an override says who is.
    """

    members: tuple[str, ...] = Field(min_length=1)
    shift: Duration | None = None
    handoff: time = time(9, 0)
    timezone: str = "UTC"
    start: date = date(2026, 1, 5)
    until: date | None = Field(
        default=None,
        description="The roster ends at `handoff` local time on this date; nobody after it.",
    )
    overrides: tuple[Override, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _ends_after_start(self) -> Roster:
        if self.until is not None and self.until <= self.start:
            raise ValueError("a roster's `until` must come after its `start`")
        return self


class Person(StrictModel):
    """How one person is known to the ticket systems and channels."""

    jira: str | None = Field(default=None, description="Jira accountId.")
    github: str | None = Field(default=None, description="GitHub login.")
    zendesk: int | None = Field(default=None, description="Zendesk user id.")
    email: str | None = None


class Template(StrictModel):
    """A Jinja2 title and body; either may be left to the packaged default."""

    title: str | None = None
    body: str | None = None


WritebackAdapter = Literal["jira", "github", "zendesk", "webhook"]
