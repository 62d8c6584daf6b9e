"""The policy file: tiers, channels, and per-severity SLA targets with escalation ladders."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
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


class _Target(_Strict):
    """A target whose time runs on a calendar: `24x7`, or a business calendar by name."""

    calendar: Ident = Field(
        default=TWENTY_FOUR_SEVEN, description="24x7, or the name of an entry in `calendars`."
    )
    _calendar_spec: CalendarSpec | None = PrivateAttr(default=None)

    @property
    def calendar_spec(self) -> CalendarSpec | None:
        """The business calendar's definition, resolved when the file is loaded (None: 24x7)."""
        return self._calendar_spec


class AcknowledgeTarget(_Target):
    """Time to acknowledge: each tier gets `within`; the last tier is re-notified until ack."""

    ladder: tuple[LadderStep, ...] = Field(min_length=1)
    renotify_every: Duration | None = Field(
        default=None, description="How often the last tier is reminded; default its `within`."
    )


class ResolveTarget(_Target):
    """Time to resolve, from opening; a breach notifies the tier holding the issue."""

    within: Duration


class Match(_Strict):
    """Conditions, all of which must hold; an empty match matches every issue."""

    severity: tuple[SeverityField, ...] = ()
    source: tuple[str, ...] = ()
    labels: tuple[str, ...] = Field(default=(), description="The issue has all of these labels.")

    def matches(self, severity: Severity, source: str, labels: tuple[str, ...]) -> bool:
        """Whether an issue with these attributes meets every condition."""
        return (
            (not self.severity or severity in self.severity)
            and (not self.source or source in self.source)
            and all(label in labels for label in self.labels)
        )


class Policy(_Strict):
    """One SLA policy: which issues it covers and their targets."""

    name: Ident
    match: Match = Match()
    acknowledge: AcknowledgeTarget
    resolve: ResolveTarget | None = None


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
            for target_name, target in (
                ("acknowledge", policy.acknowledge),
                ("resolve", policy.resolve),
            ):
                if target is None or target.calendar == TWENTY_FOUR_SEVEN:
                    continue
                if target.calendar not in self.calendars:
                    where = ("policies", n, target_name, "calendar")
                    problems.append((where, f"no calendar named {target.calendar!r}"))
                else:
                    target._calendar_spec = self.calendars[target.calendar]
            for m, step in enumerate(policy.acknowledge.ladder):
                if step.tier not in tier_names:
                    loc = ("policies", n, "acknowledge", "ladder", m, "tier")
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

    def match(self, severity: Severity, source: str, labels: tuple[str, ...]) -> Policy:
        """The first policy whose conditions hold, else the default."""
        for policy in self.policies:
            if policy.match.matches(severity, source, labels):
                return policy
        return next(p for p in self.policies if p.name == self.default)
