"""Gateway throughput: signed GitHub webhooks over HTTP on 127.0.0.1, accepted requests/s, p50/p99.

    python bench/gateway_bench.py                      # 1 uvicorn worker, 20,000 requests
    python bench/gateway_bench.py --workers 2 --connections 64 --requests 40000
    python bench/gateway_bench.py --quick              # smoke run

The gateway runs as `escalator api` runs it (its app factory under uvicorn) on 127.0.0.1,
against the local Redis (127.0.0.1:6379, database 12, flushed before and after). The client is
one asyncio process speaking HTTP/1.1 keep-alive over raw sockets, so it costs as little CPU as
possible on the same cores. Every request is a genuine GitHub `issues.opened` delivery with its
own X-GitHub-Delivery, signed with X-Hub-Signature-256 before the clock starts (the server's
verification is what is measured); a request counts as accepted only on a 202, and every
accepted event must be on the stream. Timings never fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import ROOT, header, row  # noqa: E402
from _roles import summary  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.support import webhooks as wh  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """User + system CPU of the server and its uvicorn worker processes so far."""
    import psutil

    root = psutil.Process(proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def requests(n: int, port: int) -> list[bytes]:
    """n signed, distinct HTTP/1.1 requests, as bytes."""
    payload = wh.sample("github_issues_opened")
    out = []
    for i in range(n):
        payload["issue"]["number"] = i
        signed = wh.github(payload, delivery=f"bench-{i}")
        head = [f"POST {signed.path} HTTP/1.1", f"host: 127.0.0.1:{port}",
                f"content-length: {len(signed.body)}"]  # fmt: skip
        head += [f"{k}: {v}" for k, v in signed.headers.items()]
        out.append(("\r\n".join(head) + "\r\n\r\n").encode() + signed.body)
    return out


async def one_connection(
    port: int, queue: list[bytes], latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            request = queue.pop()
            start = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def drive(
    port: int, batch: list[bytes], connections: int
) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    await asyncio.gather(
        *(one_connection(port, batch, latencies, statuses) for _ in range(connections))
    )
    return time.perf_counter() - start, latencies, statuses


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--loop", default="auto", help="uvicorn --loop: auto, asyncio, uvloop")
    parser.add_argument("--http", default="auto", help="uvicorn --http: auto, h11, httptools")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.warmup = 2_000, 200
    args.requests = min(args.requests, 200_000)  # bounded, whatever is asked

    from redis import Redis

    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
    env.update(
        ESCALATOR_REDIS_URL=REDIS_URL,
        ESCALATOR_SOURCES=json.dumps({"github": {"secrets": [wh.SECRET]}}),
        ESCALATOR_LOG_LEVEL="WARNING",
        ESCALATOR_DATA_DIR=tempfile.mkdtemp(prefix="escalator-bench-"),  # the (unused) SQLite
        PYTHONPATH=str(ROOT),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "worker.roles.serve:app_from_environment", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
         "--loop", args.loop, "--http", args.http, "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_ready(port, server)
        time.sleep(1.0 if args.workers > 1 else 0.2)
        batch = requests(args.warmup + args.requests, port)
        warm, main_batch = batch[: args.warmup], batch[args.warmup :]
        run = asyncio.run
        try:  # the client too should spend as little CPU as it can
            import uvloop

            run = uvloop.run
        except ImportError:
            pass
        run(drive(port, warm, args.connections))
        server_cpu, client_cpu = cpu_seconds(server), time.process_time()
        elapsed, latencies, statuses = run(drive(port, main_batch, args.connections))
        server_cpu = cpu_seconds(server) - server_cpu
        client_cpu = time.process_time() - client_cpu
        load = os.getloadavg()[0]
        on_stream = redis.xlen("escalator:events")
    finally:
        server.terminate()
        server.wait(15)
        redis.flushdb()
        redis.close()

    accepted = statuses.get(202, 0)
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    header("gateway: signed GitHub webhooks over HTTP (127.0.0.1)")
    row("uvicorn workers / loop / http", f"{args.workers} / {args.loop} / {args.http}"
        f" (uvloop {'installed' if _has('uvloop') else 'absent'},"
        f" httptools {'installed' if _has('httptools') else 'absent'})")  # fmt: skip
    row("client connections (keep-alive)", str(args.connections))
    row("requests (after warm-up)", f"{len(latencies):,}")
    row("answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items())))
    row("events on the stream (incl. warm-up)", f"{on_stream:,}")
    row("accepted requests/s", f"{accepted / elapsed:,.0f}")
    row("latency p50 / p99 / max", f"{q[49] * 1000:.1f} ms / {q[98] * 1000:.1f} ms / "
        f"{latencies[-1] * 1000:.1f} ms")  # fmt: skip
    n = len(latencies)
    row("server CPU per request (all workers)", f"{server_cpu / n * 1000:.3f} ms")
    row("client CPU per request", f"{client_cpu / n * 1000:.3f} ms")
    row("1-min load average at the end (2 cores)", f"{load:.2f}")
    row("target", ">= 3,000 req/s with p99 < 50 ms")
    bench = f"gateway_bench ({args.workers} workers)"
    summary(bench, "accepted requests/s", accepted / elapsed, "/s", ">= 3000")
    summary(bench, "latency p99", q[98] * 1000, "ms", "< 50")
    summary(bench, "server CPU per request", server_cpu / n * 1000, "ms")
    ok = accepted == len(latencies) and on_stream == args.warmup + args.requests
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
