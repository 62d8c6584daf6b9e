"""A live console: every real role behind the web console, for browser tests and screenshots.

`running_console` starts a private Redis (the embedded one, on a unix socket of its own), a
migrated SQLite database, a local receiver for notifications and the roles api, ingest,
scheduler and `worker` (both Celery workers: escalations and outbox). The policy has four tiers
of `tier_s` seconds each and a resolve target that pauses while the issue waits on the customer.
Every tier notifies an apprise `json://` channel aimed at the receiver, so a test reads the
rendered message a person would get, with its link to the issue page
(`ESCALATOR_PUBLIC_URL` is the api's own address).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.sink import Sink
from tests.support.stack import Stack, event
from worker.broker.embedded import EmbeddedRedis
from worker.store.migrate import upgrade

ADMIN_TOKEN = "browser-admin-token-0123456789"
VIEWER_TOKEN = "browser-viewer-token-0123456789"
SOURCE = "test"
ROLES = ("api", "ingest", "scheduler", "worker")
TIERS = ("L1", "L2", "L3", "manager")
WAITING = "waiting_on_customer"
LINK = re.compile(r"https?://\S+/issues/\S+")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NO_CHROMIUM = "no Chromium: apt-get install chromium, or set ESCALATOR_CHROMIUM"
WAIT_MS = 20_000  # every wait on a page: generous, the machine is shared


def find_chromium(environ: dict[str, str] | None = None) -> str | None:
    """The Chromium to drive: $ESCALATOR_CHROMIUM if it names a file, else one on PATH."""
    env = os.environ if environ is None else environ
    chosen = env.get("ESCALATOR_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def policy_text(hook_url: str, tier_s: float, resolve_s: float) -> str:
    """Four tiers of `tier_s` seconds, each notifying the log and the receiver (`hook_url`)."""
    tiers = "".join(
        f"  - {{name: {t}, assignee: {t.lower()}-oncall, channels: [log, hook]}}\n" for t in TIERS
    )
    ladder = "".join(f"        - {{tier: {t}, within: {tier_s}s}}\n" for t in TIERS)
    return (
        "version: 1\nchannels:\n  log: {type: log}\n"
        f"  hook: {{type: apprise, url: '{hook_url}', format: text}}\n"
        f"tiers:\n{tiers}"
        "policies:\n  - name: fast\n    acknowledge:\n      ladder:\n"
        f"{ladder}"
        f"      renotify_every: {tier_s * 10}s\n"
        f"    resolve: {{within: {resolve_s}s, pause_on: [{WAITING}]}}\n"
        "default: fast\n"
    )


@dataclass
class Console:
    """The running stack, its console's address and the messages it sent."""

    stack: Stack
    url: str
    sink: Sink

    def send(
        self,
        kind: str,
        issue: str,
        at: datetime | None = None,
        source: str = SOURCE,
        **fields: Any,
    ) -> None:
        """Put one event about `source:issue` on the stream."""
        self.stack.producer.send(event(kind, issue, at=at, source=source, **fields))

    def open_issue(
        self, issue: str, at: datetime | None = None, source: str = SOURCE, **fields: Any
    ) -> str:
        """Open an issue and wait until ingest applied it; its key."""
        self.send("issue.opened", issue, at=at, source=source, **fields)
        self.stack.wait_for(lambda: self.stack.issue(issue, source), 30, f"{issue} to be opened")
        return f"{source}:{issue}"

    def messages(self) -> list[str]:
        """The rendered body of every message the receiver got, in order."""
        return [str(r.json().get("message", "")) for r in list(self.sink.received) if r.body]

    def link_for(self, key: str, timeout: float = 30) -> str:
        """The issue-page link of the first message about `key` (waits for one)."""

        def found() -> str | None:
            for body in self.messages():
                for link in LINK.findall(body):
                    if link.endswith(f"/issues/{key}"):
                        return str(link)
            return None

        link = self.stack.wait_for(found, timeout, f"a message about {key} with its link")
        assert link is not None
        return link


@contextlib.contextmanager
def running_console(
    tmp: Path, tier_s: float = 30.0, resolve_s: float = 600.0, **env: str
) -> Iterator[Console]:
    """Start everything under `tmp`; stop it all on the way out."""
    tmp.mkdir(parents=True, exist_ok=True)
    redis = EmbeddedRedis(tmp / "redis", Path("/tmp") / f"escalator-console-{os.getpid()}.sock")
    sink = Sink()
    redis_url = redis.start()
    stack: Stack | None = None
    try:
        hook = sink.start().replace("http://", "json://", 1)
        database_url = f"sqlite:///{tmp / 'escalator.db'}"
        upgrade(database_url)
        policy = tmp / "policy.yaml"
        policy.write_text(policy_text(hook, tier_s, resolve_s))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = {
            "ESCALATOR_API_PORT": str(port),
            "ESCALATOR_API_TOKEN": ADMIN_TOKEN,
            "ESCALATOR_MANAGEMENT_TOKEN": ADMIN_TOKEN,
            "ESCALATOR_VIEWER_TOKEN": VIEWER_TOKEN,
            "ESCALATOR_PUBLIC_URL": url,
            **env,
        }
        stack = Stack(tmp, redis_url, database_url, policy, env_extra=settings)
        for role in ROLES:
            stack.start(role)
        stack.wait_ready(timeout=90)
        yield Console(stack, url, sink)
    finally:
        if stack is not None:
            stack.stop()
        with contextlib.suppress(Exception):
            sink.stop()
        redis.stop()
