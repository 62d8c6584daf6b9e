"""Jira Cloud: reassign (`PUT /rest/api/3/issue/{key}/assignee`) and leave a comment.

The comment is internal (`sd.public.comment` = {internal: true}) when
ESCALATOR_JIRA_INTERNAL_COMMENTS is set (Jira Service Management); a plain comment otherwise.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from config.settings import Settings
from schemas.messages import Notification
from worker.writeback.base import HttpAdapter, comment_text, need


def adf(text: str) -> dict[str, object]:
    """Plain text as an Atlassian Document Format document (what API v3 takes)."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


class JiraWriteback(HttpAdapter):
    name = "jira"

    def configure(self, settings: Settings) -> JiraWriteback:
        self.base = (settings.jira_url or "").rstrip("/")
        user, token = settings.jira_user, settings.jira_token
        self.auth = (
            base64.b64encode(f"{user}:{token.get_secret_value()}".encode()).decode()
            if user and token
            else None
        )
        self.internal = settings.jira_internal_comments
        return self

    def send(self, message: Notification) -> None:
        base = need(self.base, "ESCALATOR_JIRA_URL")
        headers = {
            "authorization": f"Basic {need(self.auth, 'ESCALATOR_JIRA_USER and _TOKEN')}",
            "accept": "application/json",
        }
        issue = f"{base}/rest/api/3/issue/{quote(message.issue.id, safe='')}"
        account = self.person(message.assignee, "jira")
        if account is not None:
            self.call("PUT", f"{issue}/assignee", headers, {"accountId": account}, message.id)
        comment: dict[str, object] = {"body": adf(comment_text(message))}
        if self.internal:
            comment["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
        self.call("POST", f"{issue}/comment", headers, comment, message.id)
