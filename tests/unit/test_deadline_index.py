"""The Redis deadline index and its atomic claim (worker/broker/deadline_index.py), on fakeredis."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import fakeredis

from worker.broker.deadline_index import DeadlineIndex, score
from worker.broker.keys import DUE, EPOCH, INFLIGHT, LEGACY_INDEX

from .factories import T0

LEASE = 30.0


def secs(n: float) -> timedelta:
    """`n` seconds."""
    return timedelta(seconds=n)


def test_claim_returns_only_due_ids(redis: fakeredis.FakeRedis) -> None:
    """Only deadlines due at `now` are claimed; later ones stay armed."""
    index = DeadlineIndex(redis)
    assert index.arm([(1, T0), (2, T0 + secs(5)), (3, T0 + secs(60))]) == 3
    assert index.claim(T0 + secs(5), LEASE, 100) == ([1, 2], [])
    assert index.sizes() == (1, 2)
    assert redis.zscore(INFLIGHT, "1") == score(T0 + secs(5)) + LEASE


def test_claim_respects_the_limit(redis: fakeredis.FakeRedis) -> None:
    """At most `limit` due ids are taken per claim, earliest first."""
    index = DeadlineIndex(redis)
    index.arm([(i, T0 + secs(i)) for i in range(1, 11)])
    assert index.claim(T0 + secs(100), LEASE, 3) == ([1, 2, 3], [])


def test_claimed_id_is_not_claimed_again_while_leased(redis: fakeredis.FakeRedis) -> None:
    """An in-flight deadline is invisible to claims until its lease runs out."""
    index = DeadlineIndex(redis)
    index.arm([(7, T0)])
    assert index.claim(T0, LEASE, 10) == ([7], [])
    assert index.claim(T0 + secs(LEASE - 1), LEASE, 10) == ([], [])


def test_expired_lease_is_reclaimed(redis: fakeredis.FakeRedis) -> None:
    """When a claimer never acks, the id comes back as reclaimed, with a fresh lease."""
    index = DeadlineIndex(redis)
    index.arm([(7, T0)])
    index.claim(T0, LEASE, 10)
    later = T0 + secs(LEASE + 1)
    assert index.claim(later, LEASE, 10) == ([], [7])
    assert redis.zscore(INFLIGHT, "7") == score(later) + LEASE
    assert index.claim(later + secs(1), LEASE, 10) == ([], [])


def test_arm_skips_ids_in_flight(redis: fakeredis.FakeRedis) -> None:
    """Re-arming (e.g. the reconciler) an id a scheduler holds does not put it back in `due`."""
    index = DeadlineIndex(redis)
    index.arm([(7, T0)])
    index.claim(T0, LEASE, 10)
    assert index.arm([(7, T0), (8, T0)]) == 1
    assert redis.zrange(DUE, 0, -1) == ["8"]


def test_arm_is_idempotent_and_updates_the_due_time(redis: fakeredis.FakeRedis) -> None:
    """Arming the same id twice keeps one entry, scored by the latest due time."""
    index = DeadlineIndex(redis)
    assert index.arm([(5, T0)]) == 1
    assert index.arm([(5, T0 + secs(9))]) == 0
    assert redis.zscore(DUE, "5") == score(T0 + secs(9))


def test_disarm_removes_from_due_and_in_flight(redis: fakeredis.FakeRedis) -> None:
    """disarm drops ids wherever they are; an empty list is a no-op."""
    index = DeadlineIndex(redis)
    index.arm([(1, T0), (2, T0 + secs(60))])
    index.claim(T0, LEASE, 10)
    index.disarm([1, 2])
    index.disarm([])
    assert index.sizes() == (0, 0)
    assert index.claim(T0 + secs(3600), LEASE, 10) == ([], [])


def test_ack_removes_from_in_flight(redis: fakeredis.FakeRedis) -> None:
    """An acked deadline is never reclaimed."""
    index = DeadlineIndex(redis)
    index.arm([(1, T0)])
    index.claim(T0, LEASE, 10)
    index.ack(1)
    assert index.sizes() == (0, 0)
    assert index.claim(T0 + secs(LEASE * 10), LEASE, 10) == ([], [])


def test_next_due_is_the_earliest_score(redis: fakeredis.FakeRedis) -> None:
    """next_due reports the earliest armed due time, or None when nothing is armed."""
    index = DeadlineIndex(redis)
    assert index.next_due() is None
    index.arm([(1, T0 + secs(30)), (2, T0 + secs(10))])
    assert index.next_due() == score(T0 + secs(10))


def test_members_lists_due_and_in_flight(redis: fakeredis.FakeRedis) -> None:
    """members() yields every indexed id, due and in flight, in batches."""
    index = DeadlineIndex(redis)
    index.arm([(i, T0 + secs(i)) for i in range(1, 8)])
    index.claim(T0 + secs(3), LEASE, 10)
    batches = list(index.members(batch=2))
    assert sorted(i for b in batches for i in b) == list(range(1, 8))
    assert all(len(b) <= 2 for b in batches)


def test_arm_handles_more_than_one_chunk(redis: fakeredis.FakeRedis) -> None:
    """Arming more ids than one script call takes (ARM_CHUNK) indexes them all."""
    index = DeadlineIndex(redis)
    assert index.arm([(i, T0) for i in range(1, 4502)]) == 4501
    assert index.sizes() == (4501, 0)


def test_two_schedulers_never_claim_the_same_id(server: fakeredis.FakeServer) -> None:
    """Interleaved claims by two index instances on one server hand out each id exactly once."""
    a = DeadlineIndex(fakeredis.FakeRedis(server=server, decode_responses=True))
    b = DeadlineIndex(fakeredis.FakeRedis(server=server, decode_responses=True))
    rng = random.Random(7)
    a.arm([(i, T0 + secs(rng.uniform(0, 100))) for i in range(1, 501)])
    taken: Counter[int] = Counter()
    now = T0
    while now <= T0 + secs(120):
        for index in rng.sample([a, b], 2):
            due, reclaimed = index.claim(now, 1_000.0, rng.randint(1, 7))
            assert reclaimed == []
            taken.update(due)
            b.arm([(i, now) for i in due])  # a racing reconciler must not re-arm in-flight ids
        now += secs(rng.uniform(0.1, 2))
    assert sorted(taken) == list(range(1, 501))
    assert max(taken.values()) == 1


def test_claim_keeps_at_most_room_in_flight(redis: fakeredis.FakeRedis) -> None:
    """Backpressure: with 3 already in flight and room for 5, a claim takes 2; the rest stays
    due, in order, for the next claim."""
    index = DeadlineIndex(redis)
    index.arm([(i, T0 + secs(i)) for i in range(1, 11)])
    assert index.claim(T0 + secs(100), LEASE, 3, room=5) == ([1, 2, 3], [])
    assert index.claim(T0 + secs(100), LEASE, 100, room=5) == ([4, 5], [])
    assert index.claim(T0 + secs(100), LEASE, 100, room=5) == ([], [])
    for done in (1, 2, 3):
        index.ack(done)
    assert index.claim(T0 + secs(100), LEASE, 100, room=5) == ([6, 7, 8], [])


def test_claim_until_holds_later_deadlines(redis: fakeredis.FakeRedis) -> None:
    """Deadlines due after `until` (ingest has not applied what came before them) wait."""
    index = DeadlineIndex(redis)
    index.arm([(1, T0), (2, T0 + secs(10))])
    assert index.claim(T0 + secs(20), LEASE, 10, until=T0 + secs(5)) == ([1], [])
    assert index.claim(T0 + secs(20), LEASE, 10) == ([2], [])


def test_a_renewed_lease_is_not_reclaimed_and_an_acked_one_is_not_renewed(
    redis: fakeredis.FakeRedis,
) -> None:
    """The worker's renewal keeps a running firing's entry; renewing after the ack adds nothing."""
    index = DeadlineIndex(redis)
    index.arm([(7, T0), (8, T0)])
    index.claim(T0, 5.0, 10)
    index.renew([7], T0 + secs(60))
    assert index.claim(T0 + secs(6), 5.0, 10) == ([], [8])  # 8 was lost, 7 still runs
    index.ack(7)
    index.renew([7], T0 + secs(120))
    assert redis.zscore(INFLIGHT, "7") is None


def test_release_hands_claimed_deadlines_back_as_due(redis: fakeredis.FakeRedis) -> None:
    """A claim whose task could not be sent is due again at once, not after the lease."""
    index = DeadlineIndex(redis)
    index.arm([(7, T0)])
    assert index.claim(T0, LEASE, 10) == ([7], [])
    index.release([7], T0 + secs(1))
    assert index.claim(T0 + secs(1), LEASE, 10) == ([7], [])


def test_the_index_says_when_it_was_lost(redis: fakeredis.FakeRedis) -> None:
    """The epoch set at a reconcile's start disappears with a FLUSHALL."""
    index = DeadlineIndex(redis)
    assert not index.intact()
    index.mark_intact(T0)
    assert index.intact()
    redis.flushall()
    assert not index.intact()


def test_the_index_keys_share_one_hash_tag() -> None:
    """Every key of the deadline index hashes to one Redis Cluster slot: one `{tag}` each."""
    import re

    tags = {re.findall(r"\{([^}]*)\}", key)[0] for key in (DUE, INFLIGHT, EPOCH)}
    assert tags == {"deadlines"}


def test_the_lua_scripts_touch_only_the_keys_they_are_given() -> None:
    """A script names a key only as KEYS[n] (no key built from an argument or a literal), and
    DeadlineIndex passes DUE and INFLIGHT, which share the tag, as those keys."""
    import re
    from pathlib import Path

    import worker.broker.deadline_index as module

    for script in Path(module.__file__).parent.glob("deadline_*.lua"):
        for call in re.findall(r"redis\.call\(([^)]*)\)", script.read_text()):
            key = call.split(",")[1].strip()
            assert re.fullmatch(r"KEYS\[\d\]", key), (script.name, call)
    calls = re.findall(
        r"self\._(?:arm|claim)\(\s*keys=\[([^\]]*)\]", Path(module.__file__).read_text()
    )
    assert calls == ["DUE, INFLIGHT", "DUE, INFLIGHT"]


def test_a_lost_index_deletes_the_keys_of_before_the_hash_tag(redis: fakeredis.FakeRedis) -> None:
    """The old names are abandoned: a scheduler on the new ones finds no epoch (the index is
    rebuilt) and the old keys go, so their memory is not kept for nothing."""
    redis.zadd(LEGACY_INDEX[0], {"1": 1.0})
    redis.set(LEGACY_INDEX[2], "then")
    index = DeadlineIndex(redis)
    assert index.mark_intact(T0) is False
    assert not any(redis.exists(key) for key in LEGACY_INDEX)
    assert index.mark_intact(T0) is True


def test_due_between_reads_a_slice_of_due_entries_with_their_scores(
    redis: fakeredis.FakeRedis,
) -> None:
    index = DeadlineIndex(redis)
    index.arm([(i, T0 + secs(i)) for i in range(1, 8)])
    low, high = score(T0 + secs(2)), score(T0 + secs(5))
    assert index.due_between(low, high) == [(i, score(T0 + secs(i))) for i in range(2, 6)]
    assert [i for i, _ in index.due_between(None, high, 1, 2)] == [2, 3]
    assert [i for i, _ in index.due_between(low, None)] == [2, 3, 4, 5, 6, 7]
    index.claim(T0 + secs(1), LEASE, 1)
    assert index.in_flight() == [1]
    assert [i for i, _ in index.due_between(None, None)] == [2, 3, 4, 5, 6, 7]


def test_due_between_reads_resp2_replies_too(server: fakeredis.FakeServer) -> None:
    index = DeadlineIndex(fakeredis.FakeRedis(server=server, decode_responses=True, protocol=2))
    index.arm([(1, T0), (2, T0 + secs(1))])
    assert index.due_between(None, None) == [(1, score(T0)), (2, score(T0 + secs(1)))]
