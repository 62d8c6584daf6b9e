"""`escalator demo` as a newcomer sees it: no traceback, lines in order, 80 columns, true hints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
TIMELINE = re.compile(r"^(\d\d:\d\d:\d\d) +(DEMO-\d) +(\w+) +(.*)$")


def test_demo_output_reads_well_in_80_columns(tmp_path: Path) -> None:
    """Piped to a file at 80 columns: exit 0, no traceback, every line fits, the timeline's
    times never go back, each notification says who was paged where, the hint is true."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
    env["COLUMNS"] = "80"
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli.main", "demo", "--seconds", "90"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Traceback" not in out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    times = [m.group(1) for line in lines if (m := TIMELINE.match(line))]
    assert len(times) >= 10, out
    assert times == sorted(times), "a timeline line came out of order"
    acknowledged = next(line for line in lines if "issue.acknowledged" in line)
    opened = next(line for line in lines if "DEMO-2" in line and "issue.opened" in line)
    assert acknowledged[:8] > opened[:8], "the acknowledgement carries the open time"
    paged = [line for line in lines if " notified " in line]
    assert paged and all("paged " in line and " via log" in line for line in paged), paged
    assert "escalator run" in out and "escalator send" in out
    assert "Data and role logs" not in out, "names a folder that is removed on exit"
    assert not list(tmp_path.iterdir()), "the demo left files in the working directory"
