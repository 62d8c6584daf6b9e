"""The web console in a real headless Chromium, against every real role (see conftest.py)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.support.console import ADMIN_TOKEN, VIEWER_TOKEN, WAIT_MS, WAITING, Console
from worker.broker.keys import STREAM

pytestmark = [pytest.mark.browser, pytest.mark.integration]
expect.set_options(timeout=WAIT_MS)

UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
LOCAL_HOSTS = {"127.0.0.1"}


def sign_in(page: Page, token: str = ADMIN_TOKEN, name: str = "") -> None:
    """Fill the sign-in form of the page (at /login) and wait until it has left it."""
    form = page.locator("form#signin")
    form.locator("input[name=token]").fill(token)
    if name:
        form.locator("input[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: urlsplit(url).path != "/login")


def sign_in_at(page: Page, path: str = "/", token: str = ADMIN_TOKEN, name: str = "") -> None:
    """Open /login, sign in, then go to `path`."""
    page.goto("/login")
    sign_in(page, token, name)
    if urlsplit(page.url).path != path:
        page.goto(path)


def seconds(countdown: str) -> int:
    """`4m 12s left` → 252, `3s over` → -3 (what the board's countdowns say)."""
    total = sum(int(n) * UNIT_S[u] for n, u in re.findall(r"(\d+)\s*([dhms])\b", countdown))
    assert total or "0s" in countdown, f"not a countdown: {countdown!r}"
    return -total if "over" in countdown else total


def row(page: Page, key: str) -> Locator:
    """The board's row of the issue `key`."""
    return page.locator(f'tbody#board-body tr[data-issue="{key}"]')


def no_horizontal_scroll(page: Page) -> bool:
    """Whether the page is no wider than its viewport."""
    return bool(
        page.evaluate(
            "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " <= window.innerWidth"
        )
    )


def test_sign_in_with_the_token_opens_the_board_and_sign_out_closes_it(
    page: Page, console: Console
) -> None:
    """Without a session a page is a 303 to sign-in; the token signs you in with an HttpOnly,
    SameSite=Lax cookie and you land on the board, with the menu; signing out ends it."""
    closed = page.request.get("/issues/test:NOPE", max_redirects=0)
    assert closed.status == 303
    assert closed.headers["location"].startswith("/login?next=")
    page.goto("/")
    assert urlsplit(page.url).path == "/login"  # (the link test follows a `next` back)
    expect(page.locator("form#signin input[name=token]")).to_have_attribute("type", "password")
    sign_in(page)
    assert urlsplit(page.url).path == "/"
    expect(page.locator("table#board")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "escalator_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    links = page.locator("nav#menu a").evaluate_all("links => links.map(a => a.pathname)")
    assert {"/", "/oncall", "/operations", "/docs"} <= set(links)
    for path in ("/oncall", "/operations"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 200, path
        expect(page.locator("nav#menu")).to_be_visible()
    page.goto("/")
    page.locator('form[action="/logout"] button[type=submit]').click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/login")
    page.goto("/")
    assert urlsplit(page.url).path == "/login"


def test_a_wrong_token_is_refused(page: Page, console: Console) -> None:
    """A wrong token gets a 401 page that says so, and no session: the board stays closed."""
    page.goto("/login")
    page.locator("form#signin input[name=token]").fill("not-the-token")
    with page.expect_response(
        lambda r: urlsplit(r.url).path == "/login" and r.request.method == "POST"
    ) as answer:
        page.locator("form#signin button[type=submit]").click()
    assert answer.value.status == 401
    expect(page.locator(".error")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "escalator_session"]
    page.goto("/")
    assert urlsplit(page.url).path == "/login"


def test_a_new_issue_appears_without_a_reload_and_its_countdown_falls(
    page: Page, console: Console
) -> None:
    """An issue sent to the stream shows up on an open board by itself (Server-Sent Events, the
    page never reloads), its acknowledge countdown counts down, and its resolve clock shows
    paused once the issue waits on the customer."""
    sign_in_at(page, "/")
    expect(page.locator("table#board")).to_be_visible()
    page.evaluate("() => { window.__sameDocument = true; }")
    key = "test:BR-LIVE"
    console.send("issue.opened", "BR-LIVE", severity="P1")
    expect(row(page, key)).to_be_visible()
    assert page.evaluate("() => window.__sameDocument === true"), "the board reloaded"
    selector = f'tr[data-issue="{key}"] span.countdown[data-target="acknowledge"]'
    clock = page.locator(selector)
    expect(clock).to_have_attribute("data-due", re.compile(r"^\d{4}-\d\d-\d\dT"))
    first = clock.inner_text()
    page.wait_for_function(  # the selector, not a handle: a live re-render replaces the row
        "([sel, text]) => { const el = document.querySelector(sel);"
        " return el !== null && el.textContent.trim() !== text.trim(); }",
        arg=[selector, first],
        timeout=WAIT_MS,
    )
    second = clock.inner_text()
    assert seconds(second) < seconds(first), (first, second)
    assert "left" in first
    console.send("issue.status_changed", "BR-LIVE", severity="P1", status=WAITING)
    resolve = page.locator(f'tr[data-issue="{key}"] span.countdown[data-target="resolve"]')
    expect(resolve).to_have_attribute("data-paused", "1")  # live, still no reload
    expect(resolve).to_have_text(re.compile("paused"))
    assert page.evaluate("() => window.__sameDocument === true"), "the board reloaded"


def test_the_filters_narrow_the_board_and_live_updates_keep_them(
    page: Page, console: Console
) -> None:
    """Filtering by severity shows only those issues, and the live re-render that brings a new
    matching issue still leaves the others out."""
    console.open_issue("BR-FILTER-P2", severity="P2")
    console.open_issue("BR-FILTER-P4", severity="P4")
    sign_in_at(page, "/")
    filters = page.locator("form#filters")
    for name in ("source", "severity", "tier", "policy"):
        expect(filters.locator(f"select[name={name}]")).to_have_count(1)
    expect(filters.locator("input[type=checkbox][name=breached]")).to_have_count(1)
    filters.locator("select[name=severity]").select_option("P4")
    if "severity=P4" not in page.url:  # no script submitted it on change
        filters.locator("[type=submit]").click()
    page.wait_for_url(lambda url: "severity=P4" in url)
    expect(row(page, "test:BR-FILTER-P4")).to_be_visible()
    expect(row(page, "test:BR-FILTER-P2")).to_have_count(0)
    console.send("issue.opened", "BR-FILTER-LATE-P2", severity="P2")
    console.send("issue.opened", "BR-FILTER-LATE-P4", severity="P4")
    expect(row(page, "test:BR-FILTER-LATE-P4")).to_be_visible()
    keys = page.locator("tbody#board-body tr[data-issue]").evaluate_all(
        "rows => rows.map(r => r.dataset.issue)"
    )
    severities = {
        k: getattr(console.stack.issue(k.split(":", 1)[1]), "severity", None) for k in keys
    }
    assert set(severities.values()) == {"P4"}, severities


def test_the_link_a_notification_carried_opens_the_issue_to_acknowledge_it(
    page: Page, console: Console
) -> None:
    """The link in the message a person got leads (through sign-in) to the issue page; the
    acknowledgement made there appears on its timeline with who did it, and on the board."""
    key = console.open_issue("BR-ACK", severity="P1", title="Checkout fails for EU cards")
    link = console.link_for(key)
    assert link == f"{console.url}/issues/{key}"
    page.goto(link)
    assert urlsplit(page.url).path == "/login" and "next=" in urlsplit(page.url).query
    sign_in(page, name="dana")
    assert urlsplit(page.url).path == urlsplit(link).path
    expect(page.locator("ol#timeline li[data-kind]").first).to_be_visible()
    expect(page.locator("section#deadlines")).to_be_visible()

    board = page.context.new_page()
    board.goto("/")
    board_row = row(board, key)
    expect(board_row).to_be_visible()
    href = board_row.locator("a.issue-link").get_attribute("href")
    assert href is not None and unquote(href) == f"/issues/{key}", href
    expect(
        board.locator(f'tr[data-issue="{key}"] span.countdown[data-target="acknowledge"][data-due]')
    ).to_have_count(1)

    for action in ("acknowledge", "resolve", "escalate", "snooze"):
        form = page.locator(f'form[data-action="{action}"]')
        expect(form.locator("input[name=csrf_token]")).to_have_count(1)
        expect(form.locator("button[type=submit]")).to_have_count(1)
        assert form.get_attribute("method", timeout=WAIT_MS) in ("post", "POST"), action
        assert unquote(form.get_attribute("action") or "") == f"/issues/{key}/actions/{action}"
    expect(page.locator('form[data-action="snooze"] input[name=until]')).to_have_count(1)
    acknowledge = page.locator('form[data-action="acknowledge"]')
    expect(acknowledge.locator("input[name=csrf_token]")).to_have_count(1)
    acknowledge.locator("button[type=submit]").click()
    entry = page.locator('ol#timeline li[data-kind="event"]', has_text="acknowledged")
    expect(entry).to_contain_text("dana")
    console.stack.wait_for(
        lambda: (issue := console.stack.issue("BR-ACK")) and issue.lifecycle == "acknowledged",
        30,
        "the acknowledgement to be applied",
    )
    running = f'tr[data-issue="{key}"] span.countdown[data-target="acknowledge"][data-due]'
    expect(board.locator(running)).to_have_count(0)  # its acknowledge clock stopped, live
    expect(board_row).to_be_visible()  # still open: it waits to be resolved


def test_an_action_without_or_with_a_wrong_csrf_token_is_refused(
    page: Page, console: Console
) -> None:
    """A signed-in POST to an action (or to sign out) with no CSRF token, or a forged one, is a
    403 and puts nothing on the stream; the same POST with the page's token acts."""
    key = console.open_issue("BR-CSRF", severity="P2")
    sign_in_at(page, f"/issues/{key}")
    expect(page.locator('form[data-action="acknowledge"]')).to_have_count(1)
    last = console.stack.redis.xrevrange(STREAM, count=1) or []
    after = "(" + str(last[0][0]) if last else "-"
    action = f"/issues/{key}/actions/acknowledge"
    assert page.request.post(action, max_redirects=0).status == 403
    forged = page.request.post(action, form={"csrf_token": "forged"}, max_redirects=0)
    assert forged.status == 403
    assert page.request.post("/logout", max_redirects=0).status == 403
    sent = console.stack.redis.xrange(STREAM, min=after) or []
    assert not [e for e in sent if "BR-CSRF" in str(e)], sent
    form = page.locator('form[data-action="acknowledge"] input[name=csrf_token]')
    real = page.request.post(action, form={"csrf_token": form.input_value()}, max_redirects=0)
    assert real.status in (200, 202, 204, 303), real.status  # the same POST, with the token
    console.stack.wait_for(
        lambda: getattr(console.stack.issue("BR-CSRF"), "lifecycle", "") == "acknowledged",
        30,
        "the acknowledgement with the right token to apply",
    )


def test_a_viewer_sees_no_actions_and_cannot_act(page: Page, console: Console) -> None:
    """The read-only viewer token shows the issue but no action forms, and its POSTs are 403."""
    key = console.open_issue("BR-VIEW", severity="P3")
    sign_in_at(page, f"/issues/{key}", token=VIEWER_TOKEN)
    expect(page.locator("ol#timeline")).to_be_visible()
    expect(page.locator("form[data-action]")).to_have_count(0)
    csrf = page.locator("input[name=csrf_token]")
    token = csrf.first.input_value() if csrf.count() else ""
    answer = page.request.post(
        f"/issues/{key}/actions/acknowledge", form={"csrf_token": token}, max_redirects=0
    )
    assert answer.status == 403
    page.goto("/operations")
    expect(page.locator("form[data-action]")).to_have_count(0)


def test_docs_and_redoc_render_without_leaving_the_machine(page: Page, console: Console) -> None:
    """Swagger UI at /docs and ReDoc at /redoc render from packaged assets: every request the
    page makes goes to 127.0.0.1 (each one is intercepted; any other host fails the test)."""
    outside: list[str] = []

    def guard(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)
    sign_in_at(page, "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Escalator")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    page.goto("/redoc")
    expect(page.locator(".redoc-wrap")).to_be_visible()
    expect(page.get_by_text("Escalator").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert not outside, f"requests left 127.0.0.1: {outside}"


def test_the_board_and_an_issue_fit_a_phone(phone: Page, console: Console) -> None:
    """At 390x844 the board and the issue page a chat link opens scroll only vertically."""
    key = console.open_issue(
        "BR-PHONE-with-a-long-identifier",
        severity="P1",
        title="Payments API returns 502 for every card payment in the EU region since 09:12",
    )
    sign_in_at(phone, "/")
    expect(row(phone, key)).to_be_visible()
    assert no_horizontal_scroll(phone), "the board scrolls sideways on a phone"
    phone.goto(f"/issues/{key}")
    expect(phone.locator("ol#timeline")).to_be_visible()
    assert no_horizontal_scroll(phone), "the issue page scrolls sideways on a phone"


def test_the_reports_page_draws_its_charts(page: Page, console: Console) -> None:
    """/reports (from the menu) shows the period's figures and its charts as inline SVG, with
    the lines or bars of an issue opened and resolved just now, and CSV links."""
    console.open_issue("BR-REPORT", severity="P2")
    console.send("issue.resolved", "BR-REPORT", severity="P2")
    console.stack.wait_for(
        lambda: getattr(console.stack.issue("BR-REPORT"), "lifecycle", "") == "resolved",
        30,
        "BR-REPORT to be resolved",
    )
    sign_in_at(page, "/")
    page.locator('nav#menu a[href="/reports"]').click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/reports")
    expect(page.locator("svg.chart")).to_have_count(8)
    expect(page.locator("#chart-ended svg.chart rect.bar").first).to_be_visible()
    expect(page.locator("#chart-mttr-over-time svg.chart circle").first).to_be_attached()
    expect(page.locator('[data-figure="mttr_s"]')).not_to_have_text("—")
    expect(page.locator('#export a[data-section="targets"]')).to_have_count(1)
    page.locator("#report-form select[name=by]").select_option("week")
    page.locator("#report-form button[type=submit]").click()
    page.wait_for_url(lambda url: "by=week" in url)
    expect(page.locator("svg.chart")).to_have_count(8)


def test_a_note_on_a_resolved_issue_appears_on_its_timeline(page: Page, console: Console) -> None:
    """On a resolved issue the note form takes a text; it is on the timeline, with the name
    given at sign-in, when the page comes back."""
    key = console.open_issue("BR-NOTE", severity="P3")
    console.send("issue.resolved", "BR-NOTE", severity="P3")
    console.stack.wait_for(
        lambda: getattr(console.stack.issue("BR-NOTE"), "lifecycle", "") == "resolved",
        30,
        "BR-NOTE to be resolved",
    )
    sign_in_at(page, f"/issues/{key}", name="erin")
    form = page.locator('form[data-action="note"]')
    expect(form.locator("input[name=csrf_token]")).to_have_count(1)
    form.locator("textarea[name=text]").fill("root cause: <expired> certificate\nrenewed by hand")
    form.locator("button[type=submit]").click()
    note = page.locator('ol#timeline li[data-kind="note"]')
    expect(note).to_contain_text("root cause: <expired> certificate")
    expect(note).to_contain_text("erin")
    expect(page.locator("p.notice")).to_contain_text("Note added")
