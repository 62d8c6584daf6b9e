"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from worker.store.db import make_engine
from worker.store.models import Base

pytestmark = pytest.mark.integration


def test_head_matches_the_models(database_url: str) -> None:
    """Upgraded to head, the database differs from `Base.metadata` in nothing (a model change
    without its migration, or a migration the models do not know, fails here)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()
