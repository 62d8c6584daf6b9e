"""What `overload.py` measured for one load on one tree, and how it is printed."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from _common import row

TARGET_TASKS = 1.1
TARGET_P99_S = 1.0


@dataclass
class Outcome:
    """One offered load (or burst) on one tree."""

    name: str
    rate: float  # deadlines/s offered (0: a burst, all due at once)
    seconds: float
    due: int = 0
    fired: int = 0
    states: dict[str, int] = field(default_factory=dict)
    never_sent: int = 0
    fire_sent: float = math.nan  # escalation tasks published per deadline
    fire_run: float = math.nan  # escalation tasks started per deadline
    messages: int = 0
    msg_states: dict[str, int] = field(default_factory=dict)
    deliver_sent: float = math.nan  # message ids handed to delivery tasks, per message
    deliver_run: float = math.nan
    posts_per_msg: float = math.nan  # webhook POSTs the sink received, per message
    drained: bool = False
    drain_s: float = math.nan
    left: int = 0
    busy_s: float = math.nan  # first due (or ingest done) -> last fired or sent
    late: list[float] = field(default_factory=list)
    ingest_s: float = math.nan
    ingest_margin_s: float = math.nan  # ingest done this long before the first due time
    peak: dict[str, int] = field(default_factory=dict)
    at_end: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)  # `worker` packages the role processes ran
    notes: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.due / self.busy_s if self.busy_s > 0 else math.nan


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def num(value: float, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}{unit}"


def secs(value: float) -> str:
    return num(value, 2, " s")


def drain(out: Outcome) -> str:
    if out.drained:
        return secs(max(0.0, out.drain_s))
    return f"did not drain ({out.left:,} left)"


def target(value: float, limit: float) -> str:
    if math.isnan(value):
        return ""
    return "  ok" if value <= limit else "  MISSED"


def figures(out: Outcome, capacity: float) -> list[tuple[str, str, float]]:
    """(label, short value, number for the ratio column) of one outcome."""
    late = out.late
    offered = (
        f"{out.rate:,.1f}/s = {out.rate / capacity:.2f}x, {out.seconds:g} s"
        if out.rate
        else "a burst, all due at once"
    )
    rows = [
        ("offered deadlines", offered, math.nan),
        ("deadlines due / fired", f"{out.due:,} / {out.fired:,}", math.nan),
        ("opens ingested in (before the window)", secs(out.ingest_s), math.nan),
        ("  ... done before the first due time", secs(out.ingest_margin_s), math.nan),
        (
            f"escalation tasks sent per deadline (<= {TARGET_TASKS})",
            num(out.fire_sent) + target(out.fire_sent, TARGET_TASKS),
            out.fire_sent,
        ),
        ("  ... started per deadline", num(out.fire_run), out.fire_run),
        ("messages", f"{out.messages:,}", math.nan),
        (
            f"delivery tasks per message (<= {TARGET_TASKS})",
            num(out.deliver_sent) + target(out.deliver_sent, TARGET_TASKS),
            out.deliver_sent,
        ),
        ("  ... started per message", num(out.deliver_run), out.deliver_run),
        ("  ... webhook POSTs received per message", num(out.posts_per_msg), out.posts_per_msg),
        ("drain: end of load -> all fired and sent", drain(out), out.drain_s),
        ("lateness p50", secs(pct(late, 0.5)), pct(late, 0.5)),
        ("lateness p99", secs(pct(late, 0.99)), pct(late, 0.99)),
        ("lateness max", secs(pct(late, 1.0)), pct(late, 1.0)),
    ]
    served = num(out.throughput, 1) + "/s"
    rows.append(("served: due / (first due -> last fired or sent)", served, math.nan))
    return rows


def details(out: Outcome) -> list[tuple[str, str]]:
    """(label, longer value) of one outcome, printed under the figures."""
    peak = ", ".join(f"{k} {v:,}" for k, v in out.peak.items() if v)
    rows = [
        ("deadline states / message states", f"{out.states} / {out.msg_states}"),
        ("peak: queues, reserved, index", peak or "-"),
        (
            "tasks published in this stack (with warm-up)",
            ", ".join(f"{k} {v:,}" for k, v in sorted(out.tasks.items())),
        ),
        ("worker package in the role processes", ", ".join(out.where) or "?"),
    ]
    if not out.drained:
        rows.append(("left at the end: queues, index", str(out.at_end)))
    if out.never_sent:
        rows.append(("deadlines never handed to a task", f"{out.never_sent:,}"))
    rows.extend(("note", note) for note in out.notes)
    return rows


def print_outcomes(
    title: str, outs: list[tuple[str, Outcome]], capacity: float, compare: bool = False
) -> None:
    """Outcomes side by side; with `compare`, tree and baseline with baseline / tree ratios
    (> 1: the tree does better)."""
    print(f"\n== {title}")
    columns = [figures(out, capacity) for _, out in outs]
    heads = "".join(f"{label:>28}" for label, _ in outs)
    print(f"   {'':<50}{heads}{'baseline/tree' if compare else '':>15}")
    for n, (label, _, _) in enumerate(columns[0]):
        cells = "".join(f"{col[n][1]:>28}" for col in columns)
        extra = ""
        if compare:
            extra = f"{ratio(columns[1][n][2], columns[0][n][2]):>15}"
        print(f"   {label:<50}{cells}{extra}")
    for label, out in outs:
        print(f"   -- {label}")
        for name, value in details(out):
            row(name, value)
    sys.stdout.flush()


def summary(label: str, levels: list[Outcome], capacity: float) -> None:
    print(f"\n   {label}")
    print(
        f"   {'level':<8}{'offered/s':>10}{'due':>9}{'tasks/deadline':>16}{'tasks/message':>15}"
        f"{'drain':>28}{'late p50':>11}{'p99':>10}{'max':>10}"
    )
    for out in levels:
        print(
            f"   {out.rate / capacity:<8.2f}{out.rate:>10,.1f}{out.due:>9,}"
            f"{num(out.fire_sent):>16}{num(out.deliver_sent):>15}{drain(out):>28}"
            f"{secs(pct(out.late, 0.5)):>11}{secs(pct(out.late, 0.99)):>10}"
            f"{secs(pct(out.late, 1.0)):>10}"
        )


def ratio(base: float, ours: float) -> str:
    if math.isnan(base) or math.isnan(ours) or ours <= 0:
        return "n/a"
    return f"{base / ours:.2f}x"
