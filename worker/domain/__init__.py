"""The pure domain: issue state, event handlers, planning, firing, moot, wording, calendars,
on-call rosters and simulation. No redis, sqlalchemy, celery or HTTP (tests/unit/test_purity.py).

This module is the package's public surface: the rest of the code imports from here. The
modules behind it are `issue` (IssueClock, Transition), `events` and `cycles` (what each event
does), `planning` (settling clocks, planning deadlines), `firing` (what a deadline does when it
falls due), `moot` (when an unsent message no longer matters), `policy_match` (which policy an
issue runs under), `wording` (every text a person reads), `sla`, `calendar`, `clock`, `oncall`,
`simulate`, `states` (deadline and outbox states), `retry` (backoff) and `ports` (the protocols
adapters fulfil).
"""

from worker.domain import wording
from worker.domain.calendar import (
    ALWAYS_OPEN,
    BusinessCalendar,
    Calendar,
    CalendarError,
    business_calendar,
)
from worker.domain.clock import Clock, ManualClock, SystemClock
from worker.domain.cycles import comes_back
from worker.domain.events import apply_event, end_snooze
from worker.domain.firing import Decision, Fired, FiringDeadline, Stale, decide
from worker.domain.issue import EVERYTHING, IssueClock, Transition
from worker.domain.moot import MOOT_WHEN_MET, MOOT_WHEN_RESOLVED, moot, moot_reason
from worker.domain.oncall import Gap, Shift, coverage_gaps, next_shift, on_call, people
from worker.domain.planning import replan
from worker.domain.policy_match import explain_match, facts_of, match_policy, matches
from worker.domain.ports import Channel, Index
from worker.domain.retry import backoff, jittered
from worker.domain.simulate import PlannedEvent, Step, simulate
from worker.domain.sla import (
    SNOOZE,
    ClockState,
    DeadlineKind,
    DeadlineSpec,
    Lifecycle,
    TargetClock,
    elapsed,
)
from worker.domain.states import (
    FINISHED,
    WRITEBACK,
    DeadlineState,
    OutboxState,
    adapter_of,
    is_writeback,
    writeback_channel,
)
from worker.domain.wording import comment, duration, headline, label, message_text

__all__ = [
    "ALWAYS_OPEN",
    "EVERYTHING",
    "FINISHED",
    "MOOT_WHEN_MET",
    "MOOT_WHEN_RESOLVED",
    "SNOOZE",
    "WRITEBACK",
    "BusinessCalendar",
    "Calendar",
    "CalendarError",
    "Channel",
    "Clock",
    "ClockState",
    "DeadlineKind",
    "DeadlineSpec",
    "DeadlineState",
    "Decision",
    "Fired",
    "FiringDeadline",
    "Gap",
    "Index",
    "IssueClock",
    "Lifecycle",
    "ManualClock",
    "OutboxState",
    "PlannedEvent",
    "Shift",
    "Stale",
    "Step",
    "SystemClock",
    "TargetClock",
    "Transition",
    "adapter_of",
    "apply_event",
    "backoff",
    "business_calendar",
    "comes_back",
    "comment",
    "coverage_gaps",
    "decide",
    "duration",
    "elapsed",
    "end_snooze",
    "explain_match",
    "facts_of",
    "headline",
    "is_writeback",
    "jittered",
    "label",
    "match_policy",
    "matches",
    "message_text",
    "moot",
    "moot_reason",
    "next_shift",
    "on_call",
    "people",
    "replan",
    "simulate",
    "wording",
    "writeback_channel",
]
