"""Zendesk: `PUT /api/v2/tickets/{id}.json` with group and assignee and a private comment."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from config.settings import Settings
from schemas.messages import Notification
from worker.writeback.base import HttpAdapter, comment_text, need


class ZendeskWriteback(HttpAdapter):
    name = "zendesk"

    def configure(self, settings: Settings) -> ZendeskWriteback:
        self.base = (settings.zendesk_url or "").rstrip("/")
        email, token = settings.zendesk_email, settings.zendesk_token
        self.auth = (
            base64.b64encode(f"{email}/token:{token.get_secret_value()}".encode()).decode()
            if email and token
            else None
        )
        return self

    def send(self, message: Notification) -> None:
        base = need(self.base, "ESCALATOR_ZENDESK_URL")
        headers = {
            "authorization": f"Basic {need(self.auth, 'ESCALATOR_ZENDESK_EMAIL and _TOKEN')}"
        }
        ticket: dict[str, Any] = {"comment": {"body": comment_text(message), "public": False}}
        tier = self.policies.tier(message.tier)
        if tier and tier.writeback.zendesk_group_id is not None:
            ticket["group_id"] = tier.writeback.zendesk_group_id
        assignee = self.person(message.assignee, "zendesk")
        if isinstance(assignee, int):
            ticket["assignee_id"] = assignee
        url = f"{base}/api/v2/tickets/{quote(message.issue.id, safe='')}.json"
        self.call("PUT", url, headers, {"ticket": ticket}, message.id)
