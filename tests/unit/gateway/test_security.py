"""Secrets: required per source unless insecure (said loudly), rotated, never logged."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs
from typer.testing import CliRunner

from config.settings import Settings
from tests.support import webhooks as wh
from worker.cli.main import app as cli

from .conftest import MakeClient, post


def test_a_source_without_a_secret_does_not_start() -> None:
    """Settings refuse a configured source that has no secret and is not marked insecure."""
    with pytest.raises(ValidationError, match="needs at least one secret"):
        Settings(_env_file=None, sources={"github": {}})


def test_escalator_api_refuses_to_start_a_source_without_a_secret() -> None:
    """`escalator api` exits 2 with the field at fault instead of serving the source open."""
    result = CliRunner().invoke(cli, ["api"], env={"ESCALATOR_SOURCES": '{"jira": {}}'})
    assert result.exit_code == 2
    assert "invalid configuration" in result.output
    assert "ESCALATOR_SOURCES: jira: a source needs at least one secret" in result.output


def test_an_insecure_source_is_served_and_announced_loudly(make_client: MakeClient) -> None:
    """insecure: true serves the source without checking, and logs a warning at start-up."""
    sources = json.loads(wh.sources_env(jira={"insecure": True}))
    with capture_logs() as logs:
        client = make_client(sources=sources)
    warning = [e for e in logs if e["event"] == "gateway.source_insecure"]
    assert warning and warning[0]["log_level"] == "warning" and warning[0]["source"] == "jira"
    unsigned = wh.jira(wh.sample("jira_issue_created"))
    del unsigned.headers["x-hub-signature"]
    assert post(client, unsigned).status_code == 202


def test_secrets_and_signatures_never_reach_the_logs(make_client: MakeClient) -> None:
    """Refused and accepted requests log no secret, token, or signature value."""
    with capture_logs() as logs:
        client = make_client(management_token="management-secret")
        for signed in (
            wh.github(wh.sample("github_issues_opened")),
            wh.github(wh.sample("github_issues_opened"), secret="wrong-guess"),
            wh.alertmanager(wh.sample("alertmanager_firing"), token="guessed-token"),
            wh.events(wh.issue_event(), secret=wh.WHSEC),
        ):
            post(client, signed)
        client.get("/v1/issues", headers={"authorization": "Bearer guessed-token"})
    text = repr(logs)
    for secret in (wh.SECRET, wh.WHSEC, wh.TOKEN, "management-secret", "guessed-token",
                   "wrong-guess", "sha256="):  # fmt: skip
        assert secret not in text
    assert any(e["event"] == "gateway.unauthorized" for e in logs)


def test_settings_do_not_show_secrets() -> None:
    """The settings' repr masks every source secret."""
    settings = Settings(_env_file=None, sources=json.loads(wh.sources_env()))
    assert wh.SECRET not in repr(settings) and wh.SECRET not in str(settings.model_dump())


def test_nothing_a_caller_sends_is_a_500(make_client: MakeClient) -> None:
    """Odd bodies and headers (deep nesting, bad lengths, wrong types) all get 4xx answers."""
    client = make_client(sources=json.loads(wh.sources_env(github={"insecure": True},
                                                           jira={"insecure": True})))  # fmt: skip
    bodies: list[bytes] = [
        b"[" * 100_000,
        b"\xff\xfe",
        b"null",
        b"[]",
        b'"x"',
        b"1e999999",
        json.dumps({"action": "opened", "issue": {"number": "x"}}).encode(),
    ]
    for body in bodies:
        for path in ("/v1/webhooks/github", "/v1/webhooks/jira", "/v1/events"):
            headers = {
                "x-github-event": "issues",
                "x-github-delivery": "d",
                "x-atlassian-webhook-identifier": "1",
                "authorization": f"Bearer {wh.TOKEN}",
            }
            status = client.post(path, content=body, headers=headers).status_code
            assert 400 <= status < 500, (path, body[:20], status)
    bad_length = client.post("/v1/events", content=b"{}", headers={"content-length": "abc"})
    assert bad_length.status_code in (400, 401)
