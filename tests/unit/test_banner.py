"""What `escalator run` prints once every role is ready (worker/roles/banner.py)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import fakeredis
import pytest

from config.settings import Settings
from worker.broker.heartbeats import ROLES, beat
from worker.roles import banner


def test_banner_says_how_to_turn_http_ingest_on(tmp_path: Path) -> None:
    """No token, no source: the banner names every variable that turns ingest and the API on."""
    text = "\n".join(banner.lines(Settings(_env_file=None, data_dir=tmp_path), 3.2))
    assert "every role ready in 3.2 s" in text
    assert "HTTP ingest is off" in text and "escalator send" in text
    assert "ESCALATOR_API_TOKEN" in text and "ESCALATOR_SOURCES" in text
    assert "ESCALATOR_MANAGEMENT_TOKEN" in text
    assert "http://127.0.0.1:8080/metrics" in text and str(tmp_path.resolve()) in text
    assert "Ctrl-C" in text


def test_banner_lists_the_served_sources(tmp_path: Path) -> None:
    """With the API token and a github source: ingest is on, with its URLs."""
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        api_token="t0ken",
        sources={"github": {"secrets": ["s3cret"]}},
    )
    text = "\n".join(banner.lines(settings, 1.0))
    assert "HTTP ingest on: POST http://127.0.0.1:8080/v1/events" in text
    assert "/v1/webhooks/github" in text and "/v1/webhooks/jira" not in text
    assert "t0ken" not in text and "s3cret" not in text


def test_announce_waits_for_a_beat_of_every_role_of_this_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Beats of an earlier run do not count; the banner comes once each role of this run beat."""
    redis = fakeredis.FakeRedis(decode_responses=True)
    monkeypatch.setattr(banner, "connect", lambda _url: redis)
    monkeypatch.setattr(redis, "close", lambda: None)  # `with connect(...)` closes it each poll
    started = time.time()
    for role in ROLES:
        beat(redis, role, "host:1", started=started - 3600)  # an earlier run's, not dead yet
    out, stop = io.StringIO(), threading.Event()
    thread = threading.Thread(
        target=banner.announce, args=(Settings(_env_file=None), "unused", stop, out, started)
    )
    thread.start()
    try:
        time.sleep(0.5)
        assert out.getvalue() == ""
        for role in ROLES:
            beat(redis, role, "host:2", started=started + 1)
        thread.join(10)
        assert "Escalator is running: every role ready" in out.getvalue()
    finally:
        stop.set()
        thread.join()
