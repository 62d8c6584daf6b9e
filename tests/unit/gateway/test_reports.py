"""SLA reports and notes over HTTP, on the hand-worked data set (tests/support/report_month.py):
`GET /v1/reports/sla` (JSON, CSV), `POST /v1/issues/{key}/notes`, the console's Reports page
(its charts well-formed SVG, its CSV links the service's figures) and the issue page's note form."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from config.settings import Settings
from tests.support.report_month import SINCE, UNTIL, fill
from worker.domain.clock import ManualClock
from worker.gateway import create_app
from worker.services.reports import Asked, as_csv, sla_report

MGMT, VIEWER = "mgmt-token", "viewer-token"
BEARER = {"Authorization": f"Bearer {MGMT}"}
PERIOD = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
SVG = "{http://www.w3.org/2000/svg}"
Client = Callable[..., TestClient]


@pytest.fixture
def month(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The hand-worked data set in the unit test's SQLite file."""
    return fill(sessions)


@pytest.fixture
def make_client(
    tmp_path: Path, server: fakeredis.FakeServer, engine: Engine, month: object
) -> Iterator[Client]:
    """The gateway (API and console) over the data set, its clock at the period's end."""
    clients: list[TestClient] = []

    def _make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {"_env_file": None, "data_dir": tmp_path,
                                  "management_token": MGMT, "viewer_token": VIEWER}  # fmt: skip
        values.update(overrides)
        app = create_app(
            Settings(**values),
            lambda: fakeredis.FakeAsyncRedis(server=server, decode_responses=True),
            engine,
            ManualClock(UNTIL),
        )
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Client) -> TestClient:
    """The gateway with nobody signed in."""
    return make_client()


def signed_in(client: TestClient, token: str = MGMT, name: str = "Ann") -> TestClient:
    response = client.post("/login", data={"token": token, "name": name}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def service_csv(month: sessionmaker[Session], section: str, by: tuple[str, ...] = ()) -> str:
    return as_csv(sla_report(month, Asked(SINCE, UNTIL, by, "UTC")), section)


def test_the_api_report_needs_a_token(client: TestClient) -> None:
    """GET /v1/reports/sla without a bearer, or with a wrong one, is a 401 problem."""
    assert client.get("/v1/reports/sla").status_code == 401
    wrong = client.get("/v1/reports/sla", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")


def test_the_api_report_as_json_has_the_hand_worked_figures(client: TestClient) -> None:
    """JSON: every table with the hand-worked MTTA, MTTR and breaches, and the notes list."""
    body = client.get("/v1/reports/sla", params=PERIOD, headers=BEARER).json()
    [cycles] = body["cycles"]
    assert (cycles["cycles"], cycles["mtta_s"], cycles["mttr_s"]) == (5, 384, 20250)
    [ack] = [r for r in body["targets"] if r["target"] == "acknowledge"]
    assert (ack["clocks"], ack["breached"], ack["breach_rate"]) == (5, 1, 0.2)
    assert body["notes"] == [] and body["tz"] == "UTC"


@pytest.mark.parametrize("how", ["format", "accept"])
def test_the_api_report_as_csv_is_the_services_table(
    client: TestClient, month: sessionmaker[Session], how: str
) -> None:
    """CSV (by `format=csv` or `Accept: text/csv`) is the service's table, byte for byte."""
    params = {**PERIOD, "section": "cycles", "by": "severity"}
    headers = dict(BEARER)
    if how == "format":
        params["format"] = "csv"
    else:
        headers["Accept"] = "text/csv"
    answer = client.get("/v1/reports/sla", params=params, headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text == service_csv(month, "cycles", ("severity",))


def test_the_api_report_refuses_bad_input_with_422(client: TestClient) -> None:
    """An unknown group, zone or section, or an empty period, is a 422 naming the problem."""
    for params, says in (
        ({"by": "colour"}, "cannot group by 'colour'"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"format": "csv", "section": "nope"}, "no section 'nope'"),
        ({"since": "2024-03-05", "until": "2024-03-04"}, "the period is empty"),
    ):
        answer = client.get("/v1/reports/sla", params=params, headers=BEARER)
        assert answer.status_code == 422, params
        assert says in answer.json()["detail"]


def test_the_api_writes_a_note_on_a_resolved_issue_only(
    client: TestClient, month: sessionmaker[Session]
) -> None:
    """201 with the note (author from X-Escalator-Actor), 409 on an open issue, 404 on an
    unknown one, 422 on an empty note, 401 without a token; the note is listed in the report."""
    url = "/v1/issues/jira:B/notes"
    headers = {**BEARER, "X-Escalator-Actor": "ann"}
    made = client.post(url, json={"text": "root cause: L1 pager muted"}, headers=headers)
    assert made.status_code == 201, made.text
    assert (made.json()["author"], made.json()["issue"]) == ("ann", "jira:B")
    for key, status in (("jira:D", 409), ("jira:NOPE", 404)):
        answer = client.post(f"/v1/issues/{key}/notes", json={"text": "x"}, headers=BEARER)
        assert answer.status_code == status, key
    for empty in ("", "   "):
        assert client.post(url, json={"text": empty}, headers=BEARER).status_code == 422
    assert client.post(url, json={"text": "x"}).status_code == 401
    body = client.get("/v1/reports/sla", params=PERIOD, headers=BEARER).json()
    assert [(n["issue"], n["text"]) for n in body["notes"]] == [
        ("jira:B", "root cause: L1 pager muted")
    ]


def test_the_reports_page_draws_the_hand_worked_figures(client: TestClient) -> None:
    """The page shows the period's breach rate, MTTA and MTTR, and each chart is one
    well-formed SVG (parsed as XML) with lines or bars in it."""
    page = signed_in(client).get("/reports", params={**PERIOD, "by": "day"})
    assert page.status_code == 200, page.text
    text = page.text
    assert 'href="/reports" aria-current="page"' in text
    figure = dict(re.findall(r'data-figure="(\w+)">([^<]*)<', text))
    assert figure["breach_rate"] == "10.0%"  # 1 breached of 10 clocks (5 acknowledge, 5 resolve)
    assert (figure["mtta_s"], figure["mttr_s"]) == ("6m 24s", "5h 37m")  # 384 s, 20250 s
    svgs = re.findall(r"<svg\b.*?</svg>", text, flags=re.DOTALL)
    assert len(svgs) == 8
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG}svg" and root.find(f"{SVG}title") is not None
    over_time = ET.fromstring(svgs[0])
    assert [e.text for e in over_time.iter(f"{SVG}text") if e.get("class") == "axis"][-3:] == [
        "03-04", "03-05", "03-06"
    ]  # fmt: skip
    ended = ET.fromstring(svgs[3])  # the tiers issues end at: L1 3, L2 1
    tips = [t.text for t in ended.iter(f"{SVG}title")]
    assert "ended at · L1: 3" in tips and "ended at · L2: 1" in tips


def test_the_reports_csv_links_give_the_services_figures(
    client: TestClient, month: sessionmaker[Session]
) -> None:
    """Each CSV link of the page answers the service's table for the page's period and
    grouping, the same as the API's `format=csv` with the same query."""
    text = signed_in(client).get("/reports", params={**PERIOD, "by": "week"}).text
    links = dict(re.findall(r'<a href="([^"]+)" data-section="(\w+)"', text))
    by_section = {section: html.unescape(href) for href, section in links.items()}
    assert set(by_section) == {"targets", "cycles", "tiers", "notifications", "lateness"}
    for section in ("targets", "cycles", "tiers"):
        answer = client.get(by_section[section])
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.text == service_csv(month, section, ("week",))
        query = urlsplit(by_section[section]).query
        api = client.get(f"/v1/reports/sla?{query}&format=csv", headers=BEARER)
        assert api.text == answer.text


def test_the_reports_page_says_what_is_wrong_with_the_form(client: TestClient) -> None:
    """A bad zone or period is shown on the page (422) with the form kept as typed."""
    page = signed_in(client).get("/reports", params={"tz": "Mars/Olympus"})
    assert page.status_code == 422
    assert "unknown time zone" in page.text and 'value="Mars/Olympus"' in page.text
    assert signed_in(client).get("/reports", params={"by": "year"}).status_code == 422


def test_a_viewer_sees_the_reports_and_anonymous_visitors_sign_in(make_client: Client) -> None:
    """The viewer token may read the Reports page and its CSV; without a session it is the
    sign-in page."""
    anonymous = make_client()
    assert anonymous.get("/reports", follow_redirects=False).status_code == 303
    viewer = signed_in(make_client(), VIEWER)
    assert viewer.get("/reports", params=PERIOD).status_code == 200
    assert viewer.get("/reports/sla.csv", params=PERIOD).status_code == 200


def test_the_note_form_writes_on_the_timeline(
    client: TestClient, month: sessionmaker[Session]
) -> None:
    """On a resolved issue the page has the note form; posting it puts the note, with the
    signed-in name, on the timeline, and the Reports page lists it (B breached)."""
    signed_in(client, name="dana")
    page = client.get("/issues/jira:B").text
    assert 'data-action="note"' in page and 'name="text"' in page
    posted = client.post(
        "/issues/jira:B/notes",
        data={"csrf_token": csrf_of(page), "text": "root cause: <b>muted</b> pager"},
        follow_redirects=False,
    )
    assert posted.status_code == 303
    after = client.get(posted.headers["location"]).text
    assert "Note added to the timeline." in after
    note = re.search(r'<li data-kind="note".*?</li>', after, flags=re.DOTALL)
    assert note is not None
    assert "root cause: &lt;b&gt;muted&lt;/b&gt; pager" in note.group(0)
    assert "by dana" in note.group(0)
    listed = client.get("/reports", params=PERIOD).text
    assert 'data-issue="jira:B"' in listed and "&lt;b&gt;muted" in listed


def test_the_note_form_is_for_resolved_issues_and_full_access(make_client: Client) -> None:
    """No form on an open issue and a 409 if posted; without the CSRF token 403; a viewer
    sees no form and is refused with 403; nothing is written."""
    full = signed_in(make_client())
    open_page = full.get("/issues/jira:D").text
    assert 'data-action="note"' not in open_page
    token = csrf_of(open_page)
    refused = full.post("/issues/jira:D/notes", data={"csrf_token": token, "text": "early"})
    assert refused.status_code == 409
    assert full.post("/issues/jira:B/notes", data={"text": "no token"}).status_code == 403
    viewer = signed_in(make_client(), VIEWER)
    page = viewer.get("/issues/jira:B").text
    assert 'data-action="note"' not in page
    answer = viewer.post("/issues/jira:B/notes", data={"csrf_token": csrf_of(page), "text": "x"})
    assert answer.status_code == 403
    for key in ("jira:B", "jira:D"):
        assert 'data-kind="note"' not in full.get(f"/issues/{key}").text
