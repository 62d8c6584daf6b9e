"""Recording what the services returned, in the role where it happened: the entrypoints call
these with the results of ingest, claims, firings and deliveries (the services know nothing of
Prometheus). A helper never raises: a metric that cannot be recorded is logged once, and the
work goes on. Each increments once per label set of its call (`.inc(n)`), not per item, where
the metric allows it; a histogram takes one value at a time.
"""

from __future__ import annotations

import functools
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from typing import ParamSpec

import structlog

from worker.broker.canary import is_canary
from worker.domain.states import OutboxState, adapter_of
from worker.gateway.metrics import metrics
from worker.services.firing import Happened
from worker.services.ingest import EntryResult
from worker.services.outbox import Delivery

__all__ = ["claimed", "dead_lettered", "dead_reason", "delivered", "fired", "ingested"]

log = structlog.get_logger("escalator.metrics")

# the `kind` label of the lateness histogram, by deadline kind
KINDS = {
    "escalate": "escalation",
    "warn": "warning",
    "remind": "reminder",
    "breach": "breach",
    "resume": "resume",
}
# the `result` label of a delivery, by the outcome's state (held and skipped are not attempts)
RESULTS = {
    OutboxState.SENT: "sent",
    "retry": "retry",
    OutboxState.DEAD: "dead",
    OutboxState.CANCELLED: "moot",
}


P = ParamSpec("P")
_failures: set[str] = set()


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """A metric that cannot be recorded (its directory removed under it, a full disk) is
    logged once per helper at error level, and the role's work goes on."""

    @functools.wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as exc:
            if record.__name__ not in _failures:
                _failures.add(record.__name__)
                log.error(
                    "metrics.record_failed",
                    helper=record.__name__,
                    error=f"{type(exc).__name__}: {exc}",
                )

    return guarded


@_never_raises
def ingested(results: Sequence[EntryResult]) -> None:
    """One increment per (type, outcome) of a batch, however many entries it had."""
    counter = metrics().events_ingested
    tally = Tally((r.event_type or "unknown", r.outcome.value) for r in results)
    for (event_type, outcome), n in tally.items():
        counter.labels(event_type, outcome).inc(n)


def dead_reason(result: EntryResult) -> str:
    """The `reason` label of an entry ingest dead-letters (a small fixed set, never its error
    text): `gave_up` (delivered too often), `undecodable` (not UTF-8), `invalid` (not a valid
    event), `rejected` (a valid event that could not be applied)."""
    if result.note.startswith("gave up after"):
        return "gave_up"
    if result.note.startswith("entry is not UTF-8"):
        return "undecodable"
    return "invalid" if result.event_type is None else "rejected"


@_never_raises
def dead_lettered(reasons: Iterable[str]) -> None:
    """Entries written to the dead-letter stream, by reason (a small fixed set)."""
    counter = metrics().dead_letters
    for reason, n in Tally(reasons).items():
        counter.labels(reason).inc(n)


@_never_raises
def claimed(due: Sequence[int], reclaimed: Sequence[int]) -> None:
    """A scheduler's claim, sent to the workers: due deadlines taken, in-flight ones taken
    again (canaries left out: they are not deadlines of issues)."""
    m = metrics()
    for counter, ids in ((m.deadlines_claimed, due), (m.deadlines_reclaimed, reclaimed)):
        if n := sum(1 for i in ids if not is_canary(i)):
            counter.inc(n)


@_never_raises
def fired(records: Iterable[Happened]) -> None:
    """Firings that counted: each one's lateness (a histogram takes one value at a time), and
    the escalations and breaches among them, one increment per label set."""
    m = metrics()
    escalations: Tally[tuple[str, str, str]] = Tally()
    breaches: Tally[tuple[str, str]] = Tally()
    for h in records:
        m.lateness.labels(KINDS.get(h.kind, h.kind)).observe(h.lateness_s)
        if h.escalated:
            escalations[(h.tier, h.severity, h.target)] += 1
        if h.breached:
            breaches[(h.target, h.severity)] += 1
    for labels, n in escalations.items():
        m.escalations.labels(*labels).inc(n)
    for pair, n in breaches.items():
        m.breaches.labels(*pair).inc(n)


@_never_raises
def delivered(outcomes: Iterable[Delivery]) -> None:
    """Attempts at outbox rows: notifications by channel, kind and result, and their latency
    when sent; write-backs by ticket system and result."""
    m = metrics()
    for outcome in outcomes:
        result = RESULTS.get(outcome.state)
        if outcome.channel is None or result is None:
            continue
        adapter = adapter_of(outcome.channel)
        if adapter is not None:
            m.writebacks.labels(adapter, result).inc()
            continue
        m.notifications.labels(outcome.channel, outcome.kind or "unknown", result).inc()
        if outcome.latency_s is not None:
            m.delivery_seconds.labels(outcome.channel).observe(max(0.0, outcome.latency_s))
