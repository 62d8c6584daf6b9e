"""One stack for one tree: warm it up, offer a load, wait for the drain, count the tasks."""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _overload_report import Outcome
from _overload_servers import Sink
from _overload_stack import Stack
from _overload_tree import Tree

INGEST_GUESS = 250.0  # events/s assumed until a capacity run measured the tree's ingest


class Run:
    """One stack for one tree: warm it up, offer loads, wait for the drain, count."""

    def __init__(self, tree: Tree, sink: Sink, tier_s: int, keep: bool) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="escalator-overload-"))
        self.stack = Stack(tree, self.folder, sink, tier_s)
        self.sink = sink
        self.keep = keep
        self.outcomes: list[Outcome] = []
        self.failed = ""

    def __enter__(self) -> Run:
        try:
            self.stack.start()
        except BaseException:
            self.stack.stop()
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        codes = self.stack.stop()
        self.finish(codes)
        self.stack.close()
        if self.keep or self.failed:
            print(f"   (kept {self.folder})")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def drained(self, source: str, timeout: float) -> bool:
        """Every `source` deadline fired and every message about it sent, within `timeout`."""
        s = self.stack
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not s.dead_roles():
            if s.armed(source) == 0 and s.pending(source) == 0:
                return True
            time.sleep(0.25)
        self.failed = f"{source}: not drained within {timeout:.0f} s"
        dead = s.dead_roles()
        print(f"FAIL: {self.failed}; dead roles: {dead or 'none'}", file=sys.stderr)
        print(s.logs(), file=sys.stderr)
        return False

    def warm_up(self) -> bool:
        """Four escalations due in 2 s, end to end: every role is up and the path works."""
        now = time.time()
        n = self.stack.produce("warm", [datetime.fromtimestamp(now + 2, UTC)] * 4)
        ok = self.ingested("warm", n, 120) is not None
        return ok and self.drained("warm", 120)

    def ingested(self, source: str, n: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stack.dead_roles():
            if self.stack.issues(source) >= n:
                return time.time()
            time.sleep(0.25)
        self.failed = f"{source}: {self.stack.issues(source)} of {n} opens ingested"
        print(
            f"FAIL: {self.failed} in {timeout:.0f} s "
            f"({self.stack.dead_letters()} dead letters)\n{self.stack.logs()}",
            file=sys.stderr,
        )
        return None

    def offer(
        self, name: str, rate: float, seconds: float, n: int, prep: float, cap: float
    ) -> Outcome:
        """`n` deadlines falling due from `prep` seconds from now, `rate` per second (0: all at
        once); wait for the drain (at most `cap` seconds after the last is due)."""
        out = Outcome(name, rate, seconds)
        self.outcomes.append(out)
        s = self.stack
        start = time.time()
        first = start + prep
        dues = [first + (i / rate if rate else 0.0) for i in range(n)]
        end = dues[-1] if dues else first
        sink0 = self.sink.counts()
        s.produce(name, (datetime.fromtimestamp(t, UTC) for t in dues))
        done = self.ingested(name, n, prep * 4 + 120)
        if done is None:
            return out
        out.ingest_s, out.ingest_margin_s = done - start, first - done
        if done > first:
            out.notes.append(
                f"ingest finished {done - first:.1f} s after the first due time: lateness "
                "includes that wait"
            )
        time.sleep(max(0.0, first - time.time()))
        give_up = end + cap
        last_sample = 0.0
        while True:
            now = time.time()
            if now >= end and s.armed(name) == 0 and s.pending(name) == 0:
                out.drained = True
                break
            if now >= give_up:
                break
            for role in s.restart_dead():  # as `escalator run` does: bring it back, say so
                out.notes.append(f"role died at +{now - first:.0f} s: {role}; restarted")
            if now - last_sample >= 1.0:
                last_sample = now
                for key, value in s.queues().items():
                    out.peak[key] = max(out.peak.get(key, 0), value)
            time.sleep(0.5)
        out.at_end = s.queues()
        if not out.drained:
            out.left = max(0, s.armed(name)) + max(0, s.pending(name))
        sink1 = self.sink.counts()
        out.posts_per_msg = float(sink1[0] - sink0[0])  # divided by the messages in finish()
        deadlines = s.deadlines(name)
        out.due, out.states = len(deadlines.ids), deadlines.states
        fired = [(d, f) for d, f in zip(deadlines.due, deadlines.fired, strict=True) if f]
        out.fired = len(fired)
        out.late = [f - d for d, f in fired]
        _, out.msg_states, last_sent = s.messages(name)
        last = max([f for _, f in fired] + ([last_sent] if last_sent else []), default=math.nan)
        out.busy_s = last - max(first, done)
        if out.drained:
            out.drain_s = last - end
        return out

    def finish(self, codes: list[tuple[str, int | None]]) -> None:
        """After the roles stopped: every task they published or started is counted."""
        s = self.stack
        pub_fire, run_fire = s.counted("published:fire"), s.counted("executed:fire")
        pub_msg, run_msg = s.counted("published:deliver"), s.counted("executed:deliver")
        tasks = s.counted("published")
        errors = s.redis.get("bench:count:errors")
        where = sorted(set(s.redis.hvals("bench:count:where")))
        for out in self.outcomes:
            out.tasks, out.where = tasks, where
            if errors:
                out.notes.append(f"{errors} counting errors in the roles")
            if where != [s.tree.worker_file]:
                out.notes.append(f"expected the roles to run {s.tree.worker_file}")
            ids = [str(i) for i in s.deadlines(out.name).ids]
            sent = [i for i in ids if pub_fire.get(i)]
            out.never_sent = len(ids) - len(sent)
            if sent:
                out.fire_sent = sum(pub_fire[i] for i in sent) / len(sent)
                out.fire_run = sum(run_fire.get(i, 0) for i in sent) / len(sent)
            msgs, _, _ = s.messages(out.name)
            out.messages = len(msgs)
            handed = [m for m in msgs if pub_msg.get(m)]
            if handed:
                out.deliver_sent = sum(pub_msg[m] for m in handed) / len(handed)
                out.deliver_run = sum(run_msg.get(m, 0) for m in handed) / len(handed)
            out.posts_per_msg = out.posts_per_msg / len(msgs) if msgs else math.nan
            if len(handed) < len(msgs):
                out.notes.append(f"{len(msgs) - len(handed)} messages never handed to a task")
        bad = [(n, c) for n, c in codes if c not in (0, -15)]
        if bad and self.outcomes:
            self.outcomes[-1].notes.append(f"roles stopped with {bad}")
        stats = s.stats()
        if stats and self.outcomes:
            self.outcomes[-1].notes.append(f"tree counters: {stats}")


def measure_capacity(
    tree: Tree, sink: Sink, quick: bool, keep: bool
) -> tuple[float, float, list[Outcome]]:
    """(deadlines/s end to end, ingest events/s, the bursts): a small burst of deadlines all
    due at once to size a second one that keeps the stack busy ~20 s (quick: ~10 s)."""
    first_n, busy_s, most = (100, 10.0, 3000) if quick else (300, 20.0, 20_000)
    with Run(tree, sink, 900, keep) as run:
        if not run.warm_up():
            return math.nan, math.nan, run.outcomes
        probe_out = run.offer("cap1", 0, 0, first_n, first_n / INGEST_GUESS + 5, 120)
        ingest = first_n / probe_out.ingest_s if probe_out.ingest_s > 0 else INGEST_GUESS
        rate = probe_out.throughput
        if not probe_out.drained or not rate > 0:
            return rate, ingest, run.outcomes
        n = int(min(most, max(first_n, rate * busy_s)))
        out = run.offer("cap2", 0, 0, n, min(600.0, n / (0.6 * ingest) + 5), 300)
        if out.ingest_s > 0:
            ingest = max(ingest, n / out.ingest_s)
    return out.throughput, ingest, run.outcomes


def run_level(
    tree: Tree,
    sink: Sink,
    factor: float,
    rate: float,
    seconds: float,
    ingest: float,
    cap: float,
    keep: bool,
) -> Outcome:
    n = max(1, round(rate * seconds))
    prep = n / (0.6 * ingest) + 8
    name = f"x{factor:g}".replace(".", "_")
    with Run(tree, sink, int(prep + seconds + 60), keep) as run:
        if not run.warm_up():
            out = Outcome(name, rate, seconds)
            out.notes.append(f"stack failed: {run.failed}")
            return out
        return run.offer(name, rate, seconds, n, prep, cap)
