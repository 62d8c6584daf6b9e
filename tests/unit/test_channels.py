"""The signed webhook channel: Standard Webhooks headers and HTTP outcomes (notify/channels.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from config.settings import Settings
from schemas.messages import IssueRef, Notification, NotificationKind
from schemas.policy import PolicyFile, WebhookChannel
from tests.support.posters import HttpxPoster
from worker.domain.clock import ManualClock
from worker.errors import DeliveryError, PermanentError, PolicyError
from worker.notify.channels import LogSink, SignedWebhook, build_channels

from .factories import T0

SECRET = "whsec_" + base64.b64encode(b"unit-test-signing-secret-0123456").decode()
URL = "https://hooks.example.com/escalator"


def message(message_id: str = "msg_0123abcd") -> Notification:
    """An ESCALATED notification."""
    return Notification(
        id=message_id,
        kind=NotificationKind.ESCALATED,
        issue=IssueRef(key="jira:OPS-1", source="jira", id="OPS-1", title="down", severity="P1"),
        tier="L2",
        assignee="l2-oncall",
        text="P1 jira:OPS-1 escalated to L2",
        occurred_at=T0,
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """An HTTP client that never touches the network (every request fails loudly)."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request to {request.url}")

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        yield client


def webhook(clock: ManualClock, http: httpx.Client, secret: str | None = SECRET) -> SignedWebhook:
    """A SignedWebhook to URL, sending through `http`."""
    return SignedWebhook("ops", WebhookChannel(url=URL), secret, clock, HttpxPoster(http))


def wall_clock() -> ManualClock:
    """A manual clock at the real time: receivers reject signatures older than five minutes."""
    return ManualClock(datetime.now(UTC))


def test_signature_verifies_with_standard_webhooks(http: httpx.Client) -> None:
    """A receiver using the standardwebhooks library accepts the body with our headers."""
    channel, msg = webhook(wall_clock(), http), message()
    body = json.dumps(msg.model_dump(mode="json"))
    headers = channel.headers(msg, body)
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    assert headers["webhook-id"] == msg.id
    assert headers["content-type"] == "application/json"


def test_signature_does_not_verify_a_tampered_body(http: httpx.Client) -> None:
    """Changing one byte of the body breaks the signature."""
    channel, msg = webhook(wall_clock(), http), message()
    body = json.dumps(msg.model_dump(mode="json"))
    headers = channel.headers(msg, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace("L2", "L3"), headers)


def test_timestamp_header_comes_from_the_injected_clock(http: httpx.Client) -> None:
    """webhook-timestamp is the clock's time in whole seconds."""
    headers = webhook(ManualClock(T0), http).headers(message(), "{}")
    assert headers["webhook-timestamp"] == str(int(T0.timestamp()))


def test_unsigned_without_a_secret(http: httpx.Client) -> None:
    """With no secret configured there is no signature header, but the id is still sent."""
    headers = webhook(ManualClock(T0), http, secret=None).headers(message("msg_x"), "{}")
    assert "webhook-signature" not in headers
    assert headers["webhook-id"] == "msg_x"


def transport_client(status: int, seen: list[httpx.Request]) -> httpx.Client:
    """A client whose every request gets `status`, recording the requests."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status)

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status", [200, 202, 204])
def test_send_2xx_is_delivered(status: int) -> None:
    """A 2xx answer is success; the POST carries the signed JSON body with our message id."""
    seen: list[httpx.Request] = []
    with transport_client(status, seen) as client:
        webhook(wall_clock(), client).send(message())
    [request] = seen
    assert (request.method, str(request.url)) == ("POST", URL)
    body = request.content.decode()
    assert Webhook(SECRET).verify(body, dict(request.headers))["id"] == "msg_0123abcd"


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_send_retryable_status_is_a_delivery_error(status: int) -> None:
    """5xx, 429 and 408 are transient: DeliveryError, retried with backoff."""
    with transport_client(status, []) as client, pytest.raises(DeliveryError, match=str(status)):
        webhook(ManualClock(T0), client).send(message())


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_send_refusal_is_permanent(status: int) -> None:
    """Other 4xx answers mean the receiver refuses the message: PermanentError."""
    with transport_client(status, []) as client, pytest.raises(PermanentError, match=str(status)):
        webhook(ManualClock(T0), client).send(message())


def test_send_network_failure_is_a_delivery_error() -> None:
    """A connection error is transient."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(DeliveryError, match="ConnectError"),
    ):
        webhook(ManualClock(T0), client).send(message())


def policy_with_webhook(secret: str | None) -> PolicyFile:
    """A policy file with a webhook channel `ops`."""
    ops: dict[str, object] = {"type": "webhook", "url": URL}
    if secret:
        ops["secret"] = secret
    return PolicyFile.model_validate(
        {
            "channels": {"ops": ops},
            "tiers": [{"name": "L1", "channels": ["ops"]}],
            "policies": [{"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": 60}]}}],
            "default": "p",
        }
    )


def test_build_channels_needs_the_named_secret(http: httpx.Client) -> None:
    """A webhook naming a secret that ESCALATOR_SECRETS lacks is a PolicyError."""
    settings = Settings(_env_file=None, secrets={})
    with pytest.raises(PolicyError, match="needs secret 'ops'"):
        build_channels(policy_with_webhook("ops"), settings, ManualClock(T0), HttpxPoster(http))


def test_build_channels_wires_webhooks_and_always_has_log(http: httpx.Client) -> None:
    """Named channels are built and a `log` channel exists even when the file has none."""
    settings = Settings(_env_file=None, secrets={"ops": SECRET})
    channels = build_channels(
        policy_with_webhook("ops"), settings, ManualClock(T0), HttpxPoster(http)
    )
    assert isinstance(channels["ops"], SignedWebhook)
    assert isinstance(channels["log"], LogSink)
