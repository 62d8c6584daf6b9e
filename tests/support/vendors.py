"""Local receivers shaped like the real ones: a Jira/GitHub/Zendesk/webhook HTTP server and SMTP.

The HTTP server checks each call the way the vendor documents it (method, path, auth header,
body shape) and answers 400 to a malformed one; a script of answers (`fail_next`) makes it
answer 500 or 429 with Retry-After first, to exercise retries. Receivers dedupe on the message
id, as real ones would: `webhook-id` for webhooks, the `[msg_...]` tag of write-back comments.
"""

from __future__ import annotations

import base64
import email
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks import Webhook

JIRA_AUTH = "Basic " + base64.b64encode(b"bot@example.com:jira-token").decode()
GITHUB_AUTH = "Bearer ghp_test"
ZENDESK_AUTH = "Basic " + base64.b64encode(b"bot@example.com/token:zd-token").decode()
MSG_TAG = re.compile(r"\[(msg_[0-9a-f]{32})\]")


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    at: float = field(default_factory=time.monotonic)

    def message_id(self) -> str | None:
        """The message id this call carries: webhook-id, escalator-message-id or a [msg_...] tag."""
        for header in ("webhook-id", "escalator-message-id"):
            if header in self.headers:
                return self.headers[header]
        found = MSG_TAG.search(json.dumps(self.body))
        return found.group(1) if found else None


def _jira_ok(method: str, path: str, auth: str, body: Any) -> bool:
    if auth != JIRA_AUTH:
        return False
    if method == "PUT" and re.fullmatch(r"/rest/api/3/issue/[A-Z][A-Z0-9]*-\d+/assignee", path):
        return isinstance(body, dict) and set(body) == {"accountId"}
    if method == "POST" and re.fullmatch(r"/rest/api/3/issue/[A-Z][A-Z0-9]*-\d+/comment", path):
        doc = body.get("body", {}) if isinstance(body, dict) else {}
        return doc.get("type") == "doc" and doc.get("version") == 1
    return False


def _github_ok(method: str, path: str, auth: str, body: Any) -> bool:
    if auth != GITHUB_AUTH:
        return False
    base = r"/repos/[\w.-]+/[\w.-]+/issues/\d+"
    if method == "DELETE" and re.fullmatch(base + r"/labels/[^/]+", path):
        return True
    if method != "POST":
        return False
    shapes = {"/assignees": "assignees", "/labels": "labels", "/comments": "body"}
    for suffix, key in shapes.items():
        if re.fullmatch(base + suffix, path):
            return isinstance(body, dict) and key in body
    return False


def _zendesk_ok(method: str, path: str, auth: str, body: Any) -> bool:
    if (
        auth != ZENDESK_AUTH
        or method != "PUT"
        or not re.fullmatch(r"/api/v2/tickets/\d+\.json", path)
    ):
        return False
    ticket = body.get("ticket", {}) if isinstance(body, dict) else {}
    comment = ticket.get("comment", {})
    return comment.get("public") is False and bool(comment.get("body"))


@dataclass
class VendorServer:
    """Jira at /rest/api/3, GitHub at /repos, Zendesk at /api/v2, signed webhooks at /hook."""

    secret: str | None = None
    calls: list[Call] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, retry_after: str | None = None) -> None:
        """Answer the next call with `status` (and a Retry-After header)."""
        self.script.append((status, {"retry-after": retry_after} if retry_after else {}))

    def _valid(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> bool:
        body = json.loads(raw) if raw else None
        auth = headers.get("authorization", "")
        if path.startswith("/rest/api/3/"):
            return _jira_ok(method, path, auth, body)
        if path.startswith("/repos/"):
            return _github_ok(method, path, auth, body)
        if path.startswith("/api/v2/"):
            return _zendesk_ok(method, path, auth, body)
        if path.startswith("/hook") and method == "POST":
            if self.secret:
                Webhook(self.secret).verify(raw, headers)  # raises on a bad signature
            return "webhook-id" in headers
        return False

    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.split("?")[0]
                try:
                    valid = server._valid(self.command, path, headers, raw)
                except Exception:
                    valid = False
                with server.lock:
                    status, extra = (
                        (400, {})
                        if not valid
                        else (server.script.pop(0) if server.script else (200, {}))
                    )
                    body = json.loads(raw) if raw else None
                    server.calls.append(Call(self.command, path, headers, body, status))
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self, prefix: str = "") -> dict[str, list[Call]]:
        """Successful calls under `prefix`, grouped by message id (dedup as a receiver would)."""
        seen: dict[str, list[Call]] = {}
        for call in list(self.calls):
            if 200 <= call.status < 300 and call.path.startswith(prefix):
                seen.setdefault(call.message_id() or "?", []).append(call)
        return seen


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(email.message_from_bytes(raw))
        return "250 OK"


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""

    port: int = 0
    inbox: _Inbox = field(default_factory=_Inbox)

    def start(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self.port

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Message]:
        return self.inbox.messages

    def bodies(self) -> list[str]:
        """Each message's text (all parts)."""
        out = []
        for message in self.messages:
            parts = message.walk() if message.is_multipart() else [message]
            out.append(
                "".join(
                    p.get_payload(decode=True).decode(errors="replace")  # type: ignore[union-attr]
                    for p in parts
                    if p.get_content_maintype() == "text"
                )
            )
        return out
