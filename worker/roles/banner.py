"""What `escalator run` says once every role is ready: where to look, how to send, how to stop.

The supervisor starts `announce` in a thread after it has spawned the roles. It waits until each
role has a heartbeat from an instance started by this run (`worker/broker/heartbeats.py`), then
prints a few lines to the terminal (stdout: the JSON log stays on stderr, machine-readable):
the console and how to sign in, whether HTTP ingest is on and with which sources (or the
variables that turn it on), the management API, the metrics, where the data lives, how to
stop. `lines` builds them from the settings alone, so a test reads them without a stack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from redis.exceptions import RedisError

from config.settings import Settings
from config.sources import Sources
from worker.broker.connection import connect
from worker.broker.heartbeats import ROLES, read_all

READY_TIMEOUT_S = 120.0  # after this, the banner says which roles are still starting


def base_url(settings: Settings) -> str:
    """Where people reach the api role."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.api_host if settings.api_host not in ("0.0.0.0", "::", "") else "localhost"
    return f"http://{host}:{settings.api_port}"


def webhook_sources(settings: Settings) -> list[str]:
    """The webhook sources configured in ESCALATOR_SOURCES."""
    names = [name for name in Sources.model_fields if name != "events"]
    return [name for name in names if getattr(settings.sources, name) is not None]


def _sign_in(settings: Settings) -> str:
    if settings.console_anonymous:
        return "open to anyone read-only; sign in with ESCALATOR_MANAGEMENT_TOKEN to act"
    if settings.management_token or settings.api_token or settings.viewer_token:
        return (
            "sign in with ESCALATOR_MANAGEMENT_TOKEN or ESCALATOR_API_TOKEN (or the viewer token)"
        )
    return "signing in needs a token: set ESCALATOR_MANAGEMENT_TOKEN (or ESCALATOR_VIEWER_TOKEN)"


def _ingest(settings: Settings) -> list[str]:
    events = settings.api_token is not None or settings.sources.events is not None
    hooks = webhook_sources(settings)
    if not events and not hooks:
        return [
            "HTTP ingest is off; `escalator send` puts events on the stream meanwhile.",
            "Turn it on with ESCALATOR_API_TOKEN (POST /v1/events with that bearer token)",
            "or ESCALATOR_SOURCES (webhooks: github, jira, zendesk, pagerduty, alertmanager).",
        ]
    found = []
    if events:
        found.append(f"POST {base_url(settings)}/v1/events")
    else:
        found.append("POST /v1/events off (set ESCALATOR_API_TOKEN)")
    if hooks:
        found.append("webhooks: " + ", ".join(f"/v1/webhooks/{name}" for name in hooks))
    return ["HTTP ingest on: " + "; ".join(found)]


def _data(settings: Settings) -> str:
    folder = Path(settings.data_dir).resolve()
    where = [f"{folder}"]
    if settings.database_url:
        where.append("database: ESCALATOR_DATABASE_URL")
    if settings.redis_url:
        where.append("Redis: ESCALATOR_REDIS_URL")
    return "; ".join(where) if len(where) > 1 else f"{folder} (SQLite and the embedded Redis)"


def lines(settings: Settings, ready_in_s: float, starting: Sequence[str] = ()) -> list[str]:
    """The banner, one string per line."""
    url = base_url(settings)
    head = f"Escalator is running: every role ready in {ready_in_s:.1f} s."
    if starting:
        head = f"Escalator is running; still starting after {ready_in_s:.0f} s: " + ", ".join(
            starting
        )
    management = (
        f"{url}/v1/issues (bearer ESCALATOR_MANAGEMENT_TOKEN or ESCALATOR_API_TOKEN)"
        if settings.management_token or settings.api_token
        else "/v1/issues off: set ESCALATOR_MANAGEMENT_TOKEN or ESCALATOR_API_TOKEN"
    )
    ingest = _ingest(settings)
    rows = [
        ("Console", f"{url}/  ({_sign_in(settings)})"),
        ("Ingest", ingest[0]),
        *[("", more) for more in ingest[1:]],
        ("API", management),
        ("Metrics", f"{url}/metrics"),
        ("Data", _data(settings)),
        ("Stop", "Ctrl-C (each role finishes what it holds; the data stays for the next start)"),
    ]
    return [head, *[f"  {name:<8} {text}" for name, text in rows]]


def not_ready(redis_url: str, since: float, roles: Sequence[str] = ROLES) -> list[str]:
    """The roles with no heartbeat from an instance started at or after `since` (epoch s)."""
    with connect(redis_url) as redis:
        beats = read_all(redis)
    ready = {b.role for b in beats if b.started >= since - 1.0}
    return [role for role in roles if role not in ready]


def announce(
    settings: Settings,
    redis_url: str,
    stop: threading.Event,
    out: TextIO,
    started: float,
) -> None:
    """Wait until every role has beaten (or READY_TIMEOUT_S), then print the banner to `out`.

    `started` is the epoch second this run began: older beats are an earlier run's."""
    missing: list[str] = list(ROLES)
    while not stop.is_set() and time.time() - started < READY_TIMEOUT_S:
        try:
            missing = not_ready(redis_url, started)
        except (RedisError, OSError):
            missing = list(ROLES)
        if not missing:
            break
        stop.wait(0.2)
    if stop.is_set():
        return
    waited = time.time() - started
    out.write("\n".join(lines(settings, waited, missing)) + "\n")
    out.flush()
