"""The console's templates: one Jinja2 environment (autoescaped), filters, HTML responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from worker.domain import wording

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_URL = "/console/static"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def issue_path(key: str) -> str:
    """The console's page of an issue: its key URL-encoded (`#` is `%23`), as in every
    notification's link (`worker/notify/templates.py`)."""
    return "/issues/" + quote(key, safe=":/@")


def human(delta: timedelta | float | None) -> str:
    """`4m 12s`, `2h 05m`, `3d 4h`: a span for people (its sign dropped)."""
    if delta is None:
        return ""
    seconds = int(abs(delta.total_seconds() if isinstance(delta, timedelta) else delta))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def iso(when: datetime | None) -> str:
    """UTC ISO 8601 with a Z, as `data-due` and `<time datetime>` carry it."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(when: datetime | None) -> str:
    """A time as people read it on the page, in UTC."""
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def late(ms: int | None) -> str:
    """How late a deadline fired: `on time (12 ms)`, `fired 2.3 s late`."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"on time ({max(ms, 0)} ms)"
    return f"fired {ms / 1000:.1f} s late" if ms < 60_000 else f"fired {human(ms / 1000)} late"


def environment() -> Environment:
    """The console's templates, autoescaped, undefined names an error."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=wording.duration,
        human=human,
        iso=iso,
        stamp=stamp,
        issue_path=issue_path,
        late=late,
    )
    env.globals.update(static=STATIC_URL)
    return env


class Pages:
    """Renders a template into an HTML response with the console's security headers."""

    def __init__(self) -> None:
        self.env = environment()

    def html(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The template `name` rendered with `context`, answered with `status`."""
        body = self.env.get_template(name).render(**context)
        return HTMLResponse(body, status_code=status, headers=HEADERS)
