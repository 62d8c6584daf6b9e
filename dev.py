#!/usr/bin/env python3
"""Everyday commands, on a fresh machine with only Python 3.11 (no make needed).

    python3 dev.py run     # the product on its embedded default (Redis + SQLite under .data/)
    python3 dev.py test    # the whole test suite
    python3 dev.py demo    # watch issues escalate in about a minute
    python3 dev.py lint    # ruff and mypy
    python3 dev.py bench   # the benchmarks in bench/
    python3 dev.py screenshots  # the README's console screenshots (needs chromium)

The first call creates `.venv` and installs Escalator with its test tools; later calls reuse it
and reinstall only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".escalator-installed"
LOG = VENV / "install.log"


def ensure_env() -> None:
    """Create .venv and install the project (editable, with test extras) when needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 (this script may be started by an older python)
        sys.exit(f"Escalator needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    fresh = not (BIN / "python").exists()
    if fresh:
        print("[1/3] creating .venv (a few seconds) ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != digest:
        started = time.monotonic()
        print("[2/3] upgrading pip ...", flush=True)
        pip_install(["--upgrade", "pip"])
        took = "about 2 minutes on a fresh machine" if fresh else "usually under a minute"
        print(f"[3/3] installing Escalator and ~100 packages ({took}) ...", flush=True)
        pip_install(["-e", f"{ROOT}[test]"])
        print(f"ready in {time.monotonic() - started:.0f} s; pip's output: {LOG}", flush=True)
        STAMP.write_text(digest)


def pip_install(args: list[str]) -> None:
    """Run `pip install ARGS`, one progress line per package it collects and one per phase
    (pip's whole output goes to .venv/install.log, shown if it fails)."""
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "install"]
    tty = sys.stdout.isatty()
    count, open_line = 0, False  # on a terminal, the package count rewrites one line
    with LOG.open("a") as log:
        process = subprocess.Popen(
            [*pip, "--progress-bar", "off", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            words = line.split()
            if line.startswith(("Collecting ", "Processing ")) and len(words) > 1:
                count += 1  # a package from an index, or a wheel file (its name before "-")
                shown = f"      {count:>3} collected: {Path(words[1]).name.split('-')[0]}"
                print(f"\r{shown:<72}" if tty else shown, end="" if tty else "\n", flush=True)
                open_line = tty
            elif line.startswith("Installing collected packages"):
                print(("\n" if open_line else "") + f"      installing {count} packages ...")
                open_line = False
        code = process.wait()
    if open_line:
        print()
    if code:
        print(LOG.read_text()[-4000:], file=sys.stderr)
        sys.exit(f"pip failed (exit {code}); its whole output is in {LOG}")


def main(argv: list[str]) -> int:
    commands = {
        "run": [str(BIN / "escalator"), "run"],
        "demo": [str(BIN / "escalator"), "demo"],
        "test": [str(BIN / "python"), "-m", "pytest"],
        "lint": None,
        "bench": [str(BIN / "python"), str(ROOT / "bench" / "run_all.py")],
        "screenshots": [str(BIN / "python"), str(ROOT / "docs" / "screenshots" / "make.py")],
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    ensure_env()
    name, extra = argv[0], argv[1:]
    os.chdir(ROOT)
    if name == "lint":
        steps = (
            ["ruff", "check", "."],
            ["ruff", "format", "--check", "."],
            ["mypy", "worker", "schemas", "config", "tests"],
        )
        for step in steps:
            code = subprocess.call([str(BIN / step[0]), *step[1:]])
            if code:
                return code
        return 0
    command = commands[name]
    assert command is not None
    return run_child([*command, *extra])


def run_child(argv: list[str]) -> int:
    """Run a command; Ctrl-C or SIGTERM is passed on to it and we wait for it to stop cleanly
    (a second signal is harmless to Escalator's roles), instead of dying mid-wait."""
    child = subprocess.Popen(argv)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
