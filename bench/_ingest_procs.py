"""What `ingest_scaling.py` runs and measures beside the product: a private redis-server on a
free TCP port, `escalator ingest` role processes, and CPU time read from /proc.

Nothing here imports the product: the roles are processes of the checkout, configured through
`ESCALATOR_*` variables, and the figures come from /proc, Redis and PostgreSQL's
`pg_stat_activity`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- CPU time from /proc ----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process (all its threads), in seconds; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children of all its threads, recursively)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants."""
    return sum(cpu_seconds(p) or 0.0 for p in [pid, *descendants(pid)])


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


# --- a private redis-server -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A private `redis-server` on a free TCP port of 127.0.0.1 (never 6379), configured as
    compose runs it (AOF everysec, noeviction), its files in `folder`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        for _ in range(5):  # the port may be taken between free_port() and the bind
            port = free_port()
            if port == 6379:
                continue
            if self._start(port):
                self.port = port
                self.url = f"redis://127.0.0.1:{port}/0"
                self.client = Redis(host="127.0.0.1", port=port, decode_responses=True)
                return
        raise SystemExit(f"redis-server did not start; see {folder}/redis.log")

    def _start(self, port: int) -> bool:
        conf = self.folder / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f'dir "{self.folder}"',
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "maxmemory-policy noeviction",
                    f'logfile "{self.folder / "redis.log"}"',
                    "",
                ]
            )
        )
        binary = os.environ.get("REDIS_SERVER") or "redis-server"
        self.proc = subprocess.Popen(
            [binary, str(conf)], stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with Redis(host="127.0.0.1", port=port, socket_timeout=1) as client:
                    client.ping()
                return True
            except Exception:
                time.sleep(0.05)
        self._kill()
        return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self._kill()


# --- the ingest role processes ----------------------------------------------------------------


def role_command() -> list[str]:
    """The checkout's `escalator` entry point in this venv, else `python -m worker.cli.main`."""
    entry = Path(sys.executable).parent / "escalator"
    if entry.exists():
        return [str(entry)]
    return [sys.executable, "-m", "worker.cli.main"]


def role_env(root: Path, values: dict[str, str]) -> dict[str, str]:
    """This environment without any ESCALATOR_* or PG* variable, the checkout first on
    PYTHONPATH, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCALATOR_", "PG", "PYTHON"))}
    env["PYTHONPATH"] = str(root)
    env.update(values)
    return env


def probe(tree: Path, env: dict[str, str]) -> str:
    """Where the roles' `worker` package comes from; refuses a tree they would not run."""
    out = subprocess.run(
        [sys.executable, "-c", "import worker; print(worker.__file__)"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise SystemExit(f"cannot import worker from {tree}:\n{out.stderr[-3000:]}")
    found = out.stdout.strip().splitlines()[-1]
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"{tree}: its roles would import worker from {found}")
    return found


def migrate(env: dict[str, str], folder: Path) -> None:
    """`escalator db upgrade` of the tree under test, on the database in `env`."""
    out = subprocess.run(
        [*role_command(), "db", "upgrade"],
        env=env,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise SystemExit(f"escalator db upgrade failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")


def create_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()


@dataclass
class Role:
    proc: subprocess.Popen[bytes]
    log: Path
    started: float  # monotonic
    joined: float | None = None  # monotonic, when it first showed up in the consumer group
    cpu_at_join: float = 0.0
    cpu_at_end: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Roles:
    """P `escalator ingest` processes, each in a session of its own (Ctrl-C in the terminal
    reaches only the benchmark, which then stops them)."""

    folder: Path
    env: dict[str, str]
    roles: list[Role] = field(default_factory=list)

    def spawn(self, count: int) -> None:
        command = [*role_command(), "ingest"]
        for i in range(count):
            log = self.folder / f"ingest-{i + 1}.log"
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    command,
                    env=self.env,
                    cwd=self.folder,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.roles.append(Role(proc, log, time.monotonic()))

    def note_joined(self, consumer_names: list[str]) -> None:
        """Consumers are named `host-pid`: mark the roles that joined, with their CPU then."""
        pids = set()
        for name in consumer_names:
            with contextlib.suppress(ValueError):
                pids.add(int(name.rsplit("-", 1)[-1]))
        now = time.monotonic()
        for role in self.roles:
            if role.joined is None and role.pid in pids:
                role.joined = now
                role.cpu_at_join = tree_cpu(role.pid)

    def all_joined(self) -> bool:
        return all(r.joined is not None for r in self.roles)

    def dead(self) -> list[Role]:
        return [r for r in self.roles if r.proc.poll() is not None]

    def sample_end(self) -> None:
        for role in self.roles:
            role.cpu_at_end = tree_cpu(role.pid) if role.proc.poll() is None else None

    def stop(self, timeout: float = 20.0) -> list[tuple[int, int | None]]:
        """SIGTERM each, then SIGKILL the group of one that does not exit; (pid, exit code)."""
        for role in self.roles:
            if role.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    role.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = []
        for role in self.roles:
            try:
                role.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(role.pid, signal.SIGKILL)
                role.proc.wait(10)
            codes.append((role.pid, role.proc.returncode))
        return codes

    def kill(self) -> None:
        """Last resort on the way out (Ctrl-C, an error): nothing of ours stays behind."""
        for role in self.roles:
            if role.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(role.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    role.proc.wait(10)


@dataclass
class LogSummary:
    """What the roles logged at WARNING and above (JSON lines), by level and event name."""

    counts: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)  # sum of a record's `count` field
    samples: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # lines that are not JSON (tracebacks)


def summarize_logs(logs: list[Path], samples: int = 3) -> LogSummary:
    summary = LogSummary()
    seen: set[str] = set()
    for path in logs:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    summary.other.append(f"{path.name}: {line[:300]}")
                    continue
                if not isinstance(record, dict):
                    continue
                key = f"{record.get('level', '?')} {record.get('event', '?')}"
                summary.counts[key] += 1
                if isinstance(record.get("count"), int):
                    summary.totals[key] += record["count"]
                if key not in seen and len(summary.samples) < 12:
                    seen.add(key)
                    summary.samples.append(f"{path.name}: {line[:400]}")
                elif summary.counts[key] <= samples and key.split()[0] in ("error", "critical"):
                    summary.samples.append(f"{path.name}: {line[:400]}")
    return summary


# --- PostgreSQL backends ----------------------------------------------------------------------


class BackendCpu:
    """CPU of the PostgreSQL backends serving the roles, found by their `application_name`
    (PGAPPNAME in the roles' environment) in `pg_stat_activity`, read from /proc (the server
    runs on this machine). A thread samples every `every_s`; a backend's last sample counts, so
    one that exits between samples loses at most that interval."""

    def __init__(self, admin_url: str, application_name: str, every_s: float = 0.2) -> None:
        from sqlalchemy import create_engine

        self.application_name = application_name
        self.every_s = every_s
        self.engine = create_engine(
            admin_url,
            isolation_level="AUTOCOMMIT",
            connect_args={"application_name": f"{application_name}-monitor"},
            pool_size=1,
        )
        self.cpu: dict[int, float] = {}
        self.visible = True  # False: pids not readable here (a server in a container)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="pg-backend-cpu")

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": self.application_name},
            ).scalars()
            for pid in pids:
                cpu = cpu_seconds(int(pid))
                if cpu is None:
                    self.visible = False
                else:
                    self.cpu[int(pid)] = max(cpu, self.cpu.get(int(pid), 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(Exception):
                self.sample()

    def total(self) -> float:
        return sum(self.cpu.values())

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.engine.dispose()
