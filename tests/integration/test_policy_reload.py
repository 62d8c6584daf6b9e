"""Running roles pick up an edited policy file on request and refuse a broken one."""

from __future__ import annotations

import pytest

from tests.support.fixtures import StackFactory
from tests.support.stack import event
from worker.broker.keys import POLICY_GENERATION

pytestmark = pytest.mark.integration


def test_running_roles_reload_and_refuse(make_stack: StackFactory) -> None:
    """A valid edit applies to new issues after a reload; a broken file leaves it in force."""
    stack = make_stack(roles=("ingest", "scheduler", "worker"))
    stack.producer.send(event("issue.opened", "PR-1"))
    stack.wait_for(lambda: stack.issue("PR-1"), 10, "PR-1 under the first policy")
    pr1 = stack.issue("PR-1")
    assert pr1 is not None
    assert pr1.policy_name == "fast"

    stack.policy_file.write_text(stack.policy_file.read_text().replace("fast", "quick"))
    stack.redis.incr(POLICY_GENERATION)

    def logs() -> str:
        return (stack.tmp / "ingest-0.log").read_text()

    stack.wait_for(lambda: "policy.reloaded" in logs(), 10, "ingest to reload")
    stack.producer.send(event("issue.opened", "PR-2"))
    stack.wait_for(lambda: stack.issue("PR-2"), 10, "PR-2")
    pr2 = stack.issue("PR-2")
    assert pr2 is not None
    assert pr2.policy_name == "quick"

    stack.policy_file.write_text("tiers: []\npolicies: oops\n")
    stack.redis.incr(POLICY_GENERATION)
    stack.wait_for(lambda: "policy.reload_refused" in logs(), 10, "the broken file refused")
    stack.producer.send(event("issue.opened", "PR-3"))
    stack.wait_for(lambda: stack.issue("PR-3"), 10, "PR-3 still applied")
    pr3 = stack.issue("PR-3")
    assert pr3 is not None
    assert pr3.policy_name == "quick"
    stack.wait_for(lambda: stack.tier("PR-3") == "L2", 10, "PR-3 still escalates")
