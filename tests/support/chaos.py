"""Chaos helpers: role processes in named slots under a small supervisor, and a private Redis.

A slot (`ingest-0`, `worker-1`, ...) holds the current process of one role copy. The test kills
or stops a slot on purpose and starts it again, as a supervisor would; the supervisor thread
also restarts a slot whose process exited on its own with a non-zero code (restart-on-failure,
as compose's `restart: unless-stopped` or `escalator run` would), and records every such exit.
A process that exits 0 on its own is left dead: that is the bug a supervisor cannot see.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import typer

from tests.support.stack import Stack
from worker.broker.embedded import EmbeddedRedis
from worker.broker.keys import ESCALATION_QUEUE, OUTBOX_QUEUE
from worker.cli.main import app as cli

MAX_RESTARTS = 5  # more unexpected exits than this in one slot is a crash loop


def private_redis(tmp: Path) -> EmbeddedRedis:
    """A redis-server of this test's own (AOF on), on a short unix socket path of its own."""
    sock = Path("/tmp") / f"escalator-chaos-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
    return EmbeddedRedis(tmp / "redis", sock)


def worker_args() -> list[list[str]]:
    """The command lines that make one worker copy: every queue covered.

    Read from `escalator worker`'s options at run time: with no queue option one process takes
    both queues; with one, a process per queue (escalations and outbox pools).
    """
    command = typer.main.get_command(cli).commands["worker"]  # type: ignore[attr-defined]
    for param in command.params:
        flags = [o for o in param.opts if o.startswith("--") and "queue" in o]
        if flags:
            return [[flags[0], ESCALATION_QUEUE], [flags[0], OUTBOX_QUEUE]]
    return [[]]


@dataclass
class Slot:
    """One copy of a role: its current process and what happened to the earlier ones."""

    name: str
    role: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    generation: int = 0
    intended: bool = False  # stopped or killed on purpose: not the supervisor's business
    exits: list[tuple[float, int]] = field(default_factory=list)  # unexpected (time, code)


class Roles:
    """Role processes in slots, against the stack's Redis and database."""

    READY = Stack.READY

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.slots: dict[str, Slot] = {}
        self.lock = threading.RLock()
        self.done = threading.Event()
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)

    # --- starting ----------------------------------------------------------------------------

    def add(self, role: str, copies: int) -> None:
        """Declare `copies` slots of a role (a worker copy may be several processes)."""
        variants = worker_args() if role == "worker" else [[]]
        for n in range(copies):
            for v, args in enumerate(variants):
                name = f"{role}-{n}" + (f"q{v}" if len(variants) > 1 else "")
                self.slots[name] = Slot(name, role, args)

    def spawn(self, name: str) -> None:
        """Start the slot's process now (its log: tmp/NAME.gGEN.log)."""
        with self.lock:
            slot = self.slots[name]
            slot.log = self.stack.tmp / f"{name}.g{slot.generation}.log"
            slot.generation += 1
            slot.intended = False
            with slot.log.open("wb") as out:
                slot.proc = subprocess.Popen(
                    [sys.executable, "-m", "worker.cli.main", slot.role, *slot.args],
                    env=self.stack.env(),
                    cwd=self.stack.tmp,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killpg takes its children
                )

    def ready(self, name: str) -> bool:
        slot = self.slots[name]
        assert slot.log is not None
        return self.READY[slot.role] in slot.log.read_text(errors="replace")

    def wait_ready(self, names: list[str], timeout: float = 90.0) -> None:
        for name in names:
            self.stack.wait_for(partial(self.ready, name), timeout, f"{name} ready")

    def start(self, *names: str, timeout: float = 90.0) -> None:
        """Start slots and wait until each says it is ready."""
        for name in names:
            self.spawn(name)
        self.wait_ready(list(names), timeout)

    def start_all(self) -> None:
        self.start(*self.slots)
        self.supervisor.start()

    def of(self, role: str) -> list[str]:
        """The slot names of a role (every process of its copy 0 first)."""
        return [n for n, s in self.slots.items() if s.role == role]

    # --- faults ------------------------------------------------------------------------------

    def kill(self, *names: str) -> None:
        """SIGKILL each slot's whole process group (a Celery worker and its pool children)."""
        for name in names:
            with self.lock:
                slot = self.slots[name]
                slot.intended = True
                assert slot.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(slot.proc.pid, signal.SIGKILL)
            slot.proc.wait(30)

    def stop(self, *names: str, grace: float = 20.0) -> None:
        """SIGTERM the slots (a clean stop), SIGKILL what is still there after `grace`."""
        procs = []
        with self.lock:
            for name in names:
                slot = self.slots[name]
                slot.intended = True
                if slot.proc is not None and slot.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(slot.proc.pid, signal.SIGTERM)
                    procs.append(slot.proc)
        for proc in procs:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)

    def _supervise(self) -> None:
        """Restart-on-failure: a slot whose process exited non-zero on its own starts again."""
        while not self.done.wait(0.5):
            with self.lock:
                for slot in self.slots.values():
                    code = slot.proc.poll() if slot.proc else None
                    if code is None or slot.intended:
                        continue
                    slot.exits.append((time.time(), code))
                    slot.intended = True  # seen: recorded once
                    if code != 0 and len(slot.exits) <= MAX_RESTARTS:
                        self.spawn(slot.name)

    # --- the end -----------------------------------------------------------------------------

    def exit_codes(self) -> dict[str, int | None]:
        """Each slot's current process's exit code (None: alive)."""
        with self.lock:
            return {n: (s.proc.poll() if s.proc else -999) for n, s in self.slots.items()}

    def unexpected_exits(self) -> dict[str, list[tuple[float, int]]]:
        return {n: list(s.exits) for n, s in self.slots.items() if s.exits}

    def shutdown(self) -> None:
        self.done.set()
        if self.supervisor.is_alive():
            self.supervisor.join(5)
        self.stop(*self.slots)

    def last_error(self, name: str, width: int = 300) -> str:
        """The slot's last log line at critical or error level, for a diagnosis."""
        log = self.slots[name].log
        lines = log.read_text(errors="replace").splitlines() if log else []
        for level in ('"critical"', '"error"'):
            found = [line for line in lines if f'"level": {level}' in line]
            if found:
                return found[-1][:width]
        return "(no error logged)"

    def tails(self, lines: int = 12, width: int = 240) -> str:
        """The last lines of every role log, every generation, for a diagnosis."""
        out = []
        for path in sorted(self.stack.tmp.glob("*.g*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {path.name}")
            out += [line[:width] for line in text]
        return "\n".join(out)
