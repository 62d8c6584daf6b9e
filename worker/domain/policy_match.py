"""Which policy an issue runs under. Pure: the policy file's conditions applied to an issue.

Policies are tried in the file's order and the first whose conditions all hold wins; an issue
that none matches runs under the file's `default`. What matching sees of an issue is its
`IssueFacts`: severity, source, labels, status and the matchable fields.
"""

from __future__ import annotations

from schemas.events import IssueEvent, Severity
from schemas.policy import IssueFacts, Match, Policy, PolicyFile


def matches(match: Match, facts: IssueFacts) -> bool:
    """Whether an issue with these facts meets every condition of `match`."""
    if match.severity and facts.severity not in match.severity:
        return False
    if match.source and facts.source not in match.source:
        return False
    if not all(label in facts.labels for label in match.labels):
        return False
    if match.status and facts.status.casefold() not in {s.casefold() for s in match.status}:
        return False
    for name, accepted in match.fields.items():
        value = (facts.fields.get(name) or "").casefold()
        if value not in {a.casefold() for a in accepted}:
            return False
    return all(
        pattern.search(facts.fields.get(name) or "") for name, pattern in match.patterns.items()
    )


def explain_match(match: Match, facts: IssueFacts) -> list[tuple[str, bool]]:
    """Each condition of `match` as text, with whether it holds: `escalator policy explain`."""
    checks: list[tuple[str, bool]] = []
    if match.severity:
        names = ", ".join(s.value for s in match.severity)
        checks.append((f"severity in [{names}]", facts.severity in match.severity))
    if match.source:
        checks.append((f"source in {list(match.source)}", facts.source in match.source))
    for label in match.labels:
        checks.append((f"has label {label!r}", label in facts.labels))
    if match.status:
        folded = {s.casefold() for s in match.status}
        checks.append((f"status in {list(match.status)}", facts.status.casefold() in folded))
    for name, accepted in match.fields.items():
        value = (facts.fields.get(name) or "").casefold()
        checks.append((f"{name} in {list(accepted)}", value in {a.casefold() for a in accepted}))
    for name, pattern in match.patterns.items():
        found = bool(pattern.search(facts.fields.get(name) or ""))
        checks.append((f"{name} ~ /{pattern.pattern}/", found))
    return checks


def match_policy(policies: PolicyFile, facts: IssueFacts) -> Policy:
    """The first policy of the file whose conditions hold, else the file's default."""
    for policy in policies.policies:
        if matches(policy.match, facts):
            return policy
    return next(p for p in policies.policies if p.name == policies.default)


def facts_of(event: IssueEvent, severity: Severity | None = None) -> IssueFacts:
    """What policy matching sees of the issue an event describes (at `severity`, if given)."""
    snap = event.issue
    url = str(snap.url) if snap.url else None
    return IssueFacts.of(
        severity or snap.severity,
        event.source,
        snap.labels,
        snap.status,
        snap.id,
        snap.title,
        snap.assignee,
        url,
    )
