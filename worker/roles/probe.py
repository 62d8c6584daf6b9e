"""Container health checks of the roles without an HTTP port: `python -m worker.roles.probe`.

`python -m worker.roles.probe ROLE` exits 0 when an instance of ROLE on this host (a container's
hostname) has beaten within `SILENT_S`, else 1; with `--engine` it also requires the engine to be
healthy, the decision `/health/engine` makes (the last canary fired recently and on time),
read from Redis directly so that the check does not depend on the api. One line on stdout says
why. Compose runs it as the scheduler's health check (docker-compose.yml).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from datetime import datetime

from redis import Redis

from config.settings import Settings
from worker.bootstrap import redis_client
from worker.broker.heartbeats import SILENT_S, read_all
from worker.domain.clock import SystemClock
from worker.services.operations import engine_health


def check(
    redis: Redis, settings: Settings, role: str, host: str, now: datetime, engine: bool
) -> str | None:
    """None when healthy; else why not."""
    at = now.timestamp()
    mine = [b for b in read_all(redis) if b.role == role and b.instance.startswith(f"{host}:")]
    if not mine:
        return f"no heartbeat of {role} on {host}"
    if all(b.silent(at) for b in mine):
        age = min(b.age(at) for b in mine)
        return f"{role} on {host} silent for {age:.0f} s (more than {SILENT_S:.0f} s)"
    if engine:
        health = engine_health(redis, settings, now)
        if not health.healthy:
            return f"engine unhealthy: {health.reason}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.roles.probe", description=__doc__)
    parser.add_argument("role", help="api, ingest, scheduler, worker-escalations, worker-outbox")
    parser.add_argument("--engine", action="store_true", help="also require a healthy engine")
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        with redis_client(settings) as redis:
            problem = check(
                redis, settings, args.role, socket.gethostname(), SystemClock().now(), args.engine
            )
    except Exception as exc:  # Redis away: unhealthy, said in one line
        problem = f"redis unreachable ({type(exc).__name__})"
    print(problem or "ok")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
