"""The textbook Celery baseline, run and measured: what DESIGN.md's "493 events/s" describes.

`run(events)` starts a private `redis-server` on a free port of 127.0.0.1 (never the machine's
or the tests' Redis), a fresh SQLite file (WAL) with one `issues` table, and a real
`celery worker -P prefork -c 2` of `_textbook_app` (one task per event, one upsert each). Then:

1. the worker is up (answers a control ping) and its consumer is paused (`cancel_consumer`), so
   the producer runs alone: the N events are sent with `.delay(event.model_dump(mode="json"))`,
   one at a time, as a textbook producer does; that is the producer's rate;
2. the consumer is resumed (`add_consumer`) and the worker drains the queue; its rate is N over
   the time from the first task started (noted by the task itself) until the table's
   `sum(version)` reaches N (polled every 20 ms), and its CPU is utime + stime of the worker's
   process tree (parent and prefork children, /proc) over that stretch, divided by N.

Everything it starts (worker, redis-server, temporary folder) is stopped and removed on the way
out, also on an error or Ctrl-C. Imports no product code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKER_NAME = "textbook@bench"


class TextbookError(RuntimeError):
    """The baseline could not run (no redis-server, the worker did not start, ...)."""


@dataclass
class TextbookResult:
    events: int
    produce_s: float  # the .delay() loop, N tasks
    worker_s: float  # first task started -> sum(version) == N observed
    worker_cpu_s: float  # worker process tree (parent + prefork children), same stretch
    pool_cpu_s: float  # of which the prefork children (the tasks themselves)
    redis_cpu_s: float  # the private redis-server, same stretch
    applied: int  # sum(version): events whose upsert committed
    issues: int  # rows in the table
    processes: int  # worker processes counted (parent + children)
    queued: int  # LLEN of the queue after the producer finished (expected: events)
    complete: bool  # applied == events within the time allowed

    @property
    def producer_per_s(self) -> float:
        return self.events / self.produce_s if self.produce_s > 0 else 0.0

    @property
    def events_per_s(self) -> float:
        return self.applied / self.worker_s if self.worker_s > 0 else 0.0

    @property
    def cpu_ms_per_event(self) -> float:
        return 1000 * self.worker_cpu_s / self.applied if self.applied else 0.0

    @property
    def ok(self) -> bool:
        return self.complete and self.applied == self.events == self.queued


# --- /proc ------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
    return found


def _tree_cpu(pid: int) -> tuple[float, float, int]:
    """(CPU seconds of the process and its descendants, of the descendants alone, processes)."""
    kids = _descendants(pid)
    children = sum(_cpu_seconds(p) for p in kids)
    return _cpu_seconds(pid) + children, children, 1 + len(kids)


# --- what it starts ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a Celery worker's warm shutdown), then SIGKILL to its whole process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # prefork children a killed parent left behind


@contextlib.contextmanager
def _redis_server(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server on a free TCP port, configured like the machine's (no
    persistence); yields (url, process)."""
    from redis import Redis

    binary = os.environ.get("REDIS_SERVER") or "redis-server"
    port = _free_port()
    conf = folder / "redis.conf"
    conf.write_text(
        f'port {port}\nbind 127.0.0.1\ndir "{folder}"\nappendonly no\nsave ""\n'
        f'maxmemory-policy noeviction\nlogfile "{folder / "redis.log"}"\n'
    )
    try:
        proc = subprocess.Popen(
            [binary, str(conf)], stdin=subprocess.DEVNULL, start_new_session=True
        )
    except FileNotFoundError as exc:
        raise TextbookError(f"{binary} is not on PATH") from exc
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with Redis.from_url(url) as client:
                    client.ping()
                break
            except Exception as exc:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise TextbookError(f"redis-server did not start on port {port}") from exc
                time.sleep(0.05)
        yield url, proc
    finally:
        _stop(proc, 10)


def _tail(path: Path, chars: int = 2500) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


def _release(app: Any) -> None:
    """Close this process's broker connections of the app and forget its pools, so a later
    run (another redis-server) starts afresh (what Celery does for a forked child)."""
    with contextlib.suppress(Exception):
        app.pool.force_close_all()
    with contextlib.suppress(Exception):
        app._after_fork()  # _pool and the producer pool
    with contextlib.suppress(Exception):
        app.control._after_fork()  # the control mailbox's cached producer pool


def _control(app: Any, what: str, **kwargs: Any) -> None:
    """A control command to our worker, with its reply (raises if none or not ok)."""
    replies = getattr(app.control, what)(
        destination=[WORKER_NAME], reply=True, timeout=5.0, **kwargs
    )
    answers = [r.get(WORKER_NAME) for r in replies or []]
    if not answers or not all(isinstance(a, dict) and "ok" in a for a in answers):
        raise TextbookError(f"the worker did not confirm {what}: {replies!r}")


# --- the run ----------------------------------------------------------------------------------


def run(
    events: Sequence[Any],
    *,
    concurrency: int = 2,
    stall_s: float = 60.0,
    progress: bool = False,
) -> TextbookResult:
    """Send `events` (pydantic models with `model_dump`) as one task each to a fresh textbook
    Celery worker and measure it. `stall_s`: give up when no event was applied for that long."""
    from redis import Redis

    n = len(events)
    with tempfile.TemporaryDirectory(prefix="escalator-textbook-") as tmp:
        folder = Path(tmp)
        db_path = folder / "textbook.db"
        database_url = f"sqlite:///{db_path}"
        with _redis_server(folder) as (broker_url, redis_proc):
            # The app reads its settings at import: set them for this process, then import.
            os.environ["TEXTBOOK_BROKER_URL"] = broker_url
            os.environ["TEXTBOOK_DATABASE_URL"] = database_url
            if str(HERE) not in sys.path:
                sys.path.insert(0, str(HERE))
            import _textbook_app as tb

            tb.app.conf.broker_url = broker_url
            engine = tb.make_engine(database_url)
            tb.Base.metadata.create_all(engine)
            engine.dispose()

            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
                ),
                "TEXTBOOK_BROKER_URL": broker_url,
                "TEXTBOOK_DATABASE_URL": database_url,
            }
            log_path = folder / "worker.log"
            with log_path.open("ab") as log:
                worker = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "_textbook_app",
                        "worker",
                        "-P",
                        "prefork",
                        "-c",
                        str(concurrency),
                        "-Q",
                        tb.QUEUE,
                        "-n",
                        WORKER_NAME,
                        "--loglevel",
                        "WARNING",
                    ],
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            broker = Redis.from_url(broker_url, decode_responses=True)
            try:
                return _measure(
                    tb, worker, redis_proc, broker, db_path, events, n, stall_s, progress, log_path
                )
            finally:
                broker.close()
                _stop(worker, 30)
                _release(tb.app)


def _measure(
    tb: Any,
    worker: subprocess.Popen[bytes],
    redis_proc: subprocess.Popen[bytes],
    broker: Any,
    db_path: Path,
    events: Sequence[Any],
    n: int,
    stall_s: float,
    progress: bool,
    log_path: Path,
) -> TextbookResult:
    def died() -> TextbookError:
        return TextbookError(
            f"the celery worker exited ({worker.returncode}); its log:\n{_tail(log_path)}"
        )

    # 1. Up, then its consumer paused, so the producer runs alone.
    deadline = time.monotonic() + 60
    while not tb.app.control.ping(destination=[WORKER_NAME], timeout=0.5):
        if worker.poll() is not None:
            raise died()
        if time.monotonic() > deadline:
            raise TextbookError(f"the celery worker did not answer in 60 s:\n{_tail(log_path)}")
    _control(tb.app, "cancel_consumer", queue=tb.QUEUE)

    # 2. The producer: one .delay() per event, JSON, as a textbook producer sends them.
    task = tb.upsert_issue
    t0 = time.perf_counter()
    for event in events:
        task.delay(event.model_dump(mode="json"))
    produce_s = time.perf_counter() - t0
    queued = int(broker.llen(tb.QUEUE))
    if progress:
        print(f"   textbook: {n:,} tasks sent in {produce_s:.2f} s; draining", flush=True)

    # 3. The worker drains the queue; CPU from just before it resumes.
    cpu0, pool0, _ = _tree_cpu(worker.pid)
    redis0 = _cpu_seconds(redis_proc.pid)
    _control(tb.app, "add_consumer", queue=tb.QUEUE)
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    applied, last_change, complete = 0, time.monotonic(), False
    try:
        while True:
            done = int(db.execute("SELECT coalesce(sum(version), 0) FROM issues").fetchone()[0])
            now = time.monotonic()
            if done != applied:
                applied, last_change = done, now
            if applied >= n:
                complete = applied == n
                break
            if worker.poll() is not None:
                raise died()
            if now - last_change > stall_s:
                break
            time.sleep(0.02)
        t_end = time.time()
        cpu1, pool1, processes = _tree_cpu(worker.pid)
        redis1 = _cpu_seconds(redis_proc.pid)
        issues = int(db.execute("SELECT count(*) FROM issues").fetchone()[0])
    finally:
        db.close()
    starts = [float(v) for v in broker.hvals(tb.FIRST_STARTED)]
    if not starts:
        raise TextbookError(f"no task started; the worker's log:\n{_tail(log_path)}")
    return TextbookResult(
        events=n,
        produce_s=produce_s,
        worker_s=t_end - min(starts),
        worker_cpu_s=cpu1 - cpu0,
        pool_cpu_s=pool1 - pool0,
        redis_cpu_s=redis1 - redis0,
        applied=applied,
        issues=issues,
        processes=processes,
        queued=queued,
        complete=complete,
    )
