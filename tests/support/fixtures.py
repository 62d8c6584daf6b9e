"""Fixtures that start the real roles against real Redis and a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.sink import Sink
from tests.support.stack import Stack, write_policy

StackFactory = Callable[..., Stack]


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A local webhook receiver."""
    receiver = Sink()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def make_stack(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[StackFactory]:
    """Build a Stack with a fast policy; start the given roles; stop everything afterwards."""
    stacks: list[Stack] = []

    def _make(
        roles: tuple[str, ...] = ("ingest", "scheduler", "worker"),
        tier_s: float = 2.0,
        webhook_url: str | None = None,
        resolve_s: float | None = None,
        policy_text: str | None = None,
        **env: str,
    ) -> Stack:
        if policy_text is None:
            policy = write_policy(tmp_path / "policy.yaml", tier_s, webhook_url, resolve_s)
        else:
            policy = tmp_path / "policy.yaml"
            policy.write_text(policy_text)
        stack = Stack(tmp_path, redis_url, database_url, policy, env_extra=env)
        stacks.append(stack)
        for role in roles:
            stack.start(role)
        stack.wait_ready()
        return stack

    yield _make
    for stack in stacks:
        stack.stop()
