"""The servers `overload.py` starts beside the roles: a private redis-server and a webhook sink."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from redis import Redis


def sink_main(port_out: Any, counts: Any, ready: Any, delay_s: float) -> None:
    """A minimal keep-alive HTTP/1.1 receiver (asyncio): 204 to each POST, after `delay_s`
    (a real receiver's answer time); counts requests and distinct `webhook-id`s. Cheap, so
    that it is not what limits the run."""
    import asyncio

    seen: set[str] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, mid = 0, ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        mid = value.strip().decode()
                if length:
                    await reader.readexactly(length)
                counts[0] += 1
                if mid not in seen:
                    seen.add(mid)
                    counts[1] += 1
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_out.value = server.sockets[0].getsockname()[1]
        ready.set()
        await server.serve_forever()

    asyncio.run(serve())


class Sink:
    """The receiver process; `counts()` is (requests, distinct message ids) so far."""

    def __init__(self, delay_s: float = 0.0) -> None:
        ctx = mp.get_context("fork")
        self._port = ctx.Value("i", 0)
        self._counts = ctx.Array("q", 2, lock=False)
        ready = ctx.Event()
        self.proc = ctx.Process(
            target=sink_main, args=(self._port, self._counts, ready, delay_s), daemon=True
        )
        self.proc.start()
        if not ready.wait(15):
            raise SystemExit("the webhook sink did not start")
        self.url = f"http://127.0.0.1:{self._port.value}/hook"

    def counts(self) -> tuple[int, int]:
        return int(self._counts[0]), int(self._counts[1])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(5)


class RedisServer:
    """A private `redis-server` on a unix socket, configured as compose runs it (AOF everysec,
    noeviction); never the machine's or the tests' Redis."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.socket = folder / "redis.sock"
        conf = folder / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f'unixsocket "{self.socket}"',
                    "unixsocketperm 700",
                    f'dir "{folder}"',
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "maxmemory-policy noeviction",
                    f'logfile "{folder / "redis.log"}"',
                    "",
                ]
            )
        )
        binary = os.environ.get("REDIS_SERVER") or "redis-server"
        self.proc = subprocess.Popen([binary, str(conf)], stdin=subprocess.DEVNULL)
        self.url = f"unix://{self.socket}"
        deadline = time.monotonic() + 15
        while True:
            try:
                with Redis(unix_socket_path=str(self.socket)) as client:
                    client.ping()
                break
            except Exception as exc:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"redis-server did not start; see {folder}/redis.log") from exc
                time.sleep(0.05)
        self.client = Redis(unix_socket_path=str(self.socket), decode_responses=True)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
