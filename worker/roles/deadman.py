"""The scheduler's health duties: arm the canary, ping the dead-man's switch.

Each period (`canary_every_s`) one scheduler arms the canary (`worker/broker/canary.py: arm`);
any scheduler's claim sends it to a worker like any deadline. When the last canary fired on time
(`worker/services/operations.py: engine_health`), one scheduler per period GETs
`ESCALATOR_HEARTBEAT_URL` (healthchecks.io, Uptime Kuma, Cronitor, ...), with a short timeout:
the watchdog outside learns that escalations stopped when the pings stop, whatever stopped them
(schedulers, workers, Redis, the machine). A failed ping is logged, never fatal.
"""

from __future__ import annotations

import httpx
import structlog

from worker.bootstrap import Container
from worker.broker import canary
from worker.services.operations import engine_health

log = structlog.get_logger("escalator.deadman")
PING_TIMEOUT_S = 5.0


class Deadman:
    """`step()` once every fraction of a period: arms the canary, pings when it is time."""

    def __init__(self, c: Container, http: httpx.Client | None = None) -> None:
        self.c = c
        self.http = http or c.http
        self.armed = 0
        self.pings = 0

    def step(self) -> None:
        """Arm this period's canary (unless another scheduler did) and ping if all is well."""
        settings = self.c.settings
        now = self.c.clock.now()
        if canary.arm(self.c.index, now.timestamp(), settings.canary_every_s) is not None:
            self.armed += 1
        if settings.heartbeat_url is not None:
            self.ping_when_healthy(settings.heartbeat_url.get_secret_value())

    def ping_when_healthy(self, url: str) -> bool:
        """Ping `url` once per period, and only while the engine is healthy; True if pinged."""
        settings = self.c.settings
        now = self.c.clock.now()
        health = engine_health(self.c.redis, settings, now)
        if not health.healthy:
            return False
        if not canary.may_ping(self.c.redis, now.timestamp(), settings.canary_every_s):
            return False  # this period's ping is done (here or by another scheduler)
        timeout = min(PING_TIMEOUT_S, settings.canary_every_s)
        try:
            response = self.http.get(url, timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:  # the URL is a secret: never logged
            log.warning("deadman.ping_failed", status=exc.response.status_code)
            return False
        except httpx.HTTPError as exc:
            log.warning("deadman.ping_failed", error=type(exc).__name__)
            return False
        self.pings += 1
        return True
