"""Vendor samples from tests/fixtures/webhooks, signed the way each vendor signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
SECRET = "it's-a-secret-to-everybody"
WHSEC = "whsec_" + base64.b64encode(b"escalator-standard-webhooks-key!").decode()
TOKEN = "api-token-for-tests"


def sample(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Signed:
    """A request ready to POST: path, raw body and headers."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def github(payload: Any, event: str = "issues", delivery: str | None = None,
           secret: str = SECRET) -> Signed:  # fmt: skip
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Signed("/v1/webhooks/github", body, {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-hub-signature-256": "sha256=" + _hex(secret, body),
        "user-agent": "GitHub-Hookshot/044aadd",
    })  # fmt: skip


def jira(payload: Any, delivery: str | None = None, secret: str = SECRET) -> Signed:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Signed("/v1/webhooks/jira", body, {
        "content-type": "application/json",
        "x-atlassian-webhook-identifier": delivery or str(uuid.uuid4().int)[:12],
        "x-hub-signature": "sha256=" + _hex(secret, body),
    })  # fmt: skip


def zendesk(payload: Any, at: datetime | None = None, secret: str = SECRET) -> Signed:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return Signed("/v1/webhooks/zendesk", body, {
        "content-type": "application/json",
        "x-zendesk-webhook-id": "01GK8E6BKWMJZD2T8Y5AXJQMG5",
        "x-zendesk-webhook-signature": base64.b64encode(digest).decode(),
        "x-zendesk-webhook-signature-timestamp": stamp,
    })  # fmt: skip


def pagerduty(payload: Any, delivery: str | None = None, secrets: tuple[str, ...] = (SECRET,)
              ) -> Signed:  # fmt: skip
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Signed("/v1/webhooks/pagerduty", body, {
        "content-type": "application/json",
        "x-webhook-id": delivery or str(uuid.uuid4()),
        "x-pagerduty-signature": ",".join(f"v1={_hex(s, body)}" for s in secrets),
        "x-webhook-subscription": "PY1OQQ5",
    })  # fmt: skip


def alertmanager(payload: Any, token: str = SECRET) -> Signed:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Signed("/v1/webhooks/alertmanager", body, {
        "content-type": "application/json", "authorization": f"Bearer {token}",
    })  # fmt: skip


def events(payload: Any, msg_id: str | None = None, at: float | None = None,
           secret: str = WHSEC) -> Signed:  # fmt: skip
    """Our own IssueEvent, signed with Standard Webhooks."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(at if at is not None else time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return Signed("/v1/events", body, {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    })  # fmt: skip


def issue_event(issue: str = "OPS-1", kind: str = "issue.opened", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "type": kind,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "jira",
        "issue": {"id": issue, "title": "Checkout is down", "severity": "P1"},
        **extra,
    }


def sources_env(**overrides: Any) -> str:
    """ESCALATOR_SOURCES with every source configured with the test secrets."""
    sources: dict[str, Any] = {
        "events": {"secrets": [WHSEC]},
        "github": {"secrets": ["old-rotated-secret", SECRET]},
        "jira": {"secrets": [SECRET]},
        "zendesk": {"secrets": [SECRET], "url_base": "https://acme.zendesk.com"},
        "pagerduty": {"secrets": [SECRET]},
        "alertmanager": {"secrets": [SECRET]},
    }
    sources.update(overrides)
    return json.dumps(sources)
