"""Prometheus metrics of every role: their definitions, the multiprocess set-up, exposition.

Every process writes its counters and histograms to files of one directory (prometheus_client's
multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`): Celery's prefork children, uvicorn's workers,
and under `escalator run` every role of the stack, so one scrape adds them all up. A role
prepares its directory (`prepare`) before it records anything; what it records is what its
services returned (`worker.gateway.metrics_record`): the services know nothing of
Prometheus. State (stream lag, armed deadlines, open issues, ...) is never recorded: it is read
at scrape time by `worker.gateway.metrics_state.StateCollector`. This module loads no web
framework: the api's `/metrics` route and HTTP middleware are `worker.gateway.metrics_http`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from config.settings import Settings

__all__ = [
    "CONTENT_TYPE",
    "LATENESS_BUCKETS",
    "Metrics",
    "clean",
    "current_directory",
    "metrics",
    "prepare",
    "process_dead",
    "render",
    "scrape_registry",
    "serve",
]

log = structlog.get_logger("escalator.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
CONTENT_TYPE = CONTENT_TYPE_LATEST
# 1 ms to 10 min: a punctual firing takes milliseconds, a backlog or an outage minutes
LATENESS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
)  # fmt: skip
# from a message's creation to its sending: digest windows and retries take minutes
DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class Metrics:
    """Every counter and histogram, in a registry of their own (not prometheus_client's global
    one): in multiprocess mode a scrape reads the files, and this registry only lists names."""

    registry: CollectorRegistry
    events_ingested: Counter
    dead_letters: Counter
    deadlines_claimed: Counter
    deadlines_reclaimed: Counter
    escalations: Counter
    lateness: Histogram
    breaches: Counter
    notifications: Counter
    delivery_seconds: Histogram
    writebacks: Counter
    http_requests: Counter
    http_duration: Histogram

    def names(self) -> list[str]:
        """The name each is scraped by (a counter's with its `_total`)."""
        return [
            f"{family.name}_total" if family.type == "counter" else family.name
            for family in self.registry.collect()
        ]


def _build() -> Metrics:
    r = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=r,
        events_ingested=Counter(
            "escalator_events_ingested",
            "Events handled by ingest, by event type and outcome.",
            ["type", "outcome"],
            registry=r,
        ),
        dead_letters=Counter(
            "escalator_dead_letters",
            "Entries moved to the dead-letter stream, by reason.",
            ["reason"],
            registry=r,
        ),
        deadlines_claimed=Counter(
            "escalator_deadlines_claimed", "Due deadlines claimed by schedulers.", registry=r
        ),
        deadlines_reclaimed=Counter(
            "escalator_deadlines_reclaimed",
            "In-flight deadlines claimed again after their lease ran out.",
            registry=r,
        ),
        escalations=Counter(
            "escalator_escalations",
            "Escalations fired, by the tier escalated to, severity and SLA target.",
            ["tier", "severity", "target"],
            registry=r,
        ),
        lateness=Histogram(
            "escalator_escalation_lateness_seconds",
            "Fired time minus due time of each firing that counted, by kind.",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        ),
        breaches=Counter(
            "escalator_sla_breaches",
            "SLA targets breached, by target and severity.",
            ["target", "severity"],
            registry=r,
        ),
        notifications=Counter(
            "escalator_notifications",
            "Notification delivery attempts, by channel, kind and result.",
            ["channel", "kind", "result"],
            registry=r,
        ),
        delivery_seconds=Histogram(
            "escalator_notification_delivery_seconds",
            "From a notification's creation to its successful sending, by channel.",
            ["channel"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        ),
        writebacks=Counter(
            "escalator_writebacks",
            "Ticket write-back attempts, by ticket system and result.",
            ["source", "result"],
            registry=r,
        ),
        http_requests=Counter(
            "escalator_http_requests",
            "HTTP requests answered by the api, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        ),
        http_duration=Histogram(
            "escalator_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        ),
    )


_lock = threading.Lock()
_metrics: Metrics | None = None
_directory: Path | None = None  # this process's multiprocess directory (None: in memory)


def metrics() -> Metrics:
    """This process's metrics, built on first use (after `prepare`, if the role calls it)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _build()
    return _metrics


# The multiprocess directory


def prepare(settings: Settings) -> Path:
    """Set up this process's multiprocess directory, before it records anything; its children
    (prefork, uvicorn workers) inherit it. Under `escalator run` (`metrics_dir`) it is shared
    and left as it is; a role started alone uses `PROMETHEUS_MULTIPROC_DIR`, or a new temp dir,
    and empties it first: counts left by an earlier run must not be added to this one's."""
    global _directory, _metrics
    if settings.metrics_dir is not None:
        path = settings.metrics_dir
        path.mkdir(parents=True, exist_ok=True)
    elif settings.prometheus_multiproc_dir is not None:
        path = settings.prometheus_multiproc_dir
        clean(path)
    else:
        path = Path(tempfile.mkdtemp(prefix="escalator-metrics-"))
        atexit.register(_remove, path, os.getpid())
    os.environ[MULTIPROC_ENV] = str(path)
    with _lock:
        # prometheus_client picks its value class from the variable when it is imported: pick
        # again now it is set, and build the metrics (again) with it
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        _directory, _metrics = path, None
    log.info("metrics.multiprocess", directory=str(path), shared=settings.metrics_dir is not None)
    return path


def _remove(path: Path, creator: int) -> None:
    """The temp directory goes with the process that made it (not with a forked child)."""
    if os.getpid() == creator:
        shutil.rmtree(path, ignore_errors=True)


def clean(path: Path) -> None:
    """Create the directory, or empty it of the metric files an earlier run left."""
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.db"):
        leftover.unlink(missing_ok=True)


def current_directory() -> Path | None:
    """This process's multiprocess directory: the one it prepared, or the one its parent did
    (uvicorn's workers are spawned, not forked: they inherit only the environment)."""
    if _directory is None and os.environ.get(MULTIPROC_ENV):
        return Path(os.environ[MULTIPROC_ENV])
    return _directory


def process_dead(pid: int, path: Path | None = None) -> None:
    """A process of the directory exited: drop its live-gauge files (its counters stay)."""
    where = path or current_directory()
    if where is not None and where.is_dir():
        mark_process_dead(pid, str(where))  # type: ignore[no-untyped-call]


# Exposition


class _InMemory:
    """This process's metrics when no multiprocess directory was prepared (tests, tools)."""

    def collect(self) -> Iterator[Metric]:
        yield from metrics().registry.collect()


def scrape_registry(*extra: Collector) -> CollectorRegistry:
    """What a scrape reads: every process's files (or this process's memory), then `extra`
    collectors (the state gauges), each collected at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    where = current_directory()
    if where is not None:
        MultiProcessCollector(registry, path=str(where))  # type: ignore[no-untyped-call]
    else:
        registry.register(_InMemory())
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format of a scrape."""
    return generate_latest(registry)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(port: int, host: str, registry: CollectorRegistry) -> WSGIServer:
    """Serve `/metrics` on `host:port` from a daemon thread (the roles other than api).

    Always the Prometheus text format, as the api's `/metrics`: never OpenMetrics, in which the
    counter `escalator_dead_letters_total` and the gauge `escalator_dead_letters` would be
    one family twice."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: scrape /metrics\n"]
        body = render(registry)
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))]
        )
        return [body]

    server = make_server(host, port, app, _Threading, _Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics.serving", url=f"http://{host}:{port}/metrics")
    return server
