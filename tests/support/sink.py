"""A local webhook receiver for tests: records requests, can fail or hang on demand."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """`mode`: "ok" answers 204; "fail" answers 500; "hang" holds each request until released."""

    mode: str = "ok"
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def start(self) -> str:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                sink.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                sink.arrived.set()
                if sink.mode == "hang":
                    sink.release.wait(30)
                    return  # drop the connection without an answer
                self.send_response(500 if sink.mode == "fail" else 204)
                self.end_headers()

            def do_GET(self) -> None:  # a dead-man's switch ping
                sink.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, b"")
                )
                sink.arrived.set()
                self.send_response(500 if sink.mode == "fail" else 200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        return self.url

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def ids(self) -> list[str]:
        """The webhook-id of every request received, in order."""
        return [r.headers.get("webhook-id", "") for r in self.received]
