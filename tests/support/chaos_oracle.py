"""The chaos oracle: what must have happened, from the plan's event times and the policy alone.

For each issue and ladder step k (due at opened + k * tier): if no acknowledgement or resolution
occurred before the due time, the step must have happened exactly once, however late (history
is time-ordered: `occurred_at` counts, not processing order). If one occurred before it, the
step must not happen, provided the event was on the stream (and, for a parked one, its issue's
open too) at least `PROCESSING` seconds before the due time: once an entry is on the stream,
its processing order is the product's business (a killed consumer, Redis restarting), so only
a delivery the test itself made late (sent late on purpose, or re-sent after FLUSHALL lost it)
can make a step ambiguous. Such a step is tolerated (it may happen, once at most) and counted.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tests.support.chaos_load import POISON, REMIND_AT, STEPS, TIERS, IssuePlan, Send
from tests.support.chaos_observe import Observed, dead_event_id

PROCESSING = 0.5  # seconds ingest may take to apply an event that arrived in time


@dataclass
class Verdict:
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    issues: set[str] = field(default_factory=set)  # keys worth a diagnosis
    info: list[str] = field(default_factory=list)

    def fail(self, category: str, line: str, issue: str | None = None) -> None:
        self.problems[category].append(line)
        if issue:
            self.issues.add(issue)


class Oracle:
    """Expectations for one run: the plan, and when each event was put on the stream."""

    def __init__(
        self,
        plans: list[IssuePlan],
        deliveries: dict[str, list[float]],
        t0: float,
    ) -> None:
        self.plans = {p.key: p for p in plans}
        self.deliveries = deliveries
        self.t0 = t0

    def available(self, event_id: str) -> float:
        """When the event was first on the stream."""
        return min(self.deliveries.get(event_id, []), default=math.inf)

    def expect(self, plan: IssuePlan, due_rel: float) -> str:
        """'must', 'must-not' or 'tolerated' for a ladder deadline due at `due_rel`."""
        before = [kind for kind, at in plan.stops() if at < due_rel]
        if not before:
            return "must"
        opened = self.available(f"{plan.key}-open")
        for kind in before:
            suffix = "ack" if kind == "issue.acknowledged" else "resolve"
            known = max(self.available(f"{plan.key}-{suffix}"), opened)
            if known <= self.t0 + due_rel - PROCESSING:
                return "must-not"
        return "tolerated"

    def must_steps(self) -> dict[str, list[int]]:
        """Per issue, the steps that must have happened (for waiting on the drain)."""
        return {
            key: [k for k in range(1, STEPS + 1) if self.expect(p, p.due(k)) == "must"]
            for key, p in self.plans.items()
        }

    def covered(self, seen: Observed, key: str) -> Counter[int]:
        return Counter(k for move in seen.moves.get(key, []) for k in move.steps())

    def judge(self, seen: Observed, sends: list[Send], dead: list[dict[str, str]]) -> Verdict:
        v = Verdict()
        self._ladders(seen, v)
        self._deadlines(seen, v)
        self._events(seen, sends, dead, v)
        return v

    def _ladders(self, seen: Observed, v: Verdict) -> None:
        tolerated, checked = Counter[str](), Counter[str]()
        for key, plan in self.plans.items():
            covered = self.covered(seen, key)
            self._state(seen, plan, covered, v)
            self._notices(seen, plan, v)
            for k in range(1, STEPS + 1):
                want, got = self.expect(plan, plan.due(k)), covered[k]
                checked[want] += 1
                line = f"{key} step {k} (due +{plan.due(k):.1f}s, {plan.category}): {got} time(s)"
                if got > 1:
                    v.fail("duplicated escalation", line, key)
                if want == "must" and got == 0:
                    v.fail("missed escalation", line, key)
                elif want == "must-not" and got:
                    v.fail("escalation after an earlier acknowledgement", line, key)
                elif want == "tolerated":
                    tolerated[f"{'fired' if got else 'not fired'}"] += 1
            remind_due = plan.opened + REMIND_AT
            if seen.reminds.get(key) and self.expect(plan, remind_due) == "must-not":
                n = len(seen.reminds[key])
                line = f"{key}: {n} reminder(s), stopped before +{remind_due:.1f}s"
                v.fail("reminder after an earlier acknowledgement", line, key)
        for line in seen.unparsed:
            v.fail("unreadable escalate entry", line)
        v.info.append(
            f"ladder steps checked: {dict(checked)}; of those a late delivery made ambiguous "
            f"(either is right): {dict(tolerated)}"
        )

    def _state(self, seen: Observed, plan: IssuePlan, covered: Counter[int], v: Verdict) -> None:
        """The issue row agrees with its events and with the escalations its timeline shows."""
        if plan.key not in seen.state:
            v.fail("issue missing", f"{plan.key} [{plan.category}]: no issue row", plan.key)
            return
        lifecycle, tier = seen.state[plan.key]
        want = "resolved" if plan.resolved else "acknowledged" if plan.acked else "open"
        reached = TIERS[max(covered, default=0)]
        if (lifecycle, tier) != (want, reached):
            line = f"{plan.key} [{plan.category}]: {lifecycle} at {tier}, want {want} at {reached}"
            v.fail("issue state", line, plan.key)

    def _notices(self, seen: Observed, plan: IssuePlan, v: Verdict) -> None:
        """The tier an escalation moved the issue to never holds it silently: one `escalated`
        notice to the sink per tier reached, sent (cancelled only once the issue is resolved);
        none for a tier it never reached (docs/ARCHITECTURE.md: a late escalation)."""
        reached = {m.to for m in seen.moves.get(plan.key, [])}
        notices = Counter[str]()
        for i, r in seen.outbox.items():
            if r.channel != "sink" or r.kind != "escalated" or r.issue != plan.key:
                continue
            notices[r.tier] += 1
            if r.state != "sent" and not (r.state == "cancelled" and plan.resolved):
                line = f"{plan.key} [{plan.category}] to {r.tier}: {i} {r.state}"
                v.fail("escalation notice not sent", line, plan.key)
        for tier in sorted(reached | set(notices)):
            if notices[tier] != (tier in reached):
                line = f"{plan.key} [{plan.category}] to {tier}: {notices[tier]} notice(s)"
                v.fail("escalation notices", line + ("" if tier in reached else ", not reached"),
                       plan.key)  # fmt: skip

    def _deadlines(self, seen: Observed, v: Verdict) -> None:
        fired = Counter(
            (d.issue, d.kind, d.target, round(d.budget_s, 3), d.cycle)
            for d in seen.deadlines
            if d.state == "fired"
        )
        for (key, kind, target, budget, cycle), n in fired.items():
            if n > 1:
                line = f"{key}: {kind}/{target} at budget {budget}s cycle {cycle} fired {n} times"
                v.fail("deadline fired twice", line, key)
        for deadline_id, n in seen.fired_by_entry.items():
            if n > 1:
                v.fail("deadline fired twice", f"deadline {deadline_id}: {n} timeline entries")

    def _events(
        self, seen: Observed, sends: list[Send], dead: list[dict[str, str]], v: Verdict
    ) -> None:
        poison = {raw: "" for raw in POISON}
        for entry in dead:
            raw = entry.get("event", "")
            if raw in poison:
                poison[raw] = entry.get("error", "") or poison[raw]
                continue
            eid = dead_event_id(entry)
            key = eid.rsplit("-", 1)[0] if eid else None
            v.fail("dead letter not sent as poison", f"{eid or raw[:80]!r}: {entry.get('error')}",
                   key)  # fmt: skip
        for raw, error in poison.items():
            if not error:
                v.fail("poison not dead-lettered with a reason", repr(raw))
        dead_ids = {dead_event_id(e) for e in dead}
        sent = {s.event_id for s in sends if s.event_id and self.deliveries.get(s.event_id)}
        for eid in sorted(sent - seen.processed - dead_ids):
            v.fail("event lost", f"{eid}: delivered at {self.rel(eid)}, no ProcessedEvent row",
                   eid.rsplit("-", 1)[0])  # fmt: skip
        copies = sum(len(self.deliveries[e]) for e in sent)
        v.info.append(
            f"events: {len(sent)} distinct, {copies} stream entries sent, "
            f"{copies - len(sent)} duplicates, {len(sent & seen.processed)} processed"
        )

    def rel(self, event_id: str) -> str:
        return ",".join(f"+{t - self.t0:.1f}" for t in self.deliveries.get(event_id, []))

    def explain(self, seen: Observed, key: str) -> str:
        """One issue, compactly: its plan, deliveries, what each step expected and what was seen."""
        p = self.plans[key]
        stops = " ".join(f"{k.split('.')[1]}@+{at:.1f}" for k, at in p.stops())
        sent = " ".join(
            f"{suffix}:[{self.rel(f'{key}-{suffix}')}]" for suffix in ("open", "ack", "resolve")
            if f"{key}-{suffix}" in self.deliveries
        )  # fmt: skip
        want = " ".join(f"{k}:{self.expect(p, p.due(k))}" for k in range(1, STEPS + 1))
        moves = " ".join(f"{m.frm}→{m.to}@+{m.at - self.t0:.1f}" for m in seen.moves.get(key, []))
        rows = " ".join(
            f"{d.kind}{d.step}:{d.state}(due+{d.due_at - self.t0:.1f}"
            + (f",fired+{d.fired_at - self.t0:.1f})" if d.fired_at else ")")
            for d in seen.deadlines
            if d.issue == key
        )
        return (
            f"{key} [{p.category}] open@+{p.opened:.1f} {stops} | sent {sent} | expect {want} | "
            f"seen {moves or '-'} | deadlines {rows or '-'}"
        )


def judge_sink(
    seen: Observed, before: dict[str, str], after: dict[str, str], foreign: int, v: Verdict
) -> None:
    """Every sink message marked sent was received; the sink got nothing else (a message sent
    and then cancelled as moot before its send was recorded, after a kill, is counted apart).

    The sink is read `before` and `after` the database (`seen`), as the product never stops
    (reminders): a row commits before its delivery, so whatever was received before has its
    row; a receipt comes before the sent mark, so whatever is marked sent was received after.
    """
    received = set(before)
    rows = {i: r for i, r in seen.outbox.items() if r.channel == "sink"}
    sent = {i for i, r in rows.items() if r.state == "sent"}
    for i in sorted(sent - set(after)):
        v.fail("marked sent, never received", f"{i}: {rows[i]}")
    for i in sorted(received - set(rows)):
        v.fail("received an id no outbox row has", f"{i}: {before[i]}")
    extra = (received & set(rows)) - sent
    moot = {i for i in extra if rows[i].state == "cancelled" and rows[i].attempts >= 1}
    for i in sorted(extra - moot):
        v.fail("received, not marked sent", f"{i}: {rows[i]}")
    for i, r in sorted(rows.items()):
        if r.state in ("pending", "dead"):
            line = f"{i}: {r.kind} for {r.issue} {r.state} after {r.attempts} attempts"
            v.fail("notification not delivered", line, r.issue)
    v.info.append(
        f"sink: {len(received)} distinct webhook-ids, {len(sent)} rows sent, "
        f"{len(moot)} received then cancelled as moot, {foreign} to another path (ignored)"
    )


def lateness(seen: Observed) -> tuple[int, float, float, float]:
    """(count, p50, p99, max) of fired_at - due_at over fired escalation deadlines, seconds."""
    late = sorted(
        d.fired_at - d.due_at
        for d in seen.deadlines
        if d.kind == "escalate" and d.state == "fired" and d.fired_at is not None
    )
    if not late:
        return 0, math.nan, math.nan, math.nan

    def pct(q: float) -> float:
        return late[min(len(late) - 1, math.ceil(q * len(late)) - 1)]

    return len(late), pct(0.50), pct(0.99), late[-1]
