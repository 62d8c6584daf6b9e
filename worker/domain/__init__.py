"""The pure domain: issue state, event handlers, planning, firing, moot, wording, calendars,
on-call rosters and simulation. No redis, sqlalchemy, celery or HTTP (tests/unit/test_purity.py).

This module is the package's public surface: the rest of the code imports from here. The
modules behind it are `issue` (IssueClock, Transition), `events` and `cycles` (what each event
does), `planning` (settling clocks, planning deadlines), `firing` (what a deadline does when it
falls due), `moot` (when an unsent message no longer matters), `policy_match` (which policy an
issue runs under), `wording` (every text a person reads), `sla`, `calendar`, `clock`, `oncall`
and `simulate`.
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
from worker.domain.oncall import Shift, next_shift, on_call, people
from worker.domain.planning import replan
from worker.domain.policy_match import explain_match, facts_of, match_policy, matches
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
from worker.domain.wording import comment, duration, headline, label, message_text

__all__ = [
    "ALWAYS_OPEN",
    "EVERYTHING",
    "MOOT_WHEN_MET",
    "MOOT_WHEN_RESOLVED",
    "SNOOZE",
    "BusinessCalendar",
    "Calendar",
    "CalendarError",
    "Clock",
    "ClockState",
    "DeadlineKind",
    "DeadlineSpec",
    "Decision",
    "Fired",
    "FiringDeadline",
    "IssueClock",
    "Lifecycle",
    "ManualClock",
    "PlannedEvent",
    "Shift",
    "Stale",
    "Step",
    "SystemClock",
    "TargetClock",
    "Transition",
    "apply_event",
    "business_calendar",
    "comes_back",
    "comment",
    "decide",
    "duration",
    "elapsed",
    "end_snooze",
    "explain_match",
    "facts_of",
    "headline",
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
]
