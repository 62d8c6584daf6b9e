"""structlog set-up: console for people at a terminal, JSON lines for machines.

Our own events and every stdlib record (Celery's, uvicorn's, SQLAlchemy's) go through the same
chain and the same renderer. An exception attached to either (`log.exception(...)`,
`exc_info=True`, Celery's "Unrecoverable error") is rendered as its formatted traceback, as
text, under the key `exception`: never as the repr of an `exc_info` tuple.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from config.settings import Settings


def _drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in ("secret", "token", "password")):
            event[key] = "**********"
    return event


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging through one renderer chosen by `log_format`."""
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    # exc_info (a tuple, an exception or True) becomes `exception`: the traceback as text.
    tail: list[Any] = [structlog.processors.format_exc_info, renderer]
    level = logging.getLevelName(settings.log_level.upper())
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Celery's "Task ... received/succeeded" lines say nothing our own events do not (and the
    # canary alone would write one pair every few seconds): its failures still come through.
    chatter = ("celery.worker.strategy", "celery.app.trace")
    for noisy in ("httpx", "httpcore", "uvicorn.access", "alembic", *chatter):
        logging.getLogger(noisy).setLevel(logging.WARNING)
