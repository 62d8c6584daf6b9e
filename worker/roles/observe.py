"""A role's metrics: its multiprocess directory, prepared first, and its metrics port.

Each role command calls `start_metrics` before it does anything else: the directory its
processes write to is set (and, for a role started alone, emptied) before any of them records;
a role other than api then serves `/metrics` on `ESCALATOR_METRICS_PORT` when it is set (the api
serves `/metrics` on its own port, `worker/gateway/metrics_http.py`). A Celery pool process
marks itself dead in the directory when it exits.
"""

from __future__ import annotations

import os
from typing import Any

import structlog
from celery.signals import worker_process_shutdown

from config.settings import Settings
from worker.domain.clock import SystemClock
from worker.gateway.metrics import prepare, process_dead, scrape_registry, serve
from worker.gateway.metrics_state import state_collector

log = structlog.get_logger("escalator.metrics")


def start_metrics(settings: Settings, port: bool = True) -> None:
    """Prepare the multiprocess directory; with `port`, serve `/metrics` on the metrics port
    if one is set. A port that cannot be bound is logged, never fatal: the role runs on."""
    prepare(settings)
    if not port or settings.metrics_port is None:
        return
    registry = scrape_registry(state_collector(settings, SystemClock()))
    try:
        serve(settings.metrics_port, settings.api_host, registry)
    except OSError as exc:
        log.error(
            "metrics.port_unavailable",
            port=settings.metrics_port,
            host=settings.api_host,
            error=str(exc),
        )


def _pool_process_exits(**_: Any) -> None:
    """A prefork pool process is exiting: its live gauges (if any) leave the directory."""
    process_dead(os.getpid())


worker_process_shutdown.connect(_pool_process_exits, weak=False)
