"""The web console: sign-in, sessions and CSRF, each page with data from the services, the
actions put events with their actor on the stream, live updates, and the offline API docs."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from config.settings import Settings
from schemas.messages import Notification
from schemas.policy import PolicyFile
from tests.support.streams import entries
from worker.broker.keys import DEAD_STREAM, STREAM, STREAM_FIELD
from worker.domain.clock import ManualClock
from worker.domain.oncall import coverage_gaps
from worker.domain.wording.oncall import gap_text
from worker.gateway import create_app
from worker.gateway.console.live import Changes, events, token_of
from worker.gateway.console.render import STATIC
from worker.notify.templates import Renderer
from worker.services.ingest import apply_batch
from worker.services.uow import Units
from worker.store import views
from worker.store.models import OutboxMessage

from ..factories import T0, event_json, minutes
from .conftest import stream_events

MGMT, VIEWER = "mgmt-token", "viewer-token"
HASH_KEY = "github:acme/app#42"
Console = Callable[..., TestClient]


@pytest.fixture
def apply(
    sessions: sessionmaker[Session], policies: PolicyFile, clock: ManualClock
) -> Callable[..., None]:
    """Apply events through the ingest service (no broker: effects are only returned)."""
    counter = iter(range(1, 10**6))

    def _apply(*raw: str) -> None:
        batch: list[tuple[str, str | bytes | None]] = [(f"{next(counter)}-0", r) for r in raw]
        apply_batch(Units(sessions), batch, policies, clock)

    return _apply


@pytest.fixture
def make_console(
    tmp_path: Path, server: fakeredis.FakeServer, engine: Engine, clock: ManualClock
) -> Iterator[Console]:
    """The gateway with the console, on SQLite, the shared fake Redis and the manual clock."""
    clients: list[TestClient] = []

    def _make(base_url: str = "http://testserver", **overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "_env_file": None,
            "data_dir": tmp_path,
            "management_token": MGMT,
            "viewer_token": VIEWER,
        }
        values.update(overrides)
        app = create_app(
            Settings(**values),
            lambda: fakeredis.FakeAsyncRedis(server=server, decode_responses=True),
            engine,
            clock,
        )
        app.state.console.sync_redis = lambda: fakeredis.FakeRedis(
            server=server, decode_responses=True
        )
        client = TestClient(app, base_url=base_url, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()


def sign_in(client: TestClient, token: str = MGMT, name: str = "Ann") -> None:
    response = client.post("/login", data={"token": token, "name": name}, follow_redirects=False)
    assert response.status_code == 303, response.text


@pytest.fixture
def full(make_console: Console) -> TestClient:
    """A console client signed in with the management token as Ann."""
    client = make_console()
    sign_in(client)
    return client


@pytest.fixture
def issues(apply: Callable[..., None], clock: ManualClock) -> None:
    """Three open issues (P1 jira, P2 jira, P1 github with a `#` key) and one resolved."""
    apply(
        event_json(issue_id="OPS-1", severity="P1"),
        event_json(issue_id="OPS-2", severity="P2"),
        event_json(issue_id="acme/app#42", severity="P1", source="github"),
        event_json(issue_id="OPS-9", severity="P3"),
        event_json("issue.resolved", issue_id="OPS-9", severity="P3", at=T0 + minutes(1)),
    )
    clock.set(T0 + minutes(2))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


# --- sign-in ---------------------------------------------------------------------------------


def test_login_page_has_the_sign_in_form(make_console: Console) -> None:
    """GET /login shows form#signin with a password token field, a name field and a submit."""
    page = make_console().get("/login").text
    assert 'id="signin"' in page
    assert re.search(r'<input type="password" name="token"', page)
    assert 'name="name"' in page and '<button type="submit"' in page


def test_login_page_says_which_variable_to_set_when_no_token_is_configured(
    make_console: Console,
) -> None:
    """With no token at all, the sign-in page names the variables that enable it."""
    page = make_console(management_token=None, viewer_token=None).get("/login").text
    assert "ESCALATOR_MANAGEMENT_TOKEN" in page and "ESCALATOR_VIEWER_TOKEN" in page


def test_a_wrong_token_is_refused_with_401(make_console: Console) -> None:
    """A wrong token answers 401 with an .error element and sets no cookie."""
    client = make_console()
    response = client.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert response.status_code == 401
    assert 'class="error"' in response.text
    assert "set-cookie" not in response.headers


def test_a_good_token_signs_in_with_a_safe_cookie(make_console: Console) -> None:
    """The right token: 303 to `next`, an HttpOnly SameSite=Lax cookie, not Secure over HTTP."""
    client = make_console()
    response = client.post(
        "/login", data={"token": MGMT, "next": "/oncall"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/oncall"
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("escalator_session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert client.get("/oncall", follow_redirects=False).status_code == 200


def test_the_cookie_is_secure_over_https(make_console: Console) -> None:
    """Signed in over HTTPS, the session cookie carries Secure."""
    client = make_console(base_url="https://testserver")
    response = client.post("/login", data={"token": MGMT}, follow_redirects=False)
    assert "secure" in response.headers["set-cookie"].lower()


def test_next_never_leaves_the_site(make_console: Console) -> None:
    """A `next` naming another host is replaced by the board."""
    client = make_console()
    for target in ("https://evil.example/", "//evil.example/x"):
        response = client.post(
            "/login", data={"token": MGMT, "next": target}, follow_redirects=False
        )
        assert response.headers["location"] == "/"


@pytest.mark.parametrize("path", ["/", "/oncall", "/operations", "/issues/jira:OPS-1"])
def test_pages_without_a_session_go_to_sign_in(make_console: Console, path: str) -> None:
    """Any console page without a session answers 303 to /login?next=<the page>."""
    response = make_console().get(path, follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login")
    if path != "/":
        assert "next=" in location


def test_a_forged_or_foreign_cookie_is_no_session(make_console: Console) -> None:
    """A cookie altered by hand, or signed for a token since changed, opens nothing."""
    client = make_console()
    sign_in(client)
    value = client.cookies["escalator_session"]
    client.cookies.set("escalator_session", value[:-2] + "xx")
    assert client.get("/", follow_redirects=False).status_code == 303
    rotated = make_console(management_token="a-new-token")
    rotated.cookies.set("escalator_session", value)
    assert rotated.get("/", follow_redirects=False).status_code == 303


def test_logout_needs_the_csrf_token_and_ends_the_session(full: TestClient) -> None:
    """POST /logout without the CSRF token: 403; with it, the cookie goes."""
    assert full.post("/logout", follow_redirects=False).status_code == 403
    token = csrf_of(full.get("/").text)
    response = full.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert full.get("/", follow_redirects=False).status_code == 303


# --- the board --------------------------------------------------------------------------------


def test_board_lists_open_issues_with_countdowns(full: TestClient, issues: None) -> None:
    """One row per open issue, its link URL-encoded, a countdown per running target."""
    page = full.get("/").text
    assert 'id="board"' in page and 'id="board-body"' in page and 'id="menu"' in page
    rows = re.findall(r'<tr data-issue="([^"]+)"', page)
    assert sorted(rows) == ["github:acme/app#42", "jira:OPS-1", "jira:OPS-2"]
    assert 'class="issue-link" href="/issues/github:acme/app%2342"' in page
    # P1 acknowledge: 5 minutes from T0, seen at T0 + 2m
    due = re.search(
        r'<tr data-issue="jira:OPS-1".*?data-target="acknowledge" data-due="([^"]+)"[^>]*>([^<]+)<',
        page,
        re.S,
    )
    assert due, page
    assert due.group(1) == (T0 + minutes(5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert due.group(2) == "3m 0s left"


def test_board_countdown_says_over_once_breached(
    full: TestClient, issues: None, clock: ManualClock
) -> None:
    """Past its target time a countdown reads `... over` and the breached filter keeps it."""
    clock.set(T0 + minutes(5) + timedelta(seconds=3))
    page = full.get("/?breached=1").text
    assert re.search(r'data-target="acknowledge" data-due="[^"]+"[^>]*>3s over<', page)
    assert "jira:OPS-2" not in re.findall(r'<tr data-issue="([^"]+)"', page)


def test_board_filters(full: TestClient, issues: None) -> None:
    """Filters by source, severity, tier and policy narrow the rows; the form offers them."""
    page = full.get("/?severity=P2").text
    assert re.findall(r'<tr data-issue="([^"]+)"', page) == ["jira:OPS-2"]
    assert 'id="filters"' in page and 'name="breached"' in page
    for name in ("source", "severity", "tier", "policy"):
        assert f'<select name="{name}">' in page
    by_source = full.get("/?source=github").text
    assert re.findall(r'<tr data-issue="([^"]+)"', by_source) == [HASH_KEY]
    assert "No open issues" in full.get("/?tier=nope").text
    rows = full.get("/console/board?severity=P1").text
    assert sorted(re.findall(r'<tr data-issue="([^"]+)"', rows)) == [HASH_KEY, "jira:OPS-1"]


# --- the issue page ---------------------------------------------------------------------------


def test_the_link_a_notification_carries_opens_the_issue_page(
    full: TestClient, issues: None, sessions: sessionmaker[Session]
) -> None:
    """The `#` key is URL-encoded in the message's link and decoded by the issue route."""
    with sessions() as s:
        row = s.scalars(select(OutboxMessage)).first()
        assert row is not None
        message = Notification.model_validate(row.payload)
    message = message.model_copy(update={"issue": message.issue.model_copy(update={
        "key": HASH_KEY, "source": "github", "id": "acme/app#42"})})  # fmt: skip
    link = Renderer(public_url="https://esc.example.com").context(message)["escalator_url"]
    assert link == "https://esc.example.com/issues/github:acme/app%2342"
    page = full.get(urlsplit(link).path)
    assert page.status_code == 200, page.text
    assert "acme/app#42" in page.text and 'id="timeline"' in page.text


def test_issue_page_shows_timeline_deadlines_policy_and_actions(
    full: TestClient, issues: None
) -> None:
    """Timeline entries by kind, the next deadlines, the policy, and the four action forms."""
    page = full.get("/issues/jira:OPS-1").text
    assert re.search(r'<li data-kind="event"', page)
    assert 'id="deadlines"' in page and "escalate" in page
    assert 'id="policy"' in page
    for action in ("acknowledge", "resolve", "escalate", "snooze"):
        form = re.search(rf'<form data-action="{action}" method="post" action="([^"]+)"', page)
        assert form and form.group(1) == f"/issues/jira:OPS-1/actions/{action}"
    assert 'name="until"' in page and 'name="csrf_token"' in page
    assert full.get("/issues/jira:NOPE").status_code == 404
    assert full.get("/console/issue?key=jira:OPS-1").status_code == 200


def test_an_action_puts_an_event_with_its_actor_on_the_stream(
    full: TestClient, issues: None, redis: fakeredis.FakeRedis, apply: Callable[..., None]
) -> None:
    """Acknowledge from the page: an issue.acknowledged event by Ann, shown on the timeline
    once applied."""
    token = csrf_of(full.get("/issues/jira:OPS-1").text)
    response = full.post(
        "/issues/jira:OPS-1/actions/acknowledge",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/issues/jira:OPS-1")
    (event,) = stream_events(redis)
    assert event.type.value == "issue.acknowledged" and event.actor == "Ann"
    apply(event.model_dump_json())
    page = full.get("/issues/jira:OPS-1").text
    assert re.search(r'<li data-kind="event".*?\(by Ann\)', page, re.S)


def test_snooze_takes_a_duration(
    full: TestClient, issues: None, redis: fakeredis.FakeRedis
) -> None:
    """Snooze until `30m` puts issue.snoozed with snooze_until 30 minutes from now."""
    token = csrf_of(full.get("/issues/jira:OPS-1").text)
    full.post(
        "/issues/jira:OPS-1/actions/snooze",
        data={"csrf_token": token, "until": "30m"},
        follow_redirects=False,
    )
    (event,) = stream_events(redis)
    assert event.snooze_until == T0 + minutes(32)


@pytest.mark.parametrize("token", [None, "wrong"])
def test_an_action_without_the_csrf_token_is_refused(
    full: TestClient, issues: None, redis: fakeredis.FakeRedis, token: str | None
) -> None:
    """A missing or wrong CSRF token: 403, and nothing goes on the stream."""
    data = {"csrf_token": token} if token else {}
    response = full.post("/issues/jira:OPS-1/actions/resolve", data=data)
    assert response.status_code == 403
    assert stream_events(redis) == []


def test_a_viewer_sees_no_actions_and_cannot_act(
    make_console: Console, issues: None, redis: fakeredis.FakeRedis
) -> None:
    """The viewer token reads every page but is shown no action form, and acting is 403."""
    client = make_console()
    sign_in(client, VIEWER)
    page = client.get("/issues/jira:OPS-1").text
    assert "data-action=" not in page
    token = csrf_of(page)  # the sign-out form's
    response = client.post("/issues/jira:OPS-1/actions/acknowledge", data={"csrf_token": token})
    assert response.status_code == 403
    assert stream_events(redis) == []


def test_anonymous_viewing(make_console: Console, issues: None) -> None:
    """ESCALATOR_CONSOLE_ANONYMOUS: pages without a session, read-only; off by default."""
    client = make_console(console_anonymous=True)
    page = client.get("/")
    assert page.status_code == 200 and "jira:OPS-1" in page.text
    issue = client.get("/issues/jira:OPS-1").text
    assert "data-action=" not in issue
    assert client.post("/issues/jira:OPS-1/actions/resolve").status_code == 403


# --- on call, operations ----------------------------------------------------------------------


def test_oncall_page_shows_each_tier_and_gaps(full: TestClient, policies: PolicyFile) -> None:
    """Every tier of the policy with who is on call now; tiers reaching nobody are named."""
    page = full.get("/oncall").text
    for tier in policies.tiers:
        assert f'<tr data-tier="{tier.name}"' in page
    gaps = coverage_gaps(policies, T0, 14)
    assert gaps, "the packaged policy routes escalations to log channels only"
    for gap in gaps:
        assert html.escape(gap_text(gap), quote=False) in page
    assert 'id="unreachable"' in full.get("/").text  # the board warns too


def test_operations_lists_and_replays_dead_letters(
    full: TestClient, redis: fakeredis.FakeRedis
) -> None:
    """A dead-lettered entry is listed with a replay form; replaying puts it back on the stream."""
    redis.xadd(DEAD_STREAM, {"event": '{"bad": 1}', "error": "invalid", "failed_at": "now"})
    page = full.get("/operations")
    assert page.status_code == 200
    assert 'data-action="replay"' in page.text and "invalid" in page.text
    assert 'id="engine"' in page.text and 'id="roles"' in page.text  # the snapshot was read
    token = csrf_of(page.text)
    assert full.post("/operations/dead-letters/replay", data={"all": "1"}).status_code == 403
    response = full.post(
        "/operations/dead-letters/replay",
        data={"csrf_token": token, "all": "1"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert redis.xlen(DEAD_STREAM) == 0
    assert [f[STREAM_FIELD] for _, f in entries(redis.xrange(STREAM))] == ['{"bad": 1}']


def test_operations_retries_dead_notifications(
    full: TestClient, issues: None, sessions: sessionmaker[Session]
) -> None:
    """A dead notification is listed with a retry form; retrying makes it pending again."""
    with sessions() as s, s.begin():
        row = s.scalars(select(OutboxMessage)).first()
        assert row is not None
        row.state, row.attempts, row.last_error, dead_id = "dead", 8, "HTTP 500", row.id
    page = full.get("/operations").text
    assert 'data-action="retry"' in page and "HTTP 500" in page
    response = full.post(
        "/operations/notifications/retry",
        data={"csrf_token": csrf_of(page), "id": dead_id},
        follow_redirects=False,
    )
    assert response.status_code == 303
    with sessions() as s:
        again = s.get(OutboxMessage, dead_id)
        assert again is not None and again.state == "pending" and again.attempts == 0


# --- live updates -----------------------------------------------------------------------------


class _Client:
    """A request that disconnects after `after` checks."""

    def __init__(self, after: int) -> None:
        self.left = after

    async def is_disconnected(self) -> bool:
        self.left -= 1
        return self.left < 0


def test_the_stream_sends_a_change_when_an_event_is_applied(
    engine: Engine, issues: None, apply: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One poll reads the marker; an applied event changes it; the stream sends `change`,
    then ends when the client goes."""
    monkeypatch.setattr("worker.gateway.console.live.TICK_S", 0.01)
    changes = Changes(sessionmaker(engine))
    changes.poll()
    before = changes.version
    apply(event_json(issue_id="OPS-77"))

    async def collect() -> list[str]:
        sent: list[str] = []
        stream = events(_Client(after=5), changes)  # type: ignore[arg-type]
        sent.append(await anext(stream))
        changes.poll()  # what the process's one polling thread does each second
        sent.extend([chunk async for chunk in stream])
        return sent

    sent = asyncio.run(collect())
    assert changes.version == before + 1
    assert sent[0].startswith("retry:")
    assert f"event: change\ndata: {changes.version}\n\n" in sent


def test_the_stream_needs_a_session(make_console: Console) -> None:
    """GET /console/stream without a session: 401 (an EventSource does not follow sign-in)."""
    assert make_console().get("/console/stream").status_code == 401


# --- the API docs ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_the_internet(make_console: Console, path: str) -> None:
    """/docs and /redoc name no external URL; every script and stylesheet they load is served."""
    client = make_console()
    page = client.get(path)
    assert page.status_code == 200
    assert "https://" not in page.text and "http://" not in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset


def test_the_management_api_records_its_actor(
    make_console: Console, issues: None, redis: fakeredis.FakeRedis
) -> None:
    """POST /v1/issues/{key}/resolve with X-Escalator-Actor: the event names that actor."""
    client = make_console()
    response = client.post(
        "/v1/issues/github:acme/app%2342/resolve",
        headers={"authorization": f"Bearer {MGMT}", "x-escalator-actor": "pager-bot"},
    )
    assert response.status_code == 202, response.text
    (event,) = stream_events(redis)
    assert event.actor == "pager-bot" and event.issue.id == "acme/app#42"


def test_the_vendored_redoc_fetches_no_logo_from_its_cdn() -> None:
    """ReDoc's footer logo URL points at a packaged blank image (see static/vendor/VERSIONS.txt)."""
    bundle = (STATIC / "vendor" / "redoc.standalone.js").read_text(encoding="utf-8")
    assert "cdn.redoc.ly" not in bundle
    assert "/console/static/vendor/redoc-logo-none.svg" in bundle
    assert (STATIC / "vendor" / "redoc-logo-none.svg").is_file()


def test_a_change_between_rendering_and_streaming_is_sent_at_once(
    engine: Engine, issues: None, apply: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page carries the marker it was rendered at: a stream starting after a later change
    sends `change` at once; one starting at the current marker sends nothing."""
    monkeypatch.setattr("worker.gateway.console.live.TICK_S", 0.01)
    changes = Changes(sessionmaker(engine))
    with sessionmaker(engine)() as s:
        rendered = token_of(views.change_marker(s))
    apply(event_json(issue_id="OPS-78"))  # after the page was rendered, before its stream
    changes.poll()

    async def collect(since: str) -> list[str]:
        return [c async for c in events(_Client(after=3), changes, since)]  # type: ignore[arg-type]

    assert any(c.startswith("event: change") for c in asyncio.run(collect(rendered)))
    assert changes.token is not None
    assert not any(c.startswith("event: change") for c in asyncio.run(collect(changes.token)))


def test_pages_carry_their_change_marker(full: TestClient, issues: None) -> None:
    """The board and the issue page connect to the stream with the marker they show."""
    for path in ("/", "/issues/jira:OPS-1"):
        assert 'sse-connect="/console/stream?since=' in full.get(path).text
