"""The worker watchdog: a worker that stops answering while Redis answers is stuck; a broker
that is away is Celery's to retry."""

from __future__ import annotations

from types import SimpleNamespace

from celery.concurrency import get_implementation

from worker.roles.watchdog import MISSES, Watchdog, _solo, redis_url_of


def test_a_worker_that_answers_is_never_stuck() -> None:
    """Pings answered: no miss is counted, however long."""
    dog = Watchdog(answers=lambda: True, broker_up=lambda: True)
    assert not any(dog.look() for _ in range(MISSES * 3))


def test_unanswered_pings_in_a_row_while_redis_answers_mean_stuck() -> None:
    """MISSES unanswered pings in a row, Redis up: stuck; one answer in between resets."""
    replies = iter([False, False, True, *[False] * MISSES])
    dog = Watchdog(answers=lambda: next(replies), broker_up=lambda: True)
    looks = [dog.look() for _ in range(MISSES + 3)]
    assert looks == [False] * (MISSES + 2) + [True]


def test_a_broker_that_is_away_is_not_the_workers_fault() -> None:
    """Redis down: no miss is counted (Celery retries the broker itself), however long."""
    dog = Watchdog(answers=lambda: False, broker_up=lambda: False)
    assert not any(dog.look() for _ in range(MISSES * 3))
    assert dog.misses == 0


def test_the_broker_url_maps_back_to_a_redis_url() -> None:
    """kombu's redis+socket:// for a unix socket is redis-py's unix://; TCP URLs stay."""
    assert redis_url_of("redis+socket:///tmp/x.sock") == "unix:///tmp/x.sock"
    assert redis_url_of("redis://10.0.0.1:6379/0") == "redis://10.0.0.1:6379/0"


def test_no_watchdog_on_the_solo_pool() -> None:
    """On solo a task runs on the loop that answers pings: a long one is not a stuck worker."""

    def consumer(pool: str) -> SimpleNamespace:
        return SimpleNamespace(controller=SimpleNamespace(pool_cls=get_implementation(pool)))

    assert _solo(consumer("solo"))
    assert not _solo(consumer("prefork")) and not _solo(consumer("threads"))
