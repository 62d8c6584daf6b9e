"""The signed-webhook transport (notify/http.py PooledPoster) against a real HTTP/1.1 server."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from standardwebhooks import Webhook

from schemas.messages import IssueRef, Notification, NotificationKind
from schemas.policy import WebhookChannel
from worker.domain.clock import ManualClock
from worker.errors import DeliveryError, PermanentError, RateLimited
from worker.notify.channels import SignedWebhook
from worker.notify.http import PooledPoster, TransportError

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timeout test) or refused our certificate: expected."""


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0


@dataclass
class Server:
    """A keep-alive HTTP/1.1 server: answers every request with `answer`, records what came."""

    answer: Answer = field(default_factory=Answer)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    tls: ssl.SSLContext | None = None
    url: str = ""

    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((self.command, self.path, headers, body))
                server.connections.add(id(self.connection))
                answer = server.answer
                time.sleep(answer.delay_s)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *_: Any) -> None:
                pass

        self.http = QuietServer(("127.0.0.1", 0), Handler)
        if self.tls:
            self.http.socket = self.tls.wrap_socket(self.http.socket, server_side=True)
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.http.server_address[1]}/hook"
        return self.url

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    """A local receiver on 127.0.0.1 that answers 204 until told otherwise."""
    s = Server()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def poster(monkeypatch: pytest.MonkeyPatch) -> Iterator[PooledPoster]:
    """A pool of 4 connections per host, with no proxy from this machine's environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    p = PooledPoster(4)
    yield p
    p.close()


def message(n: int = 1) -> Notification:
    """An escalation message, numbered `n`, with a non-ASCII title."""
    return Notification(
        id=f"msg_{n:08d}",
        kind=NotificationKind.ESCALATED,
        issue=IssueRef(
            key="jira:OPS-1",
            source="jira",
            id="OPS-1",
            title="Zahlung fällt aus",
            severity="P1",
        ),
        tier="L2",
        assignee="l2-oncall",
        text="P1 jira:OPS-1 escalated to L2",
        occurred_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )


def hook(url: str, poster: PooledPoster, timeout_s: float = 5.0) -> SignedWebhook:
    """A signed webhook channel `ops` to `url`, through `poster`."""
    config = WebhookChannel.model_validate({"url": url, "timeout": timeout_s})
    return SignedWebhook("ops", config, SECRET, ManualClock(datetime.now(UTC)), poster)


def test_signed_post_arrives_whole_and_verifies(server: Server, poster: PooledPoster) -> None:
    """The receiver gets a POST to the path whose body (non-ASCII too) verifies with the secret."""
    hook(server.url, poster).send(message())
    [(method, path, headers, body)] = server.requests
    assert (method, path) == ("POST", "/hook")
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["id"] == "msg_00000001" and payload["issue"]["title"] == "Zahlung fällt aus"
    assert headers["content-type"] == "application/json"


def test_connections_are_kept_alive(server: Server, poster: PooledPoster) -> None:
    """Sequential sends reuse one connection, even when the receiver answers with a body."""
    server.answer = Answer(200, {"content-type": "text/plain"}, b"x" * 100_000)
    channel = hook(server.url, poster)
    for n in range(20):
        channel.send(message(n))
    assert len(server.requests) == 20
    assert len(server.connections) == 1


def test_429_with_retry_after_is_rate_limited(server: Server, poster: PooledPoster) -> None:
    """A 429's Retry-After reaches the outbox as the time to wait."""
    server.answer = Answer(429, {"retry-after": "42"})
    with pytest.raises(RateLimited) as caught:
        hook(server.url, poster).send(message())
    assert caught.value.retry_after == 42.0


@pytest.mark.parametrize(
    ("status", "error"), [(500, DeliveryError), (503, DeliveryError), (410, PermanentError)]
)
def test_failure_statuses(
    server: Server, poster: PooledPoster, status: int, error: type[Exception]
) -> None:
    """5xx is retried; a refusal is permanent; neither is mistaken for success."""
    server.answer = Answer(status)
    with pytest.raises(error, match=str(status)):
        hook(server.url, poster).send(message())


def test_redirect_is_not_followed(server: Server, poster: PooledPoster) -> None:
    """A 301 is a refusal (PermanentError): the signed body is not re-sent elsewhere."""
    server.answer = Answer(301, {"location": "http://127.0.0.1:1/elsewhere"})
    with pytest.raises(PermanentError, match="301"):
        hook(server.url, poster).send(message())
    assert len(server.requests) == 1


def test_refused_connection_is_a_delivery_error(poster: PooledPoster) -> None:
    """Nothing listening: a retried DeliveryError that names the failure, not the URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryError, match="ops: NewConnectionError") as caught:
        hook(f"http://127.0.0.1:{port}/hook?token=secret", poster).send(message())
    assert "secret" not in str(caught.value)


def test_slow_receiver_times_out(server: Server, poster: PooledPoster) -> None:
    """A receiver slower than the channel's timeout gives a DeliveryError, on time."""
    server.answer = Answer(delay_s=1.0)
    start = time.monotonic()
    with pytest.raises(DeliveryError, match="ReadTimeoutError"):
        hook(server.url, poster, timeout_s=0.3).send(message())
    assert time.monotonic() - start < 1.5


def test_proxy_from_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch, poster: PooledPoster
) -> None:
    """With HTTP_PROXY set, the POST goes to the proxy with the absolute URL; NO_PROXY wins."""
    monkeypatch.setenv("HTTP_PROXY", server.url.removesuffix("/hook"))
    via_proxy = PooledPoster(2)
    try:
        via_proxy.post("http://hooks.example.invalid/x", b"{}", {}, 5.0)
        assert server.requests[-1][1] == "http://hooks.example.invalid/x"
    finally:
        via_proxy.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypass = PooledPoster(2)
    try:
        bypass.post(server.url, b"{}", {}, 5.0)
        assert server.requests[-1][1] == "/hook"
    finally:
        bypass.close()


@pytest.mark.parametrize(
    ("variable", "proxy"),
    [
        ("HTTP_PROXY", "127.0.0.1:{port}"),  # no scheme: http:// as httpx and requests assume
        ("ALL_PROXY", "http://127.0.0.1:{port}"),
        ("HTTP_PROXY", "http://ops%40corp:p%40ss@127.0.0.1:{port}"),  # credentials, quoted
    ],
)
def test_proxy_forms_that_httpx_accepts(
    server: Server, monkeypatch: pytest.MonkeyPatch, variable: str, proxy: str
) -> None:
    """Scheme-less, catch-all and authenticated proxies work as they did for httpx."""
    port = server.http.server_address[1]
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv(variable, proxy.format(port=port))
    via_proxy = PooledPoster(2)
    try:
        assert via_proxy.post("http://hooks.example.invalid/x", b"{}", {}, 5.0).status == 204
    finally:
        via_proxy.close()
    _, path, headers, _ = server.requests[-1]
    assert path == "http://hooks.example.invalid/x"
    if "@" in proxy:
        expected = "Basic " + base64.b64encode(b"ops@corp:p@ss").decode()
        assert headers["proxy-authorization"] == expected


def test_no_proxy_with_a_port(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY=host:port bypasses the proxy for that host and port."""
    port = server.http.server_address[1]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # nothing listens: must be bypassed
    monkeypatch.setenv("NO_PROXY", f"127.0.0.1:{port}")
    poster = PooledPoster(2)
    try:
        assert poster.post(server.url, b"{}", {}, 5.0).status == 204
    finally:
        poster.close()


def test_unsupported_proxy_scheme_is_ignored_with_a_warning(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A socks5:// ALL_PROXY (not supported here) is skipped and said so, not retried forever."""
    monkeypatch.setenv("ALL_PROXY", "socks5://user:secret@127.0.0.1:1080")
    poster = PooledPoster(2)
    try:
        assert poster.post(server.url, b"{}", {}, 5.0).status == 204
    finally:
        poster.close()
    out = capsys.readouterr().out
    assert "http.proxy_unsupported" in out and "secret" not in out


def test_transport_error_is_raised_by_the_poster_itself(poster: PooledPoster) -> None:
    """The poster's own contract: no answer is TransportError, naming urllib3's error kind."""
    with pytest.raises(TransportError, match="Error"):
        poster.post("http://127.0.0.1:1/x", b"{}", {}, 1.0)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """The receiver behind TLS, its certificate issued by a throwaway CA; yields the CA's file."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    s = Server(tls=context)
    s.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield s, str(ca_file)
    s.stop()


def test_tls_certificate_is_verified(tls_server: tuple[Server, str], poster: PooledPoster) -> None:
    """A certificate from an unknown CA is refused (retried later), and nothing is sent."""
    server, _ = tls_server
    with pytest.raises(DeliveryError, match="SSLError"):
        hook(server.url, poster).send(message())
    assert server.requests == []


def test_tls_trusts_ssl_cert_file(
    tls_server: tuple[Server, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE names a private CA (an internal ticket system's), and its servers verify."""
    server, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    private = PooledPoster(2)
    try:
        hook(server.url, private).send(message())
    finally:
        private.close()
    assert len(server.requests) == 1
