"""The policy file as the console reads it: loaded at start, loaded again when it changes."""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from schemas.policy import PolicyFile
from worker.errors import EscalatorError
from worker.services.policy_loader import load_policy

log = structlog.get_logger("escalator.console")


class PolicySource:
    """The current policy file; a file that no longer validates leaves the last good one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._policies: PolicyFile | None = None
        self.error: str | None = None

    def _mtime(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def current(self) -> PolicyFile | None:
        """The policy in force (None if it never loaded)."""
        stamp = self._mtime()
        with self._lock:
            if stamp is not None and stamp == self._stamp:
                return self._policies
            try:
                self._policies = load_policy(self.path)
                self.error = None
            except (EscalatorError, OSError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("console.policy_unreadable", path=str(self.path), error=self.error)
            self._stamp = stamp
            return self._policies
