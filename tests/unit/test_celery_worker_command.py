"""`run_worker` runs Celery's `worker` command alone: its exit code kept, and no process loads
Celery's whole command line (its shell and REPL) for nothing."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from worker.broker.celery_app import app, run_worker, worker_argv


class FakeWorker:
    """Stands for `app.Worker`: records its options and ends with a chosen exit code."""

    made: dict[str, Any] = {}  # noqa: RUF012
    exitcode = 3

    def __init__(self, **options: Any) -> None:
        FakeWorker.made = options

    def start(self) -> None:
        pass


def test_the_worker_command_keeps_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "Worker", FakeWorker)
    assert run_worker(worker_argv("escalations", 2, "prefork", "INFO")) == 3
    assert FakeWorker.made["queues"] == ["escalations"]
    assert FakeWorker.made["concurrency"] == 2
    assert FakeWorker.made["hostname"].startswith("escalations@")


def test_only_a_worker_command_line_is_run() -> None:
    with pytest.raises(ValueError, match="not a worker command line"):
        run_worker(["shell"])


def test_the_roles_do_not_load_celerys_command_line() -> None:
    """`celery.bin.celery` loads click_repl and prompt_toolkit (9 MB); no role needs them."""
    code = (
        "import sys, worker.roles.scheduler, worker.roles.ingest, worker.roles.tasks;"
        "print(sorted(m for m in ('celery.bin.celery', 'click_repl', 'prompt_toolkit')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_quiet_leaves_out_the_startup_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    """quiet=True (every log level but DEBUG) reaches Celery's Worker: no banner on stdout."""
    monkeypatch.setattr(app, "Worker", FakeWorker)
    run_worker(worker_argv("outbox", 1, "solo", "INFO"), quiet=True)
    assert FakeWorker.made["quiet"] is True
    run_worker(worker_argv("outbox", 1, "solo", "DEBUG"))
    assert FakeWorker.made["quiet"] is False
