"""The policy file: tiers, channels, and per-severity SLA targets with escalation ladders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from schemas.calendar import CalendarSpec
from schemas.durations import Duration
from schemas.events import Severity, SeverityField
from schemas.outbound import Person, Roster, Template, TierWriteback, WritebackAdapter

Ident = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


MessageKind = Literal["assigned", "escalated", "reminder", "warning", "breach", "resolved"]
MESSAGE_KINDS: tuple[MessageKind, ...] = (
    "assigned",
    "escalated",
    "reminder",
    "warning",
    "breach",
    "resolved",
)
_DIGEST = Field(
    default=None,
    description="Hold messages this long after the first one and send them as one digest.",
)


class LogChannel(_Strict):
    """Writes each notification to the structured log (`notification.sent`)."""

    type: Literal["log"] = "log"
    digest: Duration | None = _DIGEST


class WebhookChannel(_Strict):
    """POSTs the notification as JSON, signed in the Standard Webhooks format."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    secret: Ident | None = Field(
        default=None,
        description="Name of a signing secret in ESCALATOR_SECRETS; unsigned when omitted.",
    )
    timeout: Duration = Field(default="10s", validate_default=True)
    digest: Duration | None = _DIGEST


class AppriseChannel(_Strict):
    """Any service apprise knows (Slack, Teams, Discord, Telegram, mailto:// SMTP, ...).

    A URL may hold `{secret:NAME}`, replaced by that entry of ESCALATOR_SECRETS when the
    channel is built, so tokens stay out of the file (and out of the logs).
    """

    type: Literal["apprise"] = "apprise"
    url: str | None = Field(default=None, min_length=3)
    urls: tuple[Annotated[str, Field(min_length=3)], ...] = ()
    format: Literal["text", "markdown", "html"] = "markdown"
    digest: Duration | None = _DIGEST

    @model_validator(mode="after")
    def _some_url(self) -> AppriseChannel:
        if not self.url and not self.urls:
            raise ValueError("an apprise channel needs `url` or `urls`")
        return self

    def all_urls(self) -> tuple[str, ...]:
        """Every URL of the channel, secrets still as `{secret:NAME}`."""
        return ((self.url,) if self.url else ()) + self.urls


Channel = Annotated[LogChannel | WebhookChannel | AppriseChannel, Field(discriminator="type")]
ChannelList = tuple[Ident, ...]
Routing = dict[MessageKind | Literal["default"], ChannelList]


def _log_only() -> dict[str, Channel]:
    return {"log": LogChannel()}


class Tier(_Strict):
    """A support tier: who is assigned when the issue reaches it, and where they are told.

    `channels` is a list (every kind of message) or a mapping from a kind of message
    (assigned, escalated, reminder, warning, breach, resolved, or `default`) to a list.
    """

    name: Ident
    assignee: str | None = None
    roster: Ident | None = Field(
        default=None, description="A roster under `rosters`: whoever is on call is assigned."
    )
    channels: ChannelList | Routing = ("log",)
    writeback: TierWriteback = TierWriteback()

    def channels_for(self, kind: str) -> ChannelList:
        """The channels that get a message of this kind."""
        if isinstance(self.channels, tuple):
            return self.channels
        routing: dict[str, ChannelList] = {str(k): v for k, v in self.channels.items()}
        return routing.get(kind, routing.get("default", ()))

    def all_channels(self) -> ChannelList:
        """Every channel the tier names, for any kind."""
        if isinstance(self.channels, tuple):
            return self.channels
        return tuple(c for names in self.channels.values() for c in names)


class LadderStep(_Strict):
    """A tier on the ladder and how long it has before the issue moves on."""

    tier: Ident
    within: Duration


TWENTY_FOUR_SEVEN = "24x7"
TARGET_NAMES = ("acknowledge", "first_response", "next_response", "resolve")
TargetName = Literal["acknowledge", "first_response", "next_response", "resolve"]


def _fraction(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"a warning is a fraction of the target between 0 and 1, got {value}")
    return value


Fraction = Annotated[float, AfterValidator(_fraction)]


class Target(_Strict):
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
        return self._calendar_spec

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


# Kept for older imports and documentation: every target has the same shape now.
AcknowledgeTarget = ResolveTarget = Target

ISSUE_FIELDS = ("id", "title", "status", "assignee", "url")
IssueField = Literal["id", "title", "status", "assignee", "url"]


@dataclass(frozen=True, slots=True)
class IssueFacts:
    """What policy matching looks at: the issue as its latest snapshot describes it."""

    severity: Severity
    source: str
    labels: tuple[str, ...] = ()
    status: str = "open"
    fields: Mapping[str, str | None] = dataclass_field(default_factory=dict)


class Match(_Strict):
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

    def matches(self, facts: IssueFacts) -> bool:
        """Whether an issue with these facts meets every condition."""
        if self.severity and facts.severity not in self.severity:
            return False
        if self.source and facts.source not in self.source:
            return False
        if not all(label in facts.labels for label in self.labels):
            return False
        if self.status and facts.status.casefold() not in {s.casefold() for s in self.status}:
            return False
        for name, accepted in self.fields.items():
            value = (facts.fields.get(name) or "").casefold()
            if value not in {a.casefold() for a in accepted}:
                return False
        return all(
            pattern.search(facts.fields.get(name) or "") for name, pattern in self.patterns.items()
        )

    def explain(self, facts: IssueFacts) -> list[tuple[str, bool]]:
        """Each condition as text, with whether it holds: for `escalator policy explain`."""
        checks: list[tuple[str, bool]] = []
        if self.severity:
            names = ", ".join(s.value for s in self.severity)
            checks.append((f"severity in [{names}]", facts.severity in self.severity))
        if self.source:
            checks.append((f"source in {list(self.source)}", facts.source in self.source))
        for label in self.labels:
            checks.append((f"has label {label!r}", label in facts.labels))
        if self.status:
            folded = {s.casefold() for s in self.status}
            checks.append((f"status in {list(self.status)}", facts.status.casefold() in folded))
        for name, accepted in self.fields.items():
            value = (facts.fields.get(name) or "").casefold()
            checks.append(
                (f"{name} in {list(accepted)}", value in {a.casefold() for a in accepted})
            )
        for name, pattern in self.patterns.items():
            found = bool(pattern.search(facts.fields.get(name) or ""))
            checks.append((f"{name} ~ /{pattern.pattern}/", found))
        return checks


class Policy(_Strict):
    """One SLA policy: which issues it covers and their targets (each optional, at least one)."""

    name: Ident
    match: Match = Match()
    acknowledge: Target | None = None
    first_response: Target | None = None
    next_response: Target | None = None
    resolve: Target | None = None

    @model_validator(mode="after")
    def _has_a_target(self) -> Policy:
        if not self.targets():
            raise ValueError(
                f"policy {self.name!r} has no target; give it at least one of "
                + ", ".join(TARGET_NAMES)
            )
        return self

    def targets(self) -> list[tuple[str, Target]]:
        """The targets this policy sets, in a fixed order."""
        found = ((name, getattr(self, name)) for name in TARGET_NAMES)
        return [(name, target) for name, target in found if target is not None]

    def target(self, name: str) -> Target | None:
        """The target called `name`, if the policy sets it."""
        found: Target | None = getattr(self, name, None) if name in TARGET_NAMES else None
        return found

    @property
    def first_tier(self) -> str | None:
        """The tier a new issue goes to: the first step of the first ladder, if any."""
        return next((t.ladder[0].tier for _, t in self.targets() if t.ladder), None)


class PolicyFile(_Strict):
    """The whole file. Policies are tried in order; the first match wins, else `default`."""

    version: Literal[1] = 1
    channels: dict[Ident, Channel] = Field(default_factory=lambda: _log_only())
    calendars: dict[Ident, CalendarSpec] = Field(
        default_factory=dict, description="Business calendars that targets name."
    )
    tiers: tuple[Tier, ...] = Field(min_length=1)
    policies: tuple[Policy, ...] = Field(min_length=1)
    default: Ident
    # outbound
    rosters: dict[Ident, Roster] = Field(default_factory=dict, description="On-call rosters.")
    people: dict[str, Person] = Field(
        default_factory=dict, description="People's ids in the ticket systems, by name."
    )
    templates: dict[str, Template] = Field(
        default_factory=dict,
        description="Message templates by `KIND` or `KIND.CHANNEL` (`default` for every kind).",
    )
    writeback: dict[str, WritebackAdapter] = Field(
        default_factory=dict,
        description="Write reassignments back to the issue's source: source name → adapter.",
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> PolicyFile:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        tier_names = [t.name for t in self.tiers]
        for n, name in enumerate(tier_names):
            if name in tier_names[:n]:
                problems.append((("tiers", n, "name"), f"tier {name!r} is defined twice"))
        policy_names = [p.name for p in self.policies]
        for n, name in enumerate(policy_names):
            if name in policy_names[:n]:
                problems.append((("policies", n, "name"), f"policy {name!r} is defined twice"))
        if self.default not in policy_names:
            problems.append((("default",), f"no policy named {self.default!r}"))
        for n, tier in enumerate(self.tiers):
            for m, channel in enumerate(tier.all_channels()):
                if channel not in self.channels:
                    problems.append((("tiers", n, "channels", m), f"no channel named {channel!r}"))
            if tier.roster is not None and tier.roster not in self.rosters:
                problems.append((("tiers", n, "roster"), f"no roster named {tier.roster!r}"))
        for key in self.templates:
            kind, _, channel = key.partition(".")
            if kind not in (*MESSAGE_KINDS, "default", "digest") or (
                channel and channel not in self.channels
            ):
                problems.append((("templates", key), f"no kind or channel for {key!r}"))
        if TWENTY_FOUR_SEVEN in self.calendars:
            problems.append(
                (("calendars", TWENTY_FOUR_SEVEN), "24x7 is built in; pick another name")
            )
        for n, policy in enumerate(self.policies):
            for target_name, target in policy.targets():
                if target.calendar != TWENTY_FOUR_SEVEN:
                    if target.calendar not in self.calendars:
                        where = ("policies", n, target_name, "calendar")
                        problems.append((where, f"no calendar named {target.calendar!r}"))
                    else:
                        target._calendar_spec = self.calendars[target.calendar]
                for m, step in enumerate(target.ladder):
                    if step.tier not in tier_names:
                        loc = ("policies", n, target_name, "ladder", m, "tier")
                        problems.append((loc, f"no tier named {step.tier!r}"))
        if problems:
            raise ValidationError.from_exception_data(
                "PolicyFile",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("reference", message), loc=loc, input=None
                    )
                    for loc, message in problems
                ],
            )
        return self

    def tier(self, name: str) -> Tier | None:
        """The tier called `name`, if the file has it."""
        return next((t for t in self.tiers if t.name == name), None)

    def policy(self, name: str) -> Policy | None:
        """The policy called `name`, if the file still has it."""
        return next((p for p in self.policies if p.name == name), None)

    def match(self, facts: IssueFacts) -> Policy:
        """The first policy whose conditions hold, else the default."""
        for policy in self.policies:
            if policy.match.matches(facts):
                return policy
        return next(p for p in self.policies if p.name == self.default)

    def first_tier(self, policy: Policy) -> str:
        """The tier a new issue under `policy` goes to: its first ladder's, else the first tier."""
        return policy.first_tier or self.tiers[0].name
