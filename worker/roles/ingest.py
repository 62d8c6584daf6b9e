"""The ingest role: a consumer in the group on `escalator:events`.

Reads batches, applies them (one commit), then indexes deadlines, enqueues notifications and
only then XACKs. Entries that cannot be applied go to the dead-letter stream with their error in
the same MULTI as their ack. Entries left pending by a crashed consumer are reclaimed with
XAUTOCLAIM; one delivered more than `ingest_max_deliveries` times is dead-lettered.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import structlog
from redis.client import NEVER_DECODE
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from schemas.events import EventWindow
from worker.bootstrap import Container
from worker.broker.keys import DEAD_STREAM, GROUP, STREAM, STREAM_FIELD
from worker.broker.leases import LeaseKeeper
from worker.domain.retry import backoff
from worker.gateway import metrics_record as record
from worker.roles.policy_reload import Reloader
from worker.roles.pulse import Pulse
from worker.services import parking
from worker.services.ingest import EntryResult, Key, Outcome, apply_batch
from worker.services.parking import settle

log = structlog.get_logger("escalator.ingest")

Entry = tuple[str, dict[str, Any] | None]
PARKED_EVERY_S = 2.0  # how often parked events are checked for their issue and their window


def consumer_name() -> str:
    """Unique per process: `host-pid`."""
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(c: Container) -> None:
    """Create the stream and its consumer group, reading from the start (idempotent)."""
    try:
        c.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _decode(raw_entries: list[Any]) -> tuple[list[Entry], dict[str, str]]:
    """Entries read undecoded, decoded one by one: bytes that are not UTF-8 spoil only their own."""
    entries: list[Entry] = []
    reasons: dict[str, str] = {}
    for raw_id, raw_fields in raw_entries:
        entry_id = _text(raw_id)
        if raw_fields is None:  # deleted while pending
            entries.append((entry_id, None))
            continue
        pairs = (
            list(raw_fields.items())
            if isinstance(raw_fields, dict)
            else list(zip(raw_fields[::2], raw_fields[1::2], strict=True))
        )
        try:
            entries.append((entry_id, {_text(k): _text(v) for k, v in pairs}))
        except UnicodeDecodeError as exc:
            # Keep what can be kept (undecodable bytes shown as U+FFFD) for the dead letter.
            lossy = {
                k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k): (
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                )
                for k, v in pairs
            }
            entries.append((entry_id, lossy))
            reasons[entry_id] = f"entry is not UTF-8 text: {exc.reason} at byte {exc.start}"
    return entries, reasons


def _group_lost(exc: ResponseError) -> bool:
    text = str(exc)
    return text.startswith("NOGROUP") or text.startswith("UNBLOCKED")


class Ingest:
    """One consumer. `step()` does one round; `run()` loops until `stop` is set."""

    def __init__(self, c: Container, name: str | None = None, stop: threading.Event | None = None):
        self.c = c
        self.name = name or consumer_name()
        self.stop = stop or threading.Event()
        self.applied = 0
        # While a batch is applied, its entries are claimed again every third of the claim
        # idle time (XCLAIM JUSTID, min idle 0), so a slow batch is never taken over by another
        # consumer's XAUTOCLAIM: only the entries of a consumer that stopped go idle.
        self.keeper = LeaseKeeper[str](
            "ingest-entries",
            self._keep,
            c.clock,
            c.settings.ingest_claim_idle_ms / 1000,
        )
        self._next_reclaim = 0.0
        self._next_trim = 0.0
        self._next_parked = 0.0
        settings = c.settings
        self.window = EventWindow.of_seconds(settings.event_max_skew_s, settings.event_max_age_s)
        self.reloader = Reloader(c)

    def run(self) -> None:
        """Consume until `stop` is set. Redis or the database away, at start or later, is
        retried with capped backoff (logged at error level), never a reason to exit."""
        log.info("ingest.started", consumer=self.name, stream=STREAM)
        pulse = Pulse(self.c.redis, "ingest", self.c.settings.heartbeat_every_s).start()
        failures = 0
        grouped = False
        while not self.stop.is_set():
            try:
                if not grouped:  # here, not before the loop: Redis may be down at start
                    ensure_group(self.c)
                    grouped = True
                self.step()
                failures = 0
            except (RedisError, SQLAlchemyError, OSError) as exc:
                if isinstance(exc, ResponseError) and _group_lost(exc):
                    # Redis lost the stream or the group (flushed, restarted without AOF).
                    log.warning("ingest.group_recreated", error=str(exc))
                    grouped = False
                    continue
                failures += 1
                delay = backoff(failures)
                log.error("ingest.failed", error=str(exc), retry_in_s=delay)
                self.stop.wait(delay)
        self._leave_group()
        pulse.stop()
        log.info("ingest.stopped", consumer=self.name, applied=self.applied)

    def _leave_group(self) -> None:
        """Remove this consumer from the group on a clean stop, unless it still holds entries."""
        try:
            mine = self.c.redis.xpending_range(STREAM, GROUP, "-", "+", 1, consumername=self.name)
            if not mine:
                self.c.redis.xgroup_delconsumer(STREAM, GROUP, self.name)
        except RedisError:
            pass

    def step(self, block_ms: int | None = None) -> int:
        """Reclaim, trim and read one batch; returns how many entries were handled."""
        self.reloader.check()
        now = time.monotonic()
        handled = 0
        if now >= self._next_reclaim:
            self._next_reclaim = now + self.c.settings.ingest_claim_idle_ms / 2000
            handled += self.reclaim()
        if now >= self._next_trim:
            self._next_trim = now + 60
            self.trim()
        if now >= self._next_parked:
            self._next_parked = now + PARKED_EVERY_S
            self.settle_parked()
        block = self.c.settings.ingest_block_ms if block_ms is None else block_ms
        args: list[Any] = ["GROUP", GROUP, self.name, "COUNT", self.c.settings.ingest_batch]
        if block:
            args += ["BLOCK", block]
        response = self.c.redis.execute_command(  # type: ignore[no-untyped-call]
            "XREADGROUP", *args, "STREAMS", STREAM, ">", **{NEVER_DECODE: True}
        )
        for _, raw_entries in response or []:
            entries, reasons = _decode(raw_entries)
            self.process(entries, reasons)
            handled += len(entries)
        return handled

    def process(self, entries: list[Entry], reasons: dict[str, str] | None = None) -> None:
        """Apply entries, then index, dispatch, dead-letter and ack, in that order."""
        if not entries:
            return
        raw = {entry_id: (fields or {}).get(STREAM_FIELD) for entry_id, fields in entries}
        results: list[EntryResult] = [
            EntryResult(entry_id, Outcome.DEAD, reason)
            for entry_id, reason in (reasons or {}).items()
        ]
        todo = [
            (entry_id, raw[entry_id]) for entry_id, _ in entries if entry_id not in (reasons or {})
        ]
        if todo:
            with self.keeper.holding([entry_id for entry_id, _ in todo]):
                batch = apply_batch(self.c.units, todo, self.c.policies, self.c.clock, self.window)
            record.fired(batch.fired)  # deadlines found overdue, fired before an event
            results += batch.results
            if batch.recheck:  # another consumer may have parked an event for these meanwhile
                self._settle(batch.recheck)
        pipe = self.c.redis.pipeline(transaction=True)
        for result in results:
            if result.outcome is Outcome.DEAD:
                body = raw.get(result.stream_id) or ""
                pipe.xadd(DEAD_STREAM, self._dead(body, result.note, result.stream_id))
                log.warning("event.dead", stream_id=result.stream_id, error=result.note)
            elif result.outcome is Outcome.DUPLICATE:
                log.info("event.duplicate", event_id=result.event_id, issue=result.issue_key)
            else:
                log.info(
                    f"event.{result.outcome.value}",
                    event_id=result.event_id,
                    issue=result.issue_key,
                    note=result.note,
                )
        pipe.xack(STREAM, GROUP, *raw.keys())
        pipe.execute()
        record.ingested(results)
        record.dead_lettered(record.dead_reason(r) for r in results if r.outcome is Outcome.DEAD)
        self.applied += sum(r.outcome is Outcome.APPLIED for r in results)

    def _keep(self, entry_ids: Sequence[str], _until: object) -> None:
        self.c.redis.xclaim(STREAM, GROUP, self.name, 0, list(entry_ids), justid=True)

    def settle_parked(self) -> None:
        """Apply parked events whose issue opened; dead-letter those that waited too long."""
        c = self.c
        try:
            self._settle(None)
        except SQLAlchemyError:
            raise  # the database is away: the loop retries
        except Exception:  # a bug in one issue's parked events must not block the expiry
            log.exception("parking.settle_failed")
        late = parking.expired(c.readers, c.clock, c.settings.ingest_park_window_s)
        if not late:
            return
        pipe = c.redis.pipeline(transaction=True)
        for entry in late:
            pipe.xadd(DEAD_STREAM, self._dead(entry.body, entry.reason, entry.stream_id))
            log.warning("event.dead", stream_id=entry.stream_id, error=entry.reason)
        pipe.execute()  # in the dead-letter stream first, then forgotten: never lost
        record.dead_lettered("expired" for _ in late)
        parking.drop(c.sessions, [entry.row_id for entry in late])

    def _settle(self, keys: set[Key] | None) -> None:
        c = self.c
        settle(c.units, c.policies, c.clock, keys)

    def _dead(self, body: str, error: str, stream_id: str) -> dict[Any, Any]:
        return {
            "event": body,
            "error": error,
            "stream_id": stream_id,
            "failed_at": self.c.clock.now().isoformat(),
            "consumer": self.name,
        }

    def reclaim(self) -> int:
        """Take over entries idle past the claim time; dead-letter those delivered too often."""
        settings = self.c.settings
        answer = self.c.redis.execute_command(  # type: ignore[no-untyped-call]
            "XAUTOCLAIM",
            STREAM,
            GROUP,
            self.name,
            settings.ingest_claim_idle_ms,
            "0-0",
            "COUNT",
            settings.ingest_batch,
            **{NEVER_DECODE: True},
        )
        # Redis 7 adds a third element (deleted ids); 6.2 does not.
        claimed, reasons = _decode([e for e in answer[1] if e and e[1] is not None])
        if not claimed:
            return 0
        pending = self.c.redis.xpending_range(
            STREAM,
            GROUP,
            min=claimed[0][0],
            max=claimed[-1][0],
            count=len(claimed) * 2,
            consumername=self.name,
        )
        deliveries: dict[str, int] = {
            _text(p["message_id"]): int(p["times_delivered"]) for p in pending
        }
        hopeless = {
            entry_id: f"gave up after {deliveries[entry_id]} deliveries: applying it kept failing"
            for entry_id, _ in claimed
            if deliveries.get(entry_id, 0) > settings.ingest_max_deliveries
        }
        # Entries redelivered because the database was away are not to blame: give up on them
        # only while the database answers (else they are applied, or fail again, as usual).
        if hopeless and self._database_answers():
            reasons |= hopeless
        log.warning("ingest.reclaimed", count=len(claimed), giving_up=len(reasons))
        self.process(claimed, reasons)
        return len(claimed)

    def _database_answers(self) -> bool:
        try:
            with self.c.readers() as session:
                session.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.warning("ingest.database_away", error=str(exc))
            return False

    def trim(self) -> None:
        """Drop entries every consumer is done with, so the stream does not grow forever."""
        groups = {g["name"]: g for g in self.c.redis.xinfo_groups(STREAM)}
        group = groups.get(GROUP)
        if not group or group["last-delivered-id"] == "0-0":
            return
        oldest = group["last-delivered-id"]
        summary = self.c.redis.xpending(STREAM, GROUP)
        if summary and summary.get("pending"):
            oldest = summary["min"]
        self.c.redis.xtrim(STREAM, minid=oldest, approximate=True)
