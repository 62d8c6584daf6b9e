"""Verifying requests: each vendor's signature scheme, bearer tokens and basic auth.

Every comparison is `hmac.compare_digest`; any one of a source's secrets verifies (rotation).
A refusal is a `Rejected(401)` whose detail never contains a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import SecretStr

from worker.errors import Rejected


def unauthorized(detail: str) -> Rejected:
    return Rejected(401, "Unauthorized", detail)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _keys(secrets: Sequence[SecretStr]) -> list[bytes]:
    return [s.get_secret_value().encode() for s in secrets]


def _any_equal(given: Iterable[bytes], expected: Iterable[bytes]) -> bool:
    expected = list(expected)
    found = False
    for g in given:
        for e in expected:
            found |= hmac.compare_digest(g, e)  # no early exit: timing says nothing
    return found


def hub_signature(secrets: Sequence[SecretStr], body: bytes, header: str | None, name: str) -> None:
    """GitHub `X-Hub-Signature-256` and Jira `X-Hub-Signature`: `sha256=` + hex HMAC of the body."""
    if not header:
        raise unauthorized(f"missing {name} header")
    scheme, _, value = header.strip().partition("=")
    if scheme.lower() != "sha256" or not value:
        raise unauthorized(f"{name} must be sha256=<hex>")
    expected = (_hmac(k, body).hex().encode() for k in _keys(secrets))
    if not _any_equal([value.lower().encode()], expected):
        raise unauthorized(f"{name} does not match")


def pagerduty_signature(secrets: Sequence[SecretStr], body: bytes, header: str | None) -> None:
    """PagerDuty V3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`; any match accepts."""
    if not header:
        raise unauthorized("missing X-PagerDuty-Signature header")
    given = [
        value.strip().lower().encode()
        for scheme, _, value in (part.strip().partition("=") for part in header.split(","))
        if scheme == "v1" and value
    ]
    expected = (_hmac(k, body).hex().encode() for k in _keys(secrets))
    if not given or not _any_equal(given, expected):
        raise unauthorized("X-PagerDuty-Signature does not match")


def in_window(when: datetime, now: datetime, window_s: float, name: str) -> None:
    if abs((now - when).total_seconds()) > window_s:
        raise unauthorized(f"{name} is outside the replay window of {window_s:g} s")


def zendesk_signature(
    secrets: Sequence[SecretStr],
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: datetime,
    window_s: float,
) -> None:
    """Zendesk: base64 HMAC-SHA256 of timestamp + body; the timestamp is ISO 8601."""
    if not signature or not timestamp:
        raise unauthorized("missing X-Zendesk-Webhook-Signature(-Timestamp) header")
    try:
        when = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
    except ValueError:
        raise unauthorized("X-Zendesk-Webhook-Signature-Timestamp is not ISO 8601") from None
    if when.tzinfo is None:
        raise unauthorized("X-Zendesk-Webhook-Signature-Timestamp has no time zone")
    in_window(when, now, window_s, "X-Zendesk-Webhook-Signature-Timestamp")
    message = timestamp.encode() + body
    expected = (base64.b64encode(_hmac(k, message)) for k in _keys(secrets))
    if not _any_equal([signature.strip().encode()], expected):
        raise unauthorized("X-Zendesk-Webhook-Signature does not match")


def standard_key(secret: SecretStr) -> bytes:
    """A Standard Webhooks secret: `whsec_` + base64; anything else is used as its bytes."""
    value = secret.get_secret_value()
    if value.startswith("whsec_"):
        try:
            return base64.b64decode(value[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return value.encode()


def standard_signature(
    secrets: Sequence[SecretStr],
    body: bytes,
    msg_id: str | None,
    timestamp: str | None,
    signature: str | None,
    now: datetime,
    window_s: float,
) -> None:
    """Standard Webhooks: `v1,<base64 HMAC of id.timestamp.body>`, space-separated, in window."""
    if not msg_id or not timestamp or not signature:
        raise unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        seconds = int(timestamp.strip())
        when = datetime.fromtimestamp(seconds, now.tzinfo)
    except (ValueError, OverflowError, OSError):
        raise unauthorized("webhook-timestamp is not a Unix time in seconds") from None
    in_window(when, now, window_s, "webhook-timestamp")
    message = f"{msg_id}.{seconds}.".encode() + body
    given = [
        value.encode()
        for version, _, value in (part.partition(",") for part in signature.split())
        if version == "v1" and value
    ]
    expected = (base64.b64encode(_hmac(standard_key(s), message)) for s in secrets)
    if not given or not _any_equal(given, expected):
        raise unauthorized("webhook-signature does not match")


def bearer_matches(tokens: Sequence[SecretStr], authorization: str | None) -> bool:
    """Whether `Authorization: Bearer <token>` names one of the tokens."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return _any_equal([given.strip().encode()], _keys(tokens))


def basic_matches(
    passwords: Sequence[SecretStr], authorization: str | None, username: str | None
) -> bool:
    """Whether `Authorization: Basic ...` carries one of the passwords (and the user name)."""
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    if not sep:
        return False
    user_ok = username is None or hmac.compare_digest(user, username.encode())
    return _any_equal([password], _keys(passwords)) and user_ok
