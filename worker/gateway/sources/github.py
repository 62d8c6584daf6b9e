"""GitHub: `issues` and `issue_comment` webhooks, signed with `X-Hub-Signature-256`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from config.sources import GithubSource
from schemas.events import EventType, IssueEvent
from worker.gateway.signatures import hub_signature
from worker.gateway.sources.common import Incoming, Mapped, build, header, parse, severity_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class User(_Model):
    login: str


class Label(_Model):
    name: str


class GhIssue(_Model):
    number: int
    title: str = ""
    html_url: str | None = None
    state: str = "open"
    labels: list[Label] = []
    assignee: User | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    pull_request: dict[str, Any] | None = None


class Repository(_Model):
    full_name: str


class Comment(_Model):
    id: int
    user: User | None = None
    author_association: str = "NONE"
    created_at: AwareDatetime


class IssuesPayload(_Model):
    action: str
    issue: GhIssue
    repository: Repository
    changes: dict[str, Any] | None = None


class CommentPayload(IssuesPayload):
    comment: Comment


ISSUE_ACTIONS = {
    "opened": EventType.OPENED,
    "closed": EventType.RESOLVED,
    "reopened": EventType.REOPENED,
    "labeled": EventType.UPDATED,
    "unlabeled": EventType.UPDATED,
    "assigned": EventType.UPDATED,
    "unassigned": EventType.UPDATED,
}


class GithubAdapter:
    name = "github"

    def __init__(self, config: GithubSource) -> None:
        self.config = config
        self.members = {a.upper() for a in config.member_associations}

    def authenticate(self, request: Incoming) -> None:
        signature = request.headers.get("x-hub-signature-256")
        hub_signature(self.config.secrets, request.body, signature, "X-Hub-Signature-256")

    def interpret(self, request: Incoming, payload: Any) -> Mapped:
        delivery = header(request, "X-GitHub-Delivery")
        kind = header(request, "X-GitHub-Event")
        mapped = Mapped(delivery_id=delivery)
        if kind == "ping":
            mapped.note = "ping: the webhook is set up; nothing to do"
        elif kind == "issues":
            self._issues(parse(IssuesPayload, payload), mapped)
        elif kind == "issue_comment":
            self._comment(parse(CommentPayload, payload), mapped)
        else:
            mapped.note = f"GitHub event {kind!r} is not tracked (only issues, issue_comment)"
        return mapped

    def _issues(self, p: IssuesPayload, mapped: Mapped) -> None:
        kind = ISSUE_ACTIONS.get(p.action)
        if p.action == "edited" and p.changes and "title" in p.changes:
            kind = EventType.UPDATED
        if kind is None:
            mapped.note = f"issues.{p.action} changes nothing Escalator tracks"
            return
        if p.issue.pull_request is not None:
            mapped.note = "pull requests are not tracked"
            return
        at = p.issue.created_at
        if kind is EventType.RESOLVED:
            at = p.issue.closed_at or p.issue.updated_at or at
        elif kind is not EventType.OPENED:
            at = p.issue.updated_at or at
        mapped.events.append(self._event(kind, p, mapped.delivery_id, at))

    def _comment(self, p: CommentPayload, mapped: Mapped) -> None:
        if p.action != "created":
            mapped.note = f"issue_comment.{p.action} changes nothing Escalator tracks"
            return
        if p.issue.pull_request is not None:
            mapped.note = "pull requests are not tracked"
            return
        member = p.comment.author_association.upper() in self.members
        kind = EventType.RESPONDED if member else EventType.CUSTOMER_REPLIED
        mapped.events.append(self._event(kind, p, mapped.delivery_id, p.comment.created_at))

    def _event(self, kind: EventType, p: IssuesPayload, delivery: str, at: datetime) -> IssueEvent:
        labels = [label.name for label in p.issue.labels]
        return build(
            event_id=f"github:{delivery}",
            type=kind,
            occurred_at=at,
            source=self.name,
            issue_id=f"{p.repository.full_name}#{p.issue.number}",
            severity=severity_of(labels, self.config.severity_labels, self.config.default_severity),
            title=p.issue.title,
            status=p.issue.state,
            assignee=p.issue.assignee.login if p.issue.assignee else None,
            labels=labels,
            url=p.issue.html_url,
        )
