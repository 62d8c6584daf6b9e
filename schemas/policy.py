"""The policy file: tiers, channels, and per-severity SLA targets with escalation ladders."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from schemas.base import StrictModel
from schemas.calendar import CalendarSpec
from schemas.durations import Duration
from schemas.outbound import Person, Roster, Template, TierWriteback, WritebackAdapter
from schemas.targets import (
    TARGET_NAMES,
    TWENTY_FOUR_SEVEN,
    Ident,
    IssueFacts,
    LadderStep,
    Match,
    Target,
)

__all__ = [
    "TARGET_NAMES",
    "TWENTY_FOUR_SEVEN",
    "Channel",
    "IssueFacts",
    "LadderStep",
    "Match",
    "Policy",
    "PolicyFile",
    "Target",
    "Tier",
]


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


class LogChannel(StrictModel):
    """Writes each notification to the structured log (`notification.sent`)."""

    type: Literal["log"] = "log"
    digest: Duration | None = _DIGEST


class WebhookChannel(StrictModel):
    """POSTs the notification as JSON, signed in the Standard Webhooks format."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    secret: Ident | None = Field(
        default=None,
        description="Name of a signing secret in ESCALATOR_SECRETS; unsigned when omitted.",
    )
    timeout: Duration = Field(default="10s", validate_default=True)
    digest: Duration | None = _DIGEST


class AppriseChannel(StrictModel):
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


class Tier(StrictModel):
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


class Policy(StrictModel):
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


class PolicyFile(StrictModel):
    """The whole file. Policies are tried in order; the first match wins, else `default`."""

    _digest: str | None = PrivateAttr(default=None)

    def digest(self) -> str:
        """The file's version: a digest of its validated content, computed once per file (a
        file is frozen: a changed file is a new one, never a `model_copy` of this one)."""
        if self._digest is None:
            body = self.model_dump(mode="json")
            text = json.dumps(body, sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._digest

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

    def first_tier(self, policy: Policy) -> str:
        """The tier a new issue under `policy` goes to: its first ladder's, else the first tier."""
        return policy.first_tier or self.tiers[0].name
