"""The apprise channel: Slack, Teams, Discord, Telegram, email over SMTP and the rest of apprise.

Apprise reports only success or failure, so every failure is retried with backoff (a 429 from
the service is retried the same way). The URLs, which carry tokens, are never logged: errors are
redacted and apprise's own logging is kept at WARNING through our redaction filter.
"""

from __future__ import annotations

import logging

import apprise
import structlog

from schemas.messages import Notification
from schemas.policy import AppriseChannel
from worker.errors import DeliveryError, PermanentError
from worker.notify.redact import redact
from worker.notify.templates import Renderer

log = structlog.get_logger("escalator.notify")
_FORMATS = {
    "text": apprise.NotifyFormat.TEXT,
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
}
_TYPES = {"resolved": apprise.NotifyType.SUCCESS, "assigned": apprise.NotifyType.INFO}


class _Redacting(logging.Filter):
    """Masks secrets and URLs in apprise's own log records."""

    def __init__(self) -> None:
        super().__init__()
        self.values: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.values)
        record.args = None
        return True


_FILTER = _Redacting()
logging.getLogger("apprise").addFilter(_FILTER)


class AppriseSink:
    """Sends the rendered title and body to every URL of the channel."""

    def __init__(
        self,
        name: str,
        config: AppriseChannel,
        urls: list[str],
        secrets: list[str],
        renderer: Renderer,
    ) -> None:
        self.name = name
        self.format = _FORMATS[config.format]
        self.renderer = renderer
        self.secrets = secrets
        _FILTER.values.update(secrets)
        self.apprise = apprise.Apprise()
        for url in urls:
            if not self.apprise.add(url):
                raise PermanentError(
                    f"channel {name!r}: apprise does not understand URL {redact(url, secrets)}"
                )

    def send(self, message: Notification) -> None:
        title, body = self.renderer.render(message, self.name)
        try:
            ok = self.apprise.notify(
                body=body,
                title=title,
                body_format=self.format,
                notify_type=_TYPES.get(message.kind.value, apprise.NotifyType.WARNING),
            )
        except Exception as exc:  # apprise plugins raise little, but never let a URL leak
            raise DeliveryError(
                f"{self.name}: {type(exc).__name__}: {redact(str(exc), self.secrets)}"
            ) from None
        if not ok:
            raise DeliveryError(f"{self.name}: apprise could not deliver to every URL")
