"""Write-back adapters' requests (worker/writeback/) and secrets kept out of logs and errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import structlog
from pydantic import SecretStr

from config.settings import Settings
from schemas.messages import IssueRef, Notification, NotificationKind
from schemas.policy import PolicyFile
from tests.support.posters import HttpxPoster
from worker.domain.clock import ManualClock
from worker.errors import DeliveryError, PermanentError, PolicyError
from worker.notify.channels import build_channels
from worker.notify.redact import mask_url, redact, resolve
from worker.writeback import build_writebacks

from .factories import T0

Seen = list[tuple[str, str, dict[str, str], Any]]


def policies() -> PolicyFile:
    """Tier L2 with a Zendesk group and explicit GitHub assignees; bob's ids in `people`."""
    return PolicyFile.model_validate(
        {
            "channels": {
                "log": {"type": "log"},
                "chat": {"type": "apprise", "url": "tgram://{secret:tg}/12345"},
            },
            "people": {"bob": {"jira": "5b10ac8d82e05b22cc7d4ef5", "zendesk": 4242}},
            "tiers": [
                {"name": "L1", "assignee": "ana"},
                {
                    "name": "L2",
                    "roster": "r",
                    "writeback": {"zendesk_group_id": 77, "github_assignees": ["bob-gh"]},
                },
            ],
            "rosters": {"r": {"members": ["bob"]}},
            "policies": [
                {"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]}}
            ],
            "default": "p",
        }
    )


def message(issue_id: str = "OPS-1") -> Notification:
    """An escalation to L2 (tier 2), on call bob."""
    return Notification(
        id="msg_abc",
        kind=NotificationKind.ESCALATED,
        issue=IssueRef(key=f"x:{issue_id}", source="x", id=issue_id, title="t", severity="P1"),
        tier="L2",
        assignee="bob",
        text="escalated",
        occurred_at=T0,
        tier_number=2,
    )


def adapters(seen: Seen, answer: int = 200, **settings: Any) -> dict[str, Any]:
    """Every adapter on a mock transport that records requests."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, str(request.url), dict(request.headers), body))
        return httpx.Response(answer, json={})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    config = Settings(_env_file=None, **settings)
    return build_writebacks(policies(), config, ManualClock(T0), http)


def basic(user: str, secret: str) -> str:
    """A Basic authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_jira_reassigns_by_account_id_and_adds_an_internal_comment() -> None:
    """PUT …/assignee with the accountId from `people`, then POST …/comment (ADF, internal)."""
    seen: Seen = []
    jira = adapters(
        seen,
        jira_url="https://acme.atlassian.net/",
        jira_user="bot@acme.com",
        jira_token=SecretStr("tok"),
        jira_internal_comments=True,
    )["writeback:jira"]
    jira.send(message())
    (m1, u1, h1, b1), (m2, u2, _, b2) = seen
    assert (m1, u1) == ("PUT", "https://acme.atlassian.net/rest/api/3/issue/OPS-1/assignee")
    assert b1 == {"accountId": "5b10ac8d82e05b22cc7d4ef5"}
    assert h1["authorization"] == basic("bot@acme.com", "tok")
    assert (m2, u2) == ("POST", "https://acme.atlassian.net/rest/api/3/issue/OPS-1/comment")
    assert b2["body"]["type"] == "doc" and "msg_abc" in json.dumps(b2["body"])
    assert b2["properties"] == [{"key": "sd.public.comment", "value": {"internal": True}}]


def test_github_assigns_labels_the_tier_and_comments() -> None:
    """POST assignees, DELETE the previous tier label, POST tier:2, POST a comment."""
    seen: Seen = []
    github = adapters(seen, github_token=SecretStr("ghp_x"))["writeback:github"]
    github.send(message("acme/shop#42"))
    calls = [(m, u.removeprefix("https://api.github.com"), b) for m, u, _, b in seen]
    assert calls == [
        ("POST", "/repos/acme/shop/issues/42/assignees", {"assignees": ["bob-gh"]}),
        ("DELETE", "/repos/acme/shop/issues/42/labels/tier%3A1", None),
        ("POST", "/repos/acme/shop/issues/42/labels", {"labels": ["tier:2"]}),
        ("POST", "/repos/acme/shop/issues/42/comments", {"body": calls[3][2]["body"]}),
    ]
    assert all(h["authorization"] == "Bearer ghp_x" for _, _, h, _ in seen)
    assert seen[0][2]["accept"] == "application/vnd.github+json"


def test_zendesk_sets_group_assignee_and_a_private_comment() -> None:
    """One PUT /api/v2/tickets/{id}.json with group_id, assignee_id and comment.public=false."""
    seen: Seen = []
    zendesk = adapters(
        seen,
        zendesk_url="https://acme.zendesk.com",
        zendesk_email="bot@acme.com",
        zendesk_token=SecretStr("zt"),
    )["writeback:zendesk"]
    zendesk.send(message("123"))
    [(method, url, headers, body)] = seen
    assert (method, url) == ("PUT", "https://acme.zendesk.com/api/v2/tickets/123.json")
    assert headers["authorization"] == basic("bot@acme.com/token", "zt")
    ticket = body["ticket"]
    assert (ticket["group_id"], ticket["assignee_id"], ticket["comment"]["public"]) == (
        77,
        4242,
        False,
    )


def test_unconfigured_adapter_is_permanent_and_server_errors_are_transient() -> None:
    """Missing credentials fail for good; a 500 is retried."""
    with pytest.raises(PermanentError, match="ESCALATOR_JIRA_URL"):
        adapters([])["writeback:jira"].send(message())
    with pytest.raises(DeliveryError):
        adapters([], answer=500, writeback_webhook_url="https://h.example.com/wb")[
            "writeback:webhook"
        ].send(message())


def test_secret_placeholders_resolve_and_never_show_in_masks() -> None:
    """`{secret:NAME}` is filled from ESCALATOR_SECRETS; a missing one is a PolicyError."""
    url, used = resolve("tgram://{secret:tg}/123", {"tg": SecretStr("123:ABC")}, "channel x")
    assert (url, used) == ("tgram://123:ABC/123", ["123:ABC"])
    with pytest.raises(PolicyError, match="'tg'"):
        resolve("tgram://{secret:tg}/1", {}, "channel x")
    assert mask_url("tgram://123:ABC/123") == "tgram://***"
    assert mask_url("https://u:pw@hooks.slack.com/services/T/B/X") == "https://hooks.slack.com/***"
    assert "ABC" not in redact("failed: 123:ABC refused", ["123:ABC"])


def test_apprise_failure_keeps_the_token_out_of_errors_and_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failing apprise URL raises DeliveryError, and neither it nor the logs hold the token."""
    token = "999999:SECRETTOKENxyz"
    settings = Settings(
        _env_file=None, secrets={"tg": SecretStr(token)}, public_url="https://esc.example.com"
    )
    with httpx.Client() as http:
        channels = build_channels(
            PolicyFile.model_validate(
                {
                    "channels": {
                        "log": {"type": "log"},
                        "mail": {
                            "type": "apprise",
                            "url": "mailto://u:{secret:tg}@127.0.0.1:1?from=a@b.example&to=c@d.example&secure=no",
                        },
                    },
                    "tiers": [{"name": "L1", "channels": ["mail"]}],
                    "policies": [
                        {"name": "p", "acknowledge": {"ladder": [{"tier": "L1", "within": "5m"}]}}
                    ],
                    "default": "p",
                }
            ),
            settings,
            ManualClock(T0),
            HttpxPoster(http),
        )
        with pytest.raises(DeliveryError) as caught:
            channels["mail"].send(message())
    structlog.get_logger("t").info("after")
    out = capsys.readouterr()
    assert token not in str(caught.value)
    assert token not in out.out + out.err
