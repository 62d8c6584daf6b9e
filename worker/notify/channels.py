"""Notification channels: where a message goes. Each raises DeliveryError or PermanentError."""

from __future__ import annotations

import structlog
from standardwebhooks import Webhook

from config.settings import Settings
from schemas.messages import Notification
from schemas.policy import AppriseChannel, LogChannel, PolicyFile, WebhookChannel
from worker.domain.clock import Clock
from worker.domain.ports import Channel
from worker.errors import PolicyError
from worker.notify.apprise_channel import AppriseSink
from worker.notify.http import Poster, TransportError, check, post_error
from worker.notify.redact import resolve
from worker.notify.templates import Renderer

log = structlog.get_logger("escalator.notify")


class LogSink:
    """The structured log as a channel: one `notification.sent` event per message."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, message: Notification) -> None:
        log.info(
            "notification.sent",
            channel=self.name,
            message_id=message.id,
            kind=message.kind.value,
            issue=message.issue.key,
            tier=message.tier,
            assignee=message.assignee,
            text=message.text,
        )


class SignedWebhook:
    """POSTs the message as JSON with Standard Webhooks headers (signed when a secret is set)."""

    def __init__(
        self,
        name: str,
        config: WebhookChannel,
        secret: str | None,
        clock: Clock,
        poster: Poster,
    ) -> None:
        self.name = name
        self.url = str(config.url)
        self.timeout = config.timeout.total_seconds()
        self.signer = Webhook(secret) if secret else None
        self.clock = clock
        self.poster = poster

    def headers(self, message: Notification, body: str) -> dict[str, str]:
        """The Standard Webhooks headers for `body`."""
        now = self.clock.now()
        headers = {
            "content-type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "user-agent": "escalator",
        }
        if self.signer:
            headers["webhook-signature"] = self.signer.sign(message.id, now, body)
        return headers

    def send(self, message: Notification) -> None:
        body = message.model_dump_json()
        try:
            reply = self.poster.post(
                self.url, body.encode(), self.headers(message, body), self.timeout
            )
        except TransportError as exc:
            raise post_error(self.name, exc) from None
        check(self.name, reply.status, reply.headers, self.clock.now())


def build_channels(
    policies: PolicyFile, settings: Settings, clock: Clock, poster: Poster
) -> dict[str, Channel]:
    """Every channel the policy file names, ready to send (the write-back adapters are built
    beside them: `worker.bootstrap.channels`). Signed webhooks POST through `poster`."""
    renderer = Renderer(policies.templates, settings.templates_dir, settings.public_url)
    channels: dict[str, Channel] = {}
    for name, config in policies.channels.items():
        if isinstance(config, LogChannel):
            channels[name] = LogSink(name)
        elif isinstance(config, AppriseChannel):
            urls, used = [], []
            for url in config.all_urls():
                resolved, values = resolve(url, settings.secrets, f"channel {name!r}")
                urls.append(resolved)
                used += values
            channels[name] = AppriseSink(name, config, urls, used, renderer)
        else:
            secret = None
            if config.secret is not None:
                if config.secret not in settings.secrets:
                    raise PolicyError(
                        f"channel {name!r} needs secret {config.secret!r}: "
                        "set it in ESCALATOR_SECRETS"
                    )
                secret = settings.secrets[config.secret].get_secret_value()
            channels[name] = SignedWebhook(name, config, secret, clock, poster)
    channels.setdefault("log", LogSink("log"))
    return channels
