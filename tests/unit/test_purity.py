"""The domain core is pure: importing it loads no infrastructure library (STYLE.md rule 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("redis", "sqlalchemy", "celery", "kombu", "fastapi", "httpx")
PROBE = """
import json, sys
import worker.domain.sla, worker.domain.events
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps(loaded))
"""


def loaded_top_level_modules() -> set[str]:
    """Top-level modules a fresh interpreter holds after importing the domain core."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    """The modules loaded by the probe (one subprocess for the whole file)."""
    return loaded_top_level_modules()


def test_probe_really_imported_the_domain(loaded: set[str]) -> None:
    """The probe saw the domain package and its schemas, so an empty answer cannot pass."""
    assert {"worker", "schemas", "pydantic"} <= loaded


@pytest.mark.parametrize("library", FORBIDDEN)
def test_domain_core_does_not_import(loaded: set[str], library: str) -> None:
    """worker.domain.sla and worker.domain.events load none of the infrastructure libraries."""
    assert library not in loaded
