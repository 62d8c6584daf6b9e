"""The bad-input corpus: never fatal, never silently dropped
(worker/services/ingest.py, worker/roles/ingest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import fakeredis
import pytest
from redis.typing import EncodableT, FieldT
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from schemas.policy import PolicyFile
from tests.support.streams import entries as stream_entries
from tests.support.streams import group_read
from worker.bootstrap import Container
from worker.broker.celery_app import app
from worker.broker.deadline_index import DeadlineIndex
from worker.broker.keys import DEAD_STREAM, DELIVER_BATCH, GROUP, STREAM, STREAM_FIELD
from worker.domain.clock import ManualClock
from worker.roles.ingest import Ingest, ensure_group
from worker.services.ingest import Outcome, apply_batch
from worker.services.uow import Units
from worker.store.models import Issue, OutboxMessage

from .factories import T0, event_json, minutes

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "bad_events.jsonl"
GOOD_ISSUES = ("OPS-101", "OPS-102", "OPS-103")


def load_corpus() -> list[dict[str, Any]]:
    """Every entry of tests/fixtures/bad_events.jsonl."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def good_events() -> list[tuple[str, str]]:
    """(event_id, raw) for an opened + acknowledged pair per good issue."""
    events = []
    for n, issue_id in enumerate(GOOD_ISSUES):
        events.append(
            (
                f"open-{issue_id}",
                event_json("issue.opened", issue_id, T0 + minutes(n), event_id=f"open-{issue_id}"),
            )
        )
        events.append(
            (
                f"ack-{issue_id}",
                event_json(
                    "issue.acknowledged", issue_id, T0 + minutes(n + 1), event_id=f"ack-{issue_id}"
                ),
            )
        )
    return events


def interleaved() -> tuple[
    list[tuple[str, str | bytes | None]], dict[str, dict[str, Any]], set[str]
]:
    """Stream entries mixing bad and good; the bad ones by stream id; the good stream ids."""
    corpus, good = load_corpus(), good_events()
    entries: list[tuple[str, str | bytes | None]] = []
    bad: dict[str, dict[str, Any]] = {}
    good_ids: set[str] = set()
    for i in range(max(len(corpus), len(good))):
        if i < len(corpus):
            stream_id = f"{i}-0"
            bad[stream_id] = corpus[i]
            entries.append((stream_id, corpus[i]["raw"]))
        if i < len(good):
            stream_id = f"{i}-1"
            good_ids.add(stream_id)
            entries.append((stream_id, good[i][1]))
    return entries, bad, good_ids


def test_corpus_covers_the_required_cases() -> None:
    """The corpus holds the cases the brief names, each with a non-empty expectation."""
    corpus = load_corpus()
    names = {row["name"] for row in corpus}
    for required in (
        "malformed JSON",
        "truncated JSON",
        "empty string",
        "JSON array",
        "missing event_id",
        "missing type",
        "unknown type",
        "missing occurred_at",
        "naive occurred_at",
        "non-date occurred_at",
        "unknown severity",
        "severity of wrong type",
        "missing issue",
        "issue.id empty",
        "extra top-level field",
        "extra issue field",
        "labels not a list",
        "url not a URL",
        "source with spaces",
        "source uppercase",
        "null raw (entry without the event field)",
    ):
        assert required in names
    assert all(row["expect"] for row in corpus)
    assert len(names) == len(corpus)


def test_corpus_interleaved_with_valid_events_in_one_batch(
    sessions: sessionmaker[Session], clock: ManualClock, policies: PolicyFile
) -> None:
    """Every bad entry is DEAD with its reason; every good one is applied; nothing raises."""
    entries, bad, good_ids = interleaved()
    batch = apply_batch(Units(sessions), entries, policies, clock)
    by_id = {r.stream_id: r for r in batch.results}
    assert set(by_id) == {stream_id for stream_id, _ in entries}  # one result per entry
    for stream_id, row in bad.items():
        result = by_id[stream_id]
        assert result.outcome is Outcome.DEAD, row["name"]
        assert row["expect"] in result.note, (row["name"], result.note)
    assert {by_id[s].outcome for s in good_ids} == {Outcome.APPLIED}
    with sessions() as session:
        issues = session.execute(select(Issue.external_id, Issue.lifecycle)).all()
    assert sorted(issues) == [(i, "acknowledged") for i in GOOD_ISSUES]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Records post_commit's Celery send_task calls instead of talking to a broker."""
    calls: list[tuple[str, list[Any]]] = []

    def record(name: str, args: list[Any] | None = None, **_: Any) -> None:
        calls.append((name, list(args or [])))

    monkeypatch.setattr(app, "send_task", record)
    return calls


def read_all(redis: fakeredis.FakeRedis, consumer: str) -> list[Any]:
    """Read every new entry as `consumer` of the ingest group."""
    response = redis.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=1000)
    return [entry for _, batch in group_read(response) for entry in batch]


def test_ingest_dead_letters_bad_entries_and_acks_everything(
    container: Container, redis: fakeredis.FakeRedis, sent: list[tuple[str, list[Any]]]
) -> None:
    """Bad entries go to the dead stream with `error` and raw `event`; all entries are XACKed."""
    ensure_group(container)
    corpus, good = load_corpus(), good_events()
    raw_by_id: dict[str, dict[str, Any]] = {}
    for i in range(max(len(corpus), len(good))):
        if i < len(corpus):
            raw = corpus[i]["raw"]
            fields: dict[FieldT, EncodableT] = (
                {"note": "no event field"} if raw is None else {STREAM_FIELD: raw}
            )
            raw_by_id[cast(str, redis.xadd(STREAM, fields))] = corpus[i]
        if i < len(good):
            redis.xadd(STREAM, {STREAM_FIELD: good[i][1]})
    entries = read_all(redis, "unit-1")
    assert len(entries) == len(corpus) + len(good)

    Ingest(container, name="unit-1").process(entries)

    dead = {fields["stream_id"]: fields for _, fields in stream_entries(redis.xrange(DEAD_STREAM))}
    assert set(dead) == set(raw_by_id)
    for stream_id, row in raw_by_id.items():
        assert row["expect"] in dead[stream_id]["error"], row["name"]
        assert dead[stream_id]["event"] == (row["raw"] or "")
        assert dead[stream_id]["consumer"] == "unit-1"
    assert redis.xpending(STREAM, GROUP)["pending"] == 0
    with container.sessions() as session:
        outbox_ids = set(session.scalars(select(OutboxMessage.id)))
    assert len(outbox_ids) == len(GOOD_ISSUES)  # one ASSIGNED per issue, L1 has one channel
    assert [name for name, _ in sent] == [DELIVER_BATCH]
    assert set(sent[0][1][0]) == outbox_ids


def test_ingest_indexes_armed_deadlines_after_commit(
    container: Container, redis: fakeredis.FakeRedis, sent: list[tuple[str, list[Any]]]
) -> None:
    """After an opened event is processed its deadlines are in the Redis index."""
    ensure_group(container)
    redis.xadd(STREAM, {STREAM_FIELD: event_json(at=T0)})
    Ingest(container, name="unit-1").process(read_all(redis, "unit-1"))
    index = DeadlineIndex(redis)
    assert index.sizes() == (4, 0)  # escalate, two resolve warnings, the resolve breach
    assert index.claim(T0 + minutes(5), 30.0, 10)[0] != []
    assert len(sent) == 1


def test_ingest_gives_up_on_entries_with_a_reason(
    container: Container, redis: fakeredis.FakeRedis, sent: list[tuple[str, list[Any]]]
) -> None:
    """Entries passed with a give-up reason are dead-lettered unapplied, and acked."""
    ensure_group(container)
    redis.xadd(STREAM, {STREAM_FIELD: event_json(at=T0)})
    entries = read_all(redis, "unit-1")
    reasons = {entries[0][0]: "gave up after 6 deliveries"}
    Ingest(container, name="unit-1").process(entries, reasons)
    [(_, fields)] = stream_entries(redis.xrange(DEAD_STREAM))
    assert fields["error"] == "gave up after 6 deliveries"
    assert redis.xpending(STREAM, GROUP)["pending"] == 0
    assert sent == []


def test_ingest_survives_an_entry_that_is_not_utf8(
    container: Container,
    server: fakeredis.FakeServer,
    redis: fakeredis.FakeRedis,
    sent: list[tuple[str, list[Any]]],
) -> None:
    """A producer writing raw bytes that are not UTF-8 gets dead-lettered, not a dead consumer."""
    ensure_group(container)
    fakeredis.FakeRedis(server=server).xadd(STREAM, {STREAM_FIELD: b"\xff\xfe{not utf-8"})
    Ingest(container, name="unit-1").step(block_ms=0)
    assert redis.xlen(DEAD_STREAM) == 1
    assert redis.xpending(STREAM, GROUP)["pending"] == 0
