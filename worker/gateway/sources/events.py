"""`POST /v1/events`: our own IssueEvent, by bearer token or signed with Standard Webhooks."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError

from config.sources import EventsSource
from schemas.events import IssueEvent
from worker.gateway.problems import invalid, pydantic_errors
from worker.gateway.signatures import bearer_matches, standard_signature, unauthorized
from worker.gateway.sources.common import Incoming, Mapped


class EventsAdapter:
    """Accepts the API token as a bearer, or a Standard Webhooks signature by a source secret."""

    name = "events"

    def __init__(self, config: EventsSource | None, api_token: SecretStr | None) -> None:
        self.config = config
        self.tokens = (api_token,) if api_token else ()

    @property
    def enabled(self) -> bool:
        return self.config is not None or bool(self.tokens)

    def authenticate(self, request: Incoming) -> None:
        h = request.headers
        if self.tokens and bearer_matches(self.tokens, h.get("authorization")):
            return
        if self.config is not None and self.config.insecure:
            return
        if self.config is not None and self.config.secrets and h.get("webhook-signature"):
            standard_signature(
                self.config.secrets,
                request.body,
                h.get("webhook-id"),
                h.get("webhook-timestamp"),
                h.get("webhook-signature"),
                request.now,
                request.window_s,
            )
            return
        raise unauthorized("send Authorization: Bearer <token> or a Standard Webhooks signature")

    def interpret(self, request: Incoming, payload: Any) -> Mapped:
        try:
            event = IssueEvent.model_validate(payload)
        except ValidationError as exc:
            raise invalid(pydantic_errors(exc.errors()), "Invalid event") from None
        # A signed delivery is deduplicated on its webhook-id, anything else on the event id.
        delivery = request.headers.get("webhook-id", "").strip()[:200] or f"event:{event.event_id}"
        return Mapped(delivery_id=delivery, events=[event])
