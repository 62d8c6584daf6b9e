"""SLA targets and policy conditions: the parts of a policy that say what an issue must get, by
when, and which issues a policy covers. Re-exported by `schemas.policy`. Pure data: the rule
that applies the conditions to an issue is `worker.domain.policy_match`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from schemas.base import StrictModel
from schemas.calendar import CalendarSpec
from schemas.durations import Duration
from schemas.events import Severity, SeverityField

Ident = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class LadderStep(StrictModel):
    """A tier on the ladder and how long it has before the issue moves on."""

    tier: Ident
    within: Duration


TWENTY_FOUR_SEVEN = "24x7"
TARGET_NAMES = ("acknowledge", "first_response", "next_response", "resolve")


def _fraction(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"a warning is a fraction of the target between 0 and 1, got {value}")
    return value


Fraction = Annotated[float, AfterValidator(_fraction)]


class Target(StrictModel):
    """One SLA target: its time, calendar, pauses, warnings and escalation ladder.

    The clock runs on `calendar` from the target's start (opening; for `next_response`, the
    customer's update) until the target is met, except while the issue's status is one of
    `pause_on`. `within` is the target itself (default: the first ladder step's time); a
    warning goes out at each `warn_at` fraction of it, and a breach message when it passes,
    unless a ladder step escalates at that very moment. Ladder step `i` holds the issue for its
    `within`, counted from when the step before it ended; the last step is reminded every
    `renotify_every` until the target is met.
    """

    calendar: Ident = Field(
        default=TWENTY_FOUR_SEVEN, description="24x7, or the name of an entry in `calendars`."
    )
    within: Duration | None = Field(
        default=None, description="The target time; default the first ladder step's `within`."
    )
    ladder: tuple[LadderStep, ...] = ()
    renotify_every: Duration | None = Field(
        default=None, description="How often the last tier is reminded; default its `within`."
    )
    warn_at: tuple[Fraction, ...] = Field(
        default=(), description="Warn when these fractions of `within` have passed, e.g. [0.5]."
    )
    pause_on: tuple[str, ...] = Field(
        default=(), description="Issue statuses that stop this clock (matched without case)."
    )
    _calendar_spec: CalendarSpec | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _has_a_time(self) -> Target:
        if self.within is None and not self.ladder:
            raise ValueError("a target needs `within`, a `ladder`, or both")
        if len(set(self.warn_at)) != len(self.warn_at):
            raise ValueError("warn_at lists a fraction twice")
        return self

    @property
    def calendar_spec(self) -> CalendarSpec | None:
        """The business calendar's definition, resolved when the file is loaded (None: 24x7)."""
        # read straight from pydantic's private dict: `self._calendar_spec` goes through
        # BaseModel.__getattr__ (~4 us), and the clocks ask for it several times per event
        private = self.__pydantic_private__
        return private.get("_calendar_spec") if private else None

    @property
    def target_time(self) -> timedelta:
        """The time the target allows: `within`, else the first ladder step's."""
        if self.within is not None:
            return self.within
        return self.ladder[0].within

    @property
    def renotify(self) -> timedelta:
        """How often the last tier of the ladder is reminded."""
        return self.renotify_every or self.ladder[-1].within

    def pauses(self, status: str) -> bool:
        """Whether an issue in `status` stops this clock."""
        folded = status.casefold()
        return any(folded == s.casefold() for s in self.pause_on)


IssueField = Literal["id", "title", "status", "assignee", "url"]


@dataclass(frozen=True, slots=True)
class IssueFacts:
    """What policy matching looks at: the issue as its latest snapshot describes it."""

    severity: Severity
    source: str
    labels: tuple[str, ...] = ()
    status: str = "open"
    fields: Mapping[str, str | None] = dataclass_field(default_factory=dict)

    @classmethod
    def of(
        cls,
        severity: Severity,
        source: str,
        labels: tuple[str, ...],
        status: str,
        id: str,
        title: str,
        assignee: str | None,
        url: str | None,
    ) -> IssueFacts:
        """Facts from an issue's attributes, its matchable fields included."""
        fields = {"id": id, "title": title, "status": status, "assignee": assignee, "url": url}
        return cls(severity, source, labels, status, fields)


class Match(StrictModel):
    """Conditions, all of which must hold; an empty match matches every issue."""

    severity: tuple[SeverityField, ...] = ()
    source: tuple[str, ...] = ()
    labels: tuple[str, ...] = Field(default=(), description="The issue has all of these labels.")
    status: tuple[str, ...] = Field(
        default=(), description="The issue's status is one of these (matched without case)."
    )
    fields: dict[IssueField, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Issue field -> accepted values (exact, without case), e.g. assignee.",
    )
    patterns: dict[IssueField, re.Pattern[str]] = Field(
        default_factory=dict,
        description="Issue field -> regular expression that must be found in it.",
    )
