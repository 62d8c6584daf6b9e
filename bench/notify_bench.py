"""Notifications per second delivered by the dispatcher to a local signed-webhook sink.

    python bench/notify_bench.py            # 6,000 messages, SQLite, 2 sender processes
    python bench/notify_bench.py --quick    # 1,000 messages

Both runs start from the same outbox of N pending messages (SQLite, WAL) and deliver them to
the same receiver, a separate process on 127.0.0.1 (a minimal asyncio HTTP/1.1 server) that
answers 204 and counts distinct `webhook-id`s. Two sender processes split the ids, as a
Celery prefork worker with -c 2 would; the clock starts once both have imported and connected.

- **ours**: `deliver_many` in batches of 200 ids, as the `outbox.deliver_batch` task runs it:
  one lease UPDATE and one record transaction per 50 messages, Standard Webhooks signing, up
  to 8 sends at once per process on kept-alive connections (`PooledPoster`, as production
  wires it).
- **textbook**: one message at a time with httpx, the usual client: read the row, POST it (on a
  kept-alive connection), mark it sent, commit. This baseline runs the loop directly, without
  Celery's per-task overhead (DESIGN.md measured `.delay()` alone at ~1,300 tasks/s), so it is
  an upper bound for "one task per message".

Exit status 1 if a message was lost or delivered twice (as the receiver counts), else 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import fresh_sqlite, header, quiet_logging, ratio, row
from _overload_servers import sink_main
from _roles import better, summary

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONCURRENCY = int(os.environ.get("NOTIFY_BENCH_CONCURRENCY", "8"))


def _sink(port_out: Any, counts: Any, ready: Any) -> None:
    """A minimal HTTP/1.1 receiver on asyncio (keep-alive): 204 to each POST, counts ids.

    The receiver is not what is measured, so it is kept cheap: a ThreadingHTTPServer tops out
    near the rates measured here and would hide the dispatcher's figure behind its own.
    """
    sink_main(port_out, counts, ready, 0.0)


def _seed(url: str, n: int) -> list[str]:
    """N issues, each with one pending message for channel `hook`."""
    from sqlalchemy import insert

    from worker.store.db import make_engine
    from worker.store.models import Issue, OutboxMessage

    now = datetime.now(UTC)
    engine = make_engine(url)
    ids = [f"msg_{uuid.uuid4().hex}" for _ in range(n)]
    with engine.begin() as conn:
        conn.execute(
            insert(Issue),
            [
                dict(
                    id=i + 1,
                    source="bench",
                    external_id=str(i),
                    title=f"issue {i}",
                    severity="P1",
                    status="open",
                    assignee="l1-oncall",
                    labels=[],
                    url=None,
                    policy_name="critical",
                    lifecycle="open",
                    tier_index=0,
                    tier="L1",
                    clock_version=1,
                    cycle_started_at=now,
                    lifecycle_at=now,
                    snapshot_at=now,
                    created_at=now,
                    updated_at=now,
                )
                for i in range(n)
            ],
        )
        conn.execute(
            insert(OutboxMessage),
            [
                dict(
                    id=mid,
                    issue_id=i + 1,
                    channel="hook",
                    kind="assigned",
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                    payload={
                        "id": mid,
                        "kind": "assigned",
                        "issue": {
                            "key": f"bench:{i}",
                            "source": "bench",
                            "id": str(i),
                            "title": f"issue {i}",
                            "severity": "P1",
                        },
                        "tier": "L1",
                        "assignee": "l1-oncall",
                        "text": f"P1 bench:{i} assigned to L1",
                        "occurred_at": now.isoformat(),
                    },
                )
                for i, mid in enumerate(ids)
            ],
        )
    engine.dispose()
    return ids


def _ours(url: str, hook: str, ids: list[str], go: Any) -> None:
    from _common import make_settings

    from schemas.policy import PolicyFile
    from worker.domain.clock import SystemClock
    from worker.notify.channels import build_channels
    from worker.notify.http import PooledPoster
    from worker.services.deliver import deliver_many
    from worker.services.uow import Units
    from worker.store.db import make_engine, session_factory

    quiet_logging()
    settings = make_settings(
        "redis://unused", url, secrets={"sink": SECRET}, delivery_concurrency=CONCURRENCY
    )
    policies = PolicyFile.model_validate(
        {
            "channels": {"hook": {"type": "webhook", "url": hook, "secret": "sink"}},
            "tiers": [{"name": "L1", "channels": ["hook"]}],
            "policies": [
                {"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]}}
            ],
            "default": "p",
        }
    )
    clock = SystemClock()
    poster = PooledPoster(settings.delivery_concurrency)
    channels = build_channels(policies, settings, clock, poster)
    sessions = session_factory(make_engine(url))
    go.wait()
    for start in range(0, len(ids), 200):
        deliver_many(Units(sessions), channels, clock, settings, ids[start : start + 200])


def _textbook(url: str, hook: str, ids: list[str], go: Any) -> None:
    import httpx
    from standardwebhooks import Webhook

    from worker.store.db import make_engine, session_factory
    from worker.store.models import OutboxMessage

    sessions = session_factory(make_engine(url))
    signer = Webhook(SECRET)
    http = httpx.Client()  # kept alive: the baseline is not handicapped by new connections
    go.wait()
    for mid in ids:
        with sessions() as session, session.begin():
            message = session.get_one(OutboxMessage, mid)
            body = json.dumps(message.payload)
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": mid,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(mid, now, body),
            }
            http.post(hook, content=body, headers=headers, timeout=10).raise_for_status()
            message.state, message.sent_at = "sent", now


def _run(kind: str, n: int, procs: int, hook: str, counts: Any) -> tuple[float, int, int]:
    from sqlalchemy import func, select

    from worker.store.db import make_engine
    from worker.store.models import OutboxMessage

    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_sqlite(Path(tmp))
        ids = _seed(url, n)
        with counts.get_lock():
            counts[0] = counts[1] = 0
        target = _ours if kind == "ours" else _textbook
        go = mp.Event()
        workers = [
            mp.Process(target=target, args=(url, hook, ids[k::procs], go)) for k in range(procs)
        ]
        for w in workers:
            w.start()
        time.sleep(3.0)  # imports and set-up happen before the clock starts
        start = time.perf_counter()
        go.set()
        for w in workers:
            w.join()
        took = time.perf_counter() - start
        engine = make_engine(url)
        with engine.connect() as conn:
            sent = conn.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == "sent")
            )
        engine.dispose()
    return took, int(sent or 0), int(counts[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args(argv)
    n = args.n or (1000 if args.quick else 6000)
    quiet_logging()
    header(f"notify_bench: {n:,} signed webhooks to a local sink, {args.procs} sender processes")
    port, counts, ready = mp.Value("i", 0), mp.Array("l", 2), mp.Event()
    sink = mp.Process(target=_sink, args=(port, counts, ready), daemon=True)
    sink.start()
    ready.wait(10)
    hook = f"http://127.0.0.1:{port.value}/hook"
    ok = True
    results = {}
    for kind in ("ours", "textbook"):
        took, sent, unique = _run(kind, n, args.procs, hook, counts)
        rate = n / took
        results[kind] = rate
        row(f"{kind}: delivered", f"{unique:,} distinct ids, {sent:,} rows sent, {took:.2f} s")
        row(f"{kind}: notifications/s", f"{rate:,.0f}")
        ok = ok and sent == n and unique == n
    row("ours vs textbook", ratio(results["ours"], results["textbook"]))
    met = ok and results["ours"] >= 1000
    row(
        "target",
        f">= 1,000/s: {'met' if met else 'NOT met'}{'' if ok else ' (LOST OR DUPLICATED)'}",
    )
    row("target of issue 12", f">= 2,000/s: {'met' if results['ours'] >= 2000 else 'NOT met'}")
    summary(
        "notify_bench",
        "notifications/s to a local sink",
        results["ours"],
        "/s",
        ">= 2000",
        results["textbook"],
        better(results["ours"], results["textbook"]),
    )
    sink.terminate()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
