"""The api's GET /metrics: the text format, and every request counted by its route template,
the intake fast path's included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from tests.support import webhooks as wh
from worker.gateway import metrics as m


@pytest.fixture(autouse=True)
def in_memory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh in-memory metrics for the test."""
    monkeypatch.setattr(values, "ValueClass", values.MutexValue)
    monkeypatch.setattr(m, "_directory", None)
    monkeypatch.setattr(m, "_metrics", None)
    yield


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def test_metrics_counts_requests_by_route_fast_path_included(client: TestClient) -> None:
    """A fast-path POST /v1/events, a routed GET and a 404 are each counted under their route
    template (the 404 as `unmatched`); the scrape answers even with no Redis to read state."""
    headers = {"authorization": f"Bearer {wh.TOKEN}"}
    assert client.post("/v1/events", json=wh.issue_event(), headers=headers).status_code == 202
    assert client.get("/v1/issues/gh%3A1", headers=headers).status_code in (200, 404)
    assert client.get("/no/such/page").status_code == 404
    got = samples(client)
    requests = {
        dict(labels)["route"]: value
        for (name, labels), value in got.items()
        if name == "escalator_http_requests_total"
    }
    assert requests["/v1/events"] == 1
    assert requests["unmatched"] == 1
    assert any(route.startswith("/v1/issues/{") for route in requests)
    assert not any("gh" in route or "/no/such" in route for route in requests)
