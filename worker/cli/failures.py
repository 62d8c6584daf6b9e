"""What the CLI says when its infrastructure is not there: one line, exit code 2.

Every command runs inside `EscalatorGroup.invoke`: a Redis that does not answer, a database
that does not answer, a SQLite file that does not exist, or a database without the schema
becomes one line that names what is missing and how to start it (`escalator run`, or the
variable to set), and exit code 2. `--debug` (a global option) lets the exception through, with
its traceback. Invalid input read by a command (an event, the configuration) is said in our own
words by `validation_lines`: the field and the problem, no link to pydantic's documentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from typer._click import Context as ClickContext  # typer 0.29 vendors click: its Context
from typer.core import TyperGroup

from config.settings import Settings

UNREACHABLE = 2  # the exit code of a command whose Redis or database is not there
DEBUG = "escalator.debug"  # ctx.meta key: show tracebacks instead of one line
err = Console(stderr=True, soft_wrap=True)  # one line, however narrow the terminal


def shown_url(url: str) -> str:
    """A Redis or database URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def how_to_start(settings: Settings) -> str:
    """How to get a Redis that answers, for this configuration."""
    if settings.redis_url is None:
        data = Path(settings.data_dir).resolve()
        return (
            f"start Escalator with `escalator run` (it runs the embedded Redis, data in {data}),"
            " or set ESCALATOR_DATA_DIR or ESCALATOR_REDIS_URL to the one that runs"
        )
    return "start Redis (with compose: `docker compose up -d redis`) or fix ESCALATOR_REDIS_URL"


def redis_line(settings: Settings, exc: BaseException) -> str:
    """One line: Redis does not answer, and how to start it."""
    if settings.redis_url is None:
        socket = settings.embedded_socket()
        where = f"no embedded Redis at {socket}"
        if socket.exists():  # a socket left behind by a Redis that died
            where += f" ({_reason(exc)})"
    else:
        where = f"Redis at {shown_url(settings.redis_url)} does not answer ({_reason(exc)})"
    return f"Redis is not reachable: {where}; {how_to_start(settings)}."


def _sqlite_file(settings: Settings) -> Path | None:
    url = settings.resolved_database_url()
    if not url.startswith("sqlite") or url.endswith(":memory:") or url in ("sqlite://",):
        return None
    return Path(url.split("///", 1)[-1].split("?", 1)[0])


def database_line(settings: Settings, exc: BaseException) -> str:
    """One line: what is wrong with the database (absent, without schema, not answering)."""
    url = shown_url(settings.resolved_database_url())
    reason = _reason(exc)
    lowered = reason.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return (
            f"The database at {url} has no Escalator schema yet: run `escalator db upgrade`"
            " (`escalator run` does it at start), or set ESCALATOR_DATABASE_URL to yours."
        )
    path = _sqlite_file(settings)
    if path is not None and not path.exists():
        variable = (
            "ESCALATOR_DATA_DIR" if settings.database_url is None else "ESCALATOR_DATABASE_URL"
        )
        return (
            f"No database at {path}: start Escalator with `escalator run` (it creates it), "
            f"or set {variable} to where your data lives."
        )
    return (
        f"The database at {url} is not reachable ({reason}): start it, "
        "or fix ESCALATOR_DATABASE_URL."
    )


def _reason(exc: BaseException) -> str:
    """The first line of what the driver said, without SQLAlchemy's SQL and links."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return (text[0] if text else type(inner).__name__)[:200]


def explain(exc: BaseException, settings: Settings | None) -> str | None:
    """The one line for an infrastructure failure; None for anything else (a bug: let it be)."""
    settings = settings if isinstance(settings, Settings) else None
    if settings is None:
        return None
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return redis_line(settings, exc)
    if isinstance(exc, OperationalError):
        return database_line(settings, exc)
    if isinstance(exc, ProgrammingError | DBAPIError) and "does not exist" in _reason(exc):
        return database_line(settings, exc)
    return None


def validation_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    """Each error as `field: problem`, in the order pydantic found them (no documentation link)."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(whole value)"
        lines.append(f"{prefix}{where}: {_problem(error)}")
    return lines


def settings_lines(exc: ValidationError) -> list[str]:
    """Each configuration error as `ESCALATOR_VARIABLE: problem` (a JSON value's inner field
    after the variable: `ESCALATOR_SOURCES: github.secrets: required`)."""
    lines = []
    for error in exc.errors(include_url=False):
        head, *inner = [str(part) for part in error["loc"]] or ["?"]
        where = f"ESCALATOR_{head.upper()}" + (f": {'.'.join(inner)}" if inner else "")
        lines.append(f"{where}: {_problem(error)}")
    return lines


def _problem(error: Any) -> str:
    message = str(error["msg"])
    if error["type"] == "missing":
        return "required"
    if error["type"] == "extra_forbidden":
        return "not a known field"
    for noise in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(noise)
    return message


def refuse(lines: Sequence[str], title: str) -> typer.Exit:
    """Print `title` and the problems under it, and return the exit to raise (code 2)."""
    err.print(f"[red]{title}[/red]", markup=True, highlight=False)
    for line in lines:
        err.print(f"  {line}", markup=False, highlight=False)
    return typer.Exit(UNREACHABLE)


class EscalatorGroup(TyperGroup):
    """The root command group: infrastructure failures of any command become one line."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:  # typer's Exit and usage errors are none of ours: raised again
            line = explain(exc, ctx.obj)
            if line is None or ctx.meta.get(DEBUG):
                raise
            err.print(line, markup=False, highlight=False)
            raise typer.Exit(UNREACHABLE) from None
