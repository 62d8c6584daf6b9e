"""Live updates: `GET /console/stream`, Server-Sent Events sent when the store changes.

One thread per process polls a cheap change marker of the store (`views.change_marker`: the
newest timeline id, the latest issue update) once a second while anyone listens, and bumps a
version; each client's stream compares versions (no query per client) and sends `change`, with
a keep-alive comment every 15 s. A page carries the marker it was rendered at (`since`), so a
change made between its rendering and its stream's start is sent at once, whichever api process
serves the stream. A stream ends when its client goes, and at once when the
process is told to stop (SIGTERM, SIGINT), so uvicorn never waits on open streams.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator
from types import FrameType

import structlog
from starlette.requests import Request

from worker.store import views
from worker.store.db import SessionFactory

log = structlog.get_logger("escalator.console")
KEEPALIVE_S = 15.0
TICK_S = 0.5
stopping = threading.Event()  # set when the process is told to stop
_hooked: set[int] = set()


class Changes:
    """The store's change marker, polled by one thread while clients listen."""

    def __init__(self, readers: SessionFactory | None, every_s: float = 1.0) -> None:
        self.readers = readers
        self.every_s = every_s
        self.version = 0
        self.polls = 0
        self._marker: tuple[object, ...] | None = None
        self.token: str | None = None  # the last marker read, as pages carry it
        self._clients = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """Read the marker once; a new one bumps the version."""
        if self.readers is None:
            return
        with self.readers() as session:
            marker = views.change_marker(session)
        self.polls += 1
        if marker != self._marker:
            self._marker, self.token = marker, token_of(marker)
            self.version += 1

    def _run(self) -> None:
        while not stopping.wait(self.every_s):
            with self._lock:
                if self._clients == 0:
                    continue
            try:
                self.poll()
            except Exception as exc:  # the database away: say so, keep going
                log.warning("console.poll_failed", error=type(exc).__name__)

    def join(self) -> None:
        """A client listens: start the thread if it is not running."""
        with self._lock:
            self._clients += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="console-changes", daemon=True
                )
                self._thread.start()

    def leave(self) -> None:
        with self._lock:
            self._clients -= 1


def _chain(sig: signal.Signals) -> None:
    """Set `stopping` on `sig`, then do what was done before (uvicorn's own shutdown)."""
    previous = signal.getsignal(sig)

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        if callable(previous):
            previous(signum, frame)
        else:  # the default action: put it back and take it
            signal.signal(sig, previous or signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    signal.signal(sig, handler)


def hook_signals() -> None:
    """Once per process, in the main thread (uvicorn's): notice SIGTERM and SIGINT."""
    if threading.current_thread() is not threading.main_thread() or os.getpid() in _hooked:
        return
    _hooked.add(os.getpid())
    for sig in (signal.SIGTERM, signal.SIGINT):
        _chain(sig)


def token_of(marker: tuple[object, ...]) -> str:
    """A change marker as text: what a page carries and a stream compares."""
    return "|".join(str(part) for part in marker)


async def events(
    request: Request, changes: Changes, since: str | None = None
) -> AsyncIterator[str]:
    """The stream of one client: `change` whenever the store changed since the page's marker
    `since` (or since the stream began), keep-alives between."""
    hook_signals()
    changes.join()
    try:
        seen = changes.version
        yield "retry: 2000\n: connected\n\n"
        quiet = 0.0
        while not stopping.is_set():
            await asyncio.sleep(TICK_S)
            if await request.is_disconnected():
                break
            if since is not None and changes.token is not None:
                seen, moved, since = changes.version, changes.token != since, None
                if moved:  # it changed between the page's rendering and this stream
                    yield f"event: change\ndata: {seen}\n\n"
            elif changes.version != seen:
                seen = changes.version
                quiet = 0.0
                yield f"event: change\ndata: {seen}\n\n"
            else:
                quiet += TICK_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
    finally:
        changes.leave()
