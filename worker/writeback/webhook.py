"""The generic write-back: a Standard Webhooks signed POST for any other ticket system."""

from __future__ import annotations

import json

import httpx
from standardwebhooks import Webhook

from config.settings import Settings
from schemas.messages import Notification
from worker.notify.http import check, post_error
from worker.writeback.base import HttpAdapter, need


class WebhookWriteback(HttpAdapter):
    name = "webhook"

    def configure(self, settings: Settings) -> WebhookWriteback:
        self.url = settings.writeback_webhook_url
        secret = settings.writeback_webhook_secret
        self.signer = Webhook(secret.get_secret_value()) if secret else None
        return self

    def send(self, message: Notification) -> None:
        url = need(self.url, "ESCALATOR_WRITEBACK_WEBHOOK_URL")
        body = json.dumps(
            {"type": "escalator.writeback", "data": message.model_dump(mode="json")},
            separators=(",", ":"),
        )
        now = self.clock.now()
        headers = {
            "content-type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now.timestamp())),
        }
        if self.signer:
            headers["webhook-signature"] = self.signer.sign(message.id, now, body)
        try:
            response = self.http.post(url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise post_error(self.name, exc) from None
        check(self.name, response.status_code, response.headers, now)
