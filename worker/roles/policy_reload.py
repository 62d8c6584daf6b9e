"""Reloading the policy file in running roles, refusing an invalid one.

`escalator policy reload` validates the file and bumps a generation counter in Redis; every
role notices within a second and reloads its own copy of the file (SIGHUP to `escalator run`
or to an ingest process does the same). A file that does not validate is refused with its
errors in the log, and the policy in force stays.
"""

from __future__ import annotations

import time

import structlog
from redis.exceptions import RedisError

from worker.bootstrap import Container, every_channel
from worker.broker.keys import POLICY_GENERATION
from worker.services.policy_loader import check_policy, warn_gaps

log = structlog.get_logger("escalator.policy")


class Reloader:
    """Call `check()` often; it looks at Redis at most every `every_s` seconds."""

    def __init__(self, c: Container, every_s: float = 1.0) -> None:
        self.c = c
        self.every_s = every_s
        self.requested = False  # set by a SIGHUP handler
        self._next = 0.0
        self._generation = self._read()

    def _read(self) -> str | None:
        try:
            value = self.c.redis.get(POLICY_GENERATION)
        except RedisError:
            return None
        return None if value is None else str(value)

    def check(self) -> bool:
        """Reload if asked to; True when a new policy is in force."""
        now = time.monotonic()
        if not self.requested and now < self._next:
            return False
        self._next = now + self.every_s
        generation = self._read()
        if not self.requested and generation == self._generation:
            return False
        self.requested, self._generation = False, generation
        return self.reload()

    def reload(self) -> bool:
        path = self.c.settings.policy_file
        policies, problems = check_policy(path)
        if policies is None:
            log.error("policy.reload_refused", file=str(path), errors=[str(p) for p in problems])
            return False
        try:
            channels = every_channel(
                policies, self.c.settings, self.c.clock, self.c.http, self.c.poster
            )
        except Exception as exc:
            log.error("policy.reload_refused", file=str(path), errors=[str(exc)])
            return False
        self.c.policies, self.c.channels = policies, channels
        log.info("policy.reloaded", file=str(path), policies=[p.name for p in policies.policies])
        warn_gaps(policies, path, self.c.clock.now())
        return True


def request_reload(c: Container) -> int:
    """Ask every role to reload; returns the new generation."""
    return int(c.redis.incr(POLICY_GENERATION))
