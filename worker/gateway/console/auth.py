"""Console sign-in: tokens, the signed session cookie, CSRF tokens, who may act.

A session is a cookie `escalator_session` holding, signed with HMAC-SHA256: the role (`full`
from the management or API token, `viewer` from the viewer token), the name given at sign-in
(the actor of the person's actions), a per-session CSRF token, an expiry, and a fingerprint of
the token used, so that changing a token ends the sessions it opened. The signing key is
`ESCALATOR_CONSOLE_SESSION_SECRET`, else derived from the tokens, so every api worker process
agrees without sharing state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import quote

from pydantic import SecretStr

from config.settings import Settings

COOKIE = "escalator_session"
Role = Literal["full", "viewer"]
FULL: Role = "full"
VIEWER: Role = "viewer"
DEFAULT_ACTOR = "console"
NAME_MAX = 200


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who is looking: a signed-in person, or anyone (anonymous read-only viewing)."""

    role: Role
    name: str
    csrf: str
    signed_in: bool = True

    @property
    def can_act(self) -> bool:
        """Acknowledge, resolve, escalate, snooze, replay, retry: full access only."""
        return self.signed_in and self.role == FULL

    @property
    def actor(self) -> str:
        """The name recorded on the timeline for this visitor's actions."""
        return self.name or DEFAULT_ACTOR


ANONYMOUS = Visitor(VIEWER, "", "", signed_in=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


class Keys:
    """The configured tokens and the key that signs sessions."""

    def __init__(self, settings: Settings) -> None:
        full = (settings.management_token, settings.api_token)
        self.full = tuple(t.get_secret_value() for t in full if t and t.get_secret_value())
        viewer = _secret(settings.viewer_token)
        self.viewer = (viewer,) if viewer else ()
        configured = _secret(settings.console_session_secret)
        material = configured or "\0".join(("escalator-console", *self.full, *self.viewer))
        self.key = hashlib.sha256(material.encode()).digest()
        self.max_age = timedelta(hours=settings.console_session_hours)

    @property
    def any_token(self) -> bool:
        """Whether anyone can sign in at all."""
        return bool(self.full or self.viewer)

    def _fingerprint(self, token: str) -> str:
        return _b64(hmac.new(self.key, b"token\0" + token.encode(), "sha256").digest()[:12])

    def role_of(self, token: str) -> tuple[Role, str] | None:
        """The role a token signs in as, and its fingerprint; None for a wrong token."""
        given = token.encode()
        found: tuple[Role, str] | None = None
        pairs: tuple[tuple[Role, tuple[str, ...]], ...] = ((FULL, self.full), (VIEWER, self.viewer))
        for role, tokens in pairs:
            for known in tokens:  # compare with every token, in constant time each
                if hmac.compare_digest(given, known.encode()) and found is None:
                    found = (role, self._fingerprint(known))
        return found

    def issue(self, role: Role, fingerprint: str, name: str, now: datetime) -> str:
        """A new session cookie's value, with a fresh CSRF token."""
        payload = {
            "r": role,
            "n": name,
            "c": secrets.token_urlsafe(24),
            "x": int((now + self.max_age).timestamp()),
            "f": fingerprint,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.key, b"session\0" + body.encode(), "sha256").digest())

    def read(self, cookie: str | None, now: datetime) -> Visitor | None:
        """The visitor a cookie names: None when absent, forged, expired or its token gone."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        try:  # bytes: compare_digest refuses a str with a non-ASCII character (TypeError)
            if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
                return None
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):  # UnicodeError too: any malformed cookie
            return None
        if not isinstance(payload, dict):
            return None
        expires = payload.get("x")
        if not isinstance(expires, int) or expires <= now.timestamp():
            return None
        role: Role
        if payload.get("r") == FULL:
            role, tokens = FULL, self.full
        elif payload.get("r") == VIEWER:
            role, tokens = VIEWER, self.viewer
        else:
            return None
        if not any(self._fingerprint(t) == payload.get("f") for t in tokens):
            return None  # the token it signed in with was changed or removed
        return Visitor(role, str(payload.get("n", "")), str(payload.get("c", "")))


def csrf_ok(visitor: Visitor, given: str | None) -> bool:
    """Whether a submitted CSRF token is the session's own (constant-time)."""
    if not visitor.signed_in or not visitor.csrf or not given:
        return False
    return hmac.compare_digest(visitor.csrf.encode(), given.encode())


def clean_name(raw: str | None) -> str:
    """The name given at sign-in, made safe to store: printable, trimmed, at most 200 chars."""
    text = "".join(ch for ch in (raw or "") if ch.isprintable())
    return text.strip()[:NAME_MAX].strip()


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this site only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def login_url(path: str, query: str) -> str:
    """The sign-in page, coming back to `path?query` afterwards."""
    back = path + (f"?{query}" if query else "")
    return "/login" if back == "/" else f"/login?next={quote(back, safe='')}"
