"""Chaos: a few hundred issues over a minute while every role is killed, Redis restarts, the
schedulers go away and Redis is flushed. What must have happened is computed from the event
times and the policy alone (tests/support/chaos_oracle.py), and compared with the database,
the dead-letter stream and a signed-webhook sink.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.chaos import MAX_RESTARTS, Roles, private_redis
from tests.support.chaos_faults import Faults
from tests.support.chaos_load import STEPS, TIER_S, Load, build_plan
from tests.support.chaos_observe import (
    dead_event_id,
    dead_letters,
    observe,
    pending_sink,
    processed_ids,
    sink_ids,
)
from tests.support.chaos_oracle import Oracle, Verdict, judge_sink, lateness
from tests.support.sink import Sink
from tests.support.stack import SECRET, Stack, write_policy

pytestmark = [pytest.mark.integration, pytest.mark.fault]

SEED = 20261201  # the same plan on every run
ISSUES = 240
SPAN_S = 55.0  # the issues open over this long; their acks and resolves follow
DRAIN_S = 90.0
ENV = {  # short leases, so a lost task moves on within seconds (ignored if a knob is absent)
    "ESCALATOR_SCHEDULER_LEASE_S": "3",
    "ESCALATOR_SCHEDULER_DISPATCH_LEASE_S": "10",
    "ESCALATOR_DELIVERY_LEASE_S": "3",
    "ESCALATOR_DELIVERY_RUNNING_LEASE_S": "3",
    "ESCALATOR_DELIVERY_QUEUED_LEASE_S": "15",
    "ESCALATOR_INGEST_CLAIM_IDLE_MS": "2000",
    "ESCALATOR_RECONCILE_EVERY_S": "2",
}


def _drain(stack: Stack, oracle: Oracle, load: Load, faults: Faults, until: float) -> bool:
    """Wait until every event is applied (or dead), every due step happened, no message waits."""
    must = oracle.must_steps()
    sent = {eid for eid, times in load.deliveries.items() if times}
    early_dead = {dead_event_id(e) for e in faults.dead_before_flush}
    while time.time() < until:
        dead = early_dead | {dead_event_id(e) for e in dead_letters(stack.redis)}
        if not sent - processed_ids(stack) - dead:
            seen = observe(stack)
            steps_done = all(
                oracle.covered(seen, key)[k] for key, steps in must.items() for k in steps
            )
            if steps_done and not pending_sink(stack):
                return True
        time.sleep(1.0)
    return False


def _quiesce(stack: Stack, roles: Roles) -> bool:
    """Stop the schedulers (with every event applied, the only source of new firings, so of
    new messages: reminders go on for ever) and wait until no sink message is pending."""
    roles.stop(*roles.of("scheduler"))
    quiet, until = 0, time.time() + 30
    while time.time() < until and quiet < 2:
        quiet = quiet + 1 if not pending_sink(stack) else 0
        time.sleep(1.0)
    return quiet >= 2


def _signatures(sink: Sink, path: str, v: Verdict) -> None:
    """Every request the sink received on this run's path is correctly signed."""
    for r in [r for r in list(sink.received) if r.path == path]:
        try:
            Webhook(SECRET).verify(r.body, r.headers)
        except WebhookVerificationError as exc:
            v.fail("bad webhook signature", f"{r.headers.get('webhook-id')}: {exc}")


def _roles(roles: Roles, codes: dict[str, int | None], v: Verdict) -> None:
    """Every role copy was alive at the end (`codes`); exits on its own are listed."""
    for name, code in codes.items():
        if code is not None:
            v.fail("role not alive at the end", f"{name}: exit {code}; {roles.last_error(name)}")
    for name, exits in roles.unexpected_exits().items():
        own = [code for _, code in exits]
        v.info.append(f"{name} exited on its own with {own}; restarted unless 0")
        if len(exits) > MAX_RESTARTS:
            v.fail("role crash-looping", f"{name}: {len(exits)} exits {own}")


@pytest.mark.timeout(600)
def test_chaos_every_due_escalation_once_and_nothing_committed_lost(
    tmp_path: Path, database_url: str, sink: Sink
) -> None:
    """Under load with kill -9 of each role, a Redis restart, a scheduler outage and a
    FLUSHALL: every due escalation happens exactly once, none after an earlier acknowledgement,
    no event is lost, every notification is received, and every role is alive at the end."""
    began = time.monotonic()
    redis = private_redis(tmp_path)
    hook = f"{sink.url}/chaos-{uuid.uuid4().hex[:12]}"  # this run's own path on the sink
    policy = write_policy(tmp_path / "policy.yaml", tier_s=TIER_S, webhook_url=hook)
    stack = Stack(tmp_path, redis.start(), database_url, policy, env_extra=ENV)
    roles = Roles(stack)
    for role in ("ingest", "scheduler", "worker"):
        roles.add(role, 2)
    plans, sends = build_plan(SEED, ISSUES, SPAN_S)
    load = Load(stack.redis_url, sends)
    try:
        roles.start_all()
        started = time.monotonic()
        t0 = time.time() + 0.5
        load.start(t0)
        faults = Faults(roles, redis, load, stack, t0)
        faults.run()
        load.join(timeout=sends[-1].at + 120)
        loaded = time.monotonic()
        oracle = Oracle(plans, load.deliveries, t0)
        last_due = t0 + max(p.due(STEPS) for p in plans)
        drained = _drain(stack, oracle, load, faults, max(time.time(), last_due) + DRAIN_S)
        time.sleep(3.0)  # room for a late duplicate to show up
        codes = roles.exit_codes()
        quiet = _quiesce(stack, roles)
        path = hook.removeprefix(sink.url.removesuffix("/hook"))
        before, _, _ = sink_ids(sink, path)  # the sink around the database: see judge_sink
        seen = observe(stack)
        after, requests, foreign = sink_ids(sink, path)
        verdict = oracle.judge(seen, sends, faults.dead_before_flush + dead_letters(stack.redis))
        judge_sink(seen, before, after, foreign, verdict)
        verdict.info.append(f"sink: {requests} requests on this run's path in all")
        _signatures(sink, path, verdict)
        _roles(roles, codes, verdict)
        n, p50, p99, worst = lateness(seen)
        print(
            f"\nchaos [{database_url.split(':')[0]}]: {ISSUES} issues, tiers of {TIER_S}s; "
            f"roles up in {started - began:.0f}s, load and faults {loaded - started:.0f}s, "
            f"drained: {drained} after {time.monotonic() - loaded:.0f}s, quiet: {quiet}\n"
            f"  escalation lateness (fired_at - due_at) over {n}: p50 {p50:.2f}s, "
            f"p99 {p99:.2f}s, max {worst:.2f}s\n  "
            + "\n  ".join(faults.record + verdict.info)
            + f"\n  producer retries while Redis was away: {load.failures}"
        )
        if verdict.problems:
            lines = [f"{len(verdict.issues)} issue(s) involved"]
            for category, problems in sorted(verdict.problems.items()):
                lines.append(f"== {category}: {len(problems)}")
                lines += [f"   {p}" for p in problems[:10]]
            lines.append("== some issues, expected vs seen (times: seconds after the start)")
            lines += [f"   {oracle.explain(seen, key)}" for key in sorted(verdict.issues)[:12]]
            lines.append("== faults: " + "; ".join(faults.record))
            lines.append("== role logs (tails)\n" + roles.tails())
            pytest.fail("\n".join(lines), pytrace=False)
    finally:
        load.close()
        roles.shutdown()
        redis.stop()
        stack.redis.close()
        stack.engine.dispose()
