"""How long to wait before trying again: one capped exponential backoff for every retry loop."""

from __future__ import annotations

import random


def backoff(doublings: int, base: float = 0.5, cap: float = 30.0) -> float:
    """`base` doubled `doublings` times, capped at `cap` (a role's loop after that many
    consecutive failures, with Redis or the database away)."""
    return float(min(cap, base * 2 ** min(max(doublings, 0), 30)))


def jittered(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Before attempt `attempt` + 1, with full jitter: uniform in [base, backoff(attempt - 1)]
    (a delivery's retries: messages that failed together are not retried in the same second)."""
    ceiling = backoff(attempt - 1, base, cap)
    return (rng or random).uniform(min(base, ceiling), ceiling)
