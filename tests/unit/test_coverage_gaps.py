"""Where a tier reaches nobody (worker/domain/oncall.py: coverage_gaps), and the schema that
expresses a planned gap: a roster's `until`, an override to nobody (`who: null`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schemas.policy import PolicyFile
from worker.domain.oncall import Gap, coverage_gaps, next_shift, on_call
from worker.domain.wording import gap_text

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a Tuesday
HOOK = {"type": "webhook", "url": "https://hooks.example.com/x"}


def policies(
    roster: dict[str, Any] | None = None,
    assignee: str | None = None,
    channels: Any = ("hook",),
    more_tiers: tuple[dict[str, Any], ...] = (),
) -> PolicyFile:
    """A file whose tier L1 uses `roster` (None: only its assignee), told on `channels`."""
    tier: dict[str, Any] = {"name": "L1", "assignee": assignee, "channels": channels}
    data: dict[str, Any] = {
        "channels": {"log": {"type": "log"}, "hook": HOOK},
        "tiers": [tier, *more_tiers],
        "policies": [{"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]}}],
        "default": "p",
    }
    if roster is not None:
        tier["roster"] = "r"
        data["rosters"] = {"r": roster}
    return PolicyFile.model_validate(data)


def rotation(**extra: Any) -> dict[str, Any]:
    """A daily rotation of two people in UTC, handing over at 09:00, plus `extra`."""
    return {"members": ["ana", "ben"], "shift": "1d", "start": "2026-11-02", **extra}


def nobody(start: datetime, end: datetime) -> dict[str, Any]:
    """An override that hands the tier to nobody from `start` to `end`."""
    return {"who": None, "start": start.isoformat(), "end": end.isoformat()}


def at(day: int, hour: int = 0, zone: ZoneInfo | None = None) -> datetime:
    """A moment of December 2026 (UTC unless `zone`)."""
    return datetime(2026, 12, day, hour, tzinfo=zone or UTC)


def test_a_covered_tier_has_no_gap() -> None:
    """A rotation without an end, told on a webhook, reaches someone at every moment."""
    assert coverage_gaps(policies(rotation()), START) == []


def test_a_tier_with_no_roster_and_no_assignee_has_nobody_from_now_on() -> None:
    """No roster and no assignee: nobody on call from the window's start, with no end."""
    assert coverage_gaps(policies(None, assignee=None), START) == [
        Gap("L1", "nobody_on_call", START, None)
    ]
    assert on_call(policies(None, assignee=None), "L1", START) is None


def test_a_rotation_with_an_end_leaves_nobody_after_it() -> None:
    """`until`: nobody from `handoff` on that date, open-ended; on_call says None after it."""
    p = policies(rotation(until="2026-12-05"))
    assert coverage_gaps(p, START) == [Gap("L1", "nobody_on_call", at(5, 9), None)]
    assert on_call(p, "L1", at(5, 9) - timedelta(seconds=1)) is not None
    assert on_call(p, "L1", at(5, 9)) is None
    ending = next_shift(p, "L1", at(4, 10))
    assert ending is not None and (ending.who, ending.start) == (None, at(5, 9))


def test_a_fixed_list_with_an_end_leaves_nobody_after_it() -> None:
    """A fixed list with `until` has its first member until then, nobody after."""
    p = policies({"members": ["ana"], "until": "2026-12-03"})
    assert on_call(p, "L1", START) == "ana"
    assert coverage_gaps(p, START) == [Gap("L1", "nobody_on_call", at(3, 9), None)]


def test_an_override_to_nobody_is_a_gap_for_its_period() -> None:
    """`who: null` hands the tier to nobody exactly from the override's start to its end."""
    p = policies(rotation(overrides=[nobody(at(5, 18), at(7, 9))]))
    gaps = coverage_gaps(p, START)
    assert gaps == [Gap("L1", "nobody_on_call", at(5, 18), at(7, 9))]
    assert on_call(p, "L1", at(6)) is None
    assert on_call(p, "L1", at(7, 9)) is not None
    assert gap_text(gaps[0]) == (
        "tier L1: nobody on call from Sat 2026-12-05 18:00 UTC to Mon 2026-12-07 09:00 UTC "
        "(1 day 15h)"
    )


def test_the_assignee_stands_in_where_the_roster_has_nobody() -> None:
    """A tier with a roster and an assignee has no gap: the assignee covers the roster's gaps."""
    p = policies(
        rotation(until="2026-12-10", overrides=[nobody(at(5, 18), at(7, 9))]),
        assignee="fallback",
    )
    assert coverage_gaps(p, START) == []
    assert on_call(p, "L1", at(6)) == "fallback"
    assert on_call(p, "L1", at(11)) == "fallback"


def test_adjacent_and_overlapping_gaps_merge_into_maximal_intervals() -> None:
    """Overlapping overrides to nobody and an `until` right after them make one gap."""
    p = policies(
        rotation(
            until="2026-12-08",
            overrides=[nobody(at(5, 18), at(7, 9)), nobody(at(6), at(8, 9))],
        )
    )
    assert coverage_gaps(p, START) == [Gap("L1", "nobody_on_call", at(5, 18), None)]


def test_an_override_to_someone_splits_the_gap_after_the_end() -> None:
    """A named override after `until` is covered: the gap stops at its start and resumes."""
    named = {"who": "zoe", "start": at(9).isoformat(), "end": at(10).isoformat()}
    p = policies(rotation(until="2026-12-08", overrides=[named]))
    assert coverage_gaps(p, START) == [
        Gap("L1", "nobody_on_call", at(8, 9), at(9)),
        Gap("L1", "nobody_on_call", at(10), None),
    ]


def test_the_first_matching_override_wins_over_a_later_one() -> None:
    """Overrides are taken in file order: a named one listed first covers a nobody after it."""
    named = {"who": "zoe", "start": at(5).isoformat(), "end": at(6).isoformat()}
    p = policies(rotation(overrides=[named, nobody(at(5), at(7))]))
    assert coverage_gaps(p, START) == [Gap("L1", "nobody_on_call", at(6), at(7))]


def test_an_until_across_a_daylight_saving_change_is_at_local_handoff_time() -> None:
    """Europe/Berlin: `until` on the Monday after the autumn change ends at 09:00 CET (08:00
    UTC), one before it at 09:00 CEST (07:00 UTC); a nobody-override across the change keeps
    its exact bounds."""
    base = {"members": ["ana", "ben"], "shift": "1w", "timezone": "Europe/Berlin"}
    week = datetime(2026, 10, 22, tzinfo=UTC)
    after = policies({**base, "start": "2026-10-05", "until": "2026-10-26"})
    before = policies({**base, "start": "2026-10-05", "until": "2026-10-23"})
    assert coverage_gaps(after, week) == [
        Gap("L1", "nobody_on_call", datetime(2026, 10, 26, 8, tzinfo=UTC), None)
    ]
    assert coverage_gaps(before, week) == [
        Gap("L1", "nobody_on_call", datetime(2026, 10, 23, 7, tzinfo=UTC), None)
    ]
    span = nobody(
        datetime(2026, 10, 24, 18, tzinfo=BERLIN), datetime(2026, 10, 25, 18, tzinfo=BERLIN)
    )
    across = policies({**base, "start": "2026-10-05", "overrides": [span]})
    (gap,) = coverage_gaps(across, week)
    assert (gap.start, gap.end) == (
        datetime(2026, 10, 24, 16, tzinfo=UTC),
        datetime(2026, 10, 25, 17, tzinfo=UTC),
    )
    assert gap.start is not None and gap.end is not None
    assert gap.end - gap.start == timedelta(hours=25)  # the night the clocks go back


def test_the_window_is_start_inclusive_and_end_exclusive() -> None:
    """A gap starting exactly at start+14d is outside; one second earlier it is inside,
    clipped to the window's end; a gap that began earlier is reported from `start`."""
    stop = START + timedelta(days=14)
    outside = policies(rotation(overrides=[nobody(stop, stop + timedelta(hours=2))]))
    assert coverage_gaps(outside, START) == []
    early = stop - timedelta(seconds=1)
    inside = policies(rotation(overrides=[nobody(early, stop + timedelta(hours=2))]))
    assert coverage_gaps(inside, START) == [Gap("L1", "nobody_on_call", early, stop)]
    ended = policies(rotation(overrides=[nobody(START - timedelta(hours=3), START)]))
    assert coverage_gaps(ended, START) == []
    running = policies(rotation(overrides=[nobody(START - timedelta(hours=3), at(2))]))
    assert coverage_gaps(running, START) == [Gap("L1", "nobody_on_call", START, at(2))]
    assert coverage_gaps(policies(rotation(until="2026-12-20")), START, days=7) == []


def test_escalations_routed_to_no_channel_are_a_gap() -> None:
    """Escalations routed nowhere, or only to `log` channels, make a `no_channel` gap."""
    only_log = policies(rotation(), channels=["log"])
    assert coverage_gaps(only_log, START) == [Gap("L1", "no_channel", None, None)]
    routed_elsewhere = policies(rotation(), channels={"assigned": ["hook"]})
    assert coverage_gaps(routed_elsewhere, START) == [Gap("L1", "no_channel", None, None)]
    by_default = policies(rotation(), channels={"default": ["hook"], "resolved": ["log"]})
    assert coverage_gaps(by_default, START) == []
    mixed = policies(rotation(), channels=["log", "hook"])
    assert coverage_gaps(mixed, START) == []
    assert gap_text(Gap("manager", "no_channel", None, None)).startswith(
        "tier manager: escalations reach no channel"
    )


def test_gaps_come_per_tier_in_file_order_no_channel_first() -> None:
    """Each tier's no_channel gap comes before its nobody gaps; tiers in the file's order."""
    manager = {"name": "manager", "channels": ["log"]}
    p = policies(rotation(until="2026-12-05"), more_tiers=(manager,))
    assert coverage_gaps(p, START) == [
        Gap("L1", "nobody_on_call", at(5, 9), None),
        Gap("manager", "no_channel", None, None),
        Gap("manager", "nobody_on_call", START, None),
    ]


def test_the_start_must_be_aware_and_is_reported_in_utc() -> None:
    """A naive start is refused; an aware one in another zone gives UTC gaps."""
    with pytest.raises(ValueError, match="aware"):
        coverage_gaps(policies(None), datetime(2026, 12, 1))
    (gap,) = coverage_gaps(policies(None), START.astimezone(BERLIN))
    assert gap.start == START and gap.start.tzinfo == UTC


def test_the_schema_expresses_a_planned_gap_and_refuses_nonsense() -> None:
    """`who: null` and `until` validate; an empty name or an `until` before `start` does not;
    `who` must still be given."""
    assert policies(rotation(until="2026-12-05", overrides=[nobody(at(1), at(2))]))
    with pytest.raises(ValidationError, match="until"):
        policies(rotation(until="2026-11-01"))
    with pytest.raises(ValidationError):
        policies(rotation(overrides=[{"who": "", "start": at(1), "end": at(2)}]))
    with pytest.raises(ValidationError, match="who"):
        policies(rotation(overrides=[{"start": at(1), "end": at(2)}]))
