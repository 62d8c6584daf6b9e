"""Alembic, driven from code: `escalator db upgrade` and the embedded run call this."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from worker.store.db import normalize_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and `database_url`."""
    config = Config()
    config.attributes["configure_logger"] = False
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


@cache
def heads() -> frozenset[str]:
    """The head revisions of the packaged migrations (read once: they never change)."""
    return frozenset(_scripts().get_heads())


@cache
def known() -> frozenset[str]:
    """Every revision the packaged migrations know."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


def behind(engine: Engine) -> str | None:
    """None when the database is at the migrations' head, or ahead of them (a newer release
    migrated it during a rolling upgrade: migrations only add, so this code still runs on it);
    else what it is at, to be said in a readiness check (`escalator db upgrade` brings it up)."""
    with engine.connect() as conn:
        current = frozenset(MigrationContext.configure(conn).get_current_heads())
    if current == heads() or (current and not current <= known()):
        return None
    at = ", ".join(sorted(current)) or "no schema"
    return f"at {at}, head is {', '.join(sorted(heads()))}"
