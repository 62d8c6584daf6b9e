"""Ticket write-back: tell the source system who holds the issue now, through the outbox.

Each adapter is a channel named `writeback:ADAPTER`; `queue_notifications` writes one row per
reassignment (kinds assigned and escalated) for an issue whose source the policy file's
`writeback:` maps to an adapter, and the dispatcher delivers it like any notification.
"""

from __future__ import annotations

import httpx

from config.settings import Settings
from schemas.policy import PolicyFile
from worker.domain.clock import Clock
from worker.domain.states import writeback_channel
from worker.writeback.base import HttpAdapter
from worker.writeback.github import GithubWriteback
from worker.writeback.jira import JiraWriteback
from worker.writeback.webhook import WebhookWriteback
from worker.writeback.zendesk import ZendeskWriteback

ADAPTERS: dict[str, type[JiraWriteback | GithubWriteback | ZendeskWriteback | WebhookWriteback]] = {
    "jira": JiraWriteback,
    "github": GithubWriteback,
    "zendesk": ZendeskWriteback,
    "webhook": WebhookWriteback,
}


def build_writebacks(
    policies: PolicyFile, settings: Settings, clock: Clock, http: httpx.Client
) -> dict[str, HttpAdapter]:
    """Every adapter, configured from settings (one missing a setting fails when it sends)."""
    return {
        writeback_channel(name): cls(policies, clock, http, settings.writeback_timeout_s).configure(
            settings
        )
        for name, cls in ADAPTERS.items()
    }
