"""Set-based writes: many rows of one table in one statement.

On SQLite, an executemany of one INSERT or UPDATE (the driver loops in C over the rows). On
PostgreSQL, one statement over arrays, one per column: `INSERT ... SELECT * FROM unnest(...)`
and `UPDATE ... FROM unnest(...)`. Its text is the same whatever the number of rows, so the
server and psycopg parse it once, where an executemany would send one statement per row and a
multi-row VALUES one text per batch size.

New rows get their ids here, reserved in one statement (`reserve`), so that the inserts need
no RETURNING (which makes the database insert one row at a time to say which id went where).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from sqlalchemy import JSON, Table, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


class Bulk:
    """The set-based statements of one session's database."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def reserve(self, table: Table, count: int) -> Sequence[int]:
        """`count` new ids for the table: from its sequence on PostgreSQL; on SQLite the next
        ones after the largest (what SQLite would give: a writing transaction holds the
        database's write lock from its BEGIN IMMEDIATE, so no other writer takes them)."""
        if self.postgres:
            reserved = self.session.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"
                ),
                {"t": table.name, "n": count},
            )
            return [row[0] for row in reserved]
        largest = self.session.execute(select(func.max(table.c.id))).scalar() or 0
        return range(largest + 1, largest + 1 + count)

    def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert these rows (every one with the same keys, ids included)."""
        if not rows:
            return
        if not self.postgres:
            self.session.execute(insert(table), list(rows))
            return
        columns = list(rows[0])
        arrays = ", ".join(_array(table, name) for name in columns)
        statement = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        )
        self.session.execute(text(statement), _columns(table, columns, rows))

    def update(
        self, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Set these columns of the rows of these ids (each row: `id` and the columns)."""
        if not rows:
            return
        if not self.postgres:
            by_id = (
                update(table)
                .where(table.c.id == bindparam("row_id"))
                .values({name: bindparam(name) for name in columns})
            )
            self.session.execute(by_id, [{"row_id": row["id"], **row} for row in rows])
            return
        names = ["id", *columns]
        arrays = ", ".join(_array(table, name) for name in names)
        sets = ", ".join(f"{name} = v.{name}" for name in columns)
        statement = (
            f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE {table.name}.id = v.id"
        )
        self.session.execute(text(statement), _columns(table, names, rows))


def _array(table: Table, name: str) -> str:
    kind = table.c[name].type.compile(dialect=_PG)
    return f"CAST(:{name} AS {kind}[])"


def _columns(
    table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """One list per column, as the driver sends arrays: JSON as its text, enums as values."""
    arrays: dict[str, list[Any]] = {}
    for name in names:
        values = [row[name] for row in rows]
        if isinstance(table.c[name].type, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
        else:
            values = [v.value if isinstance(v, Enum) else v for v in values]
        arrays[name] = values
    return arrays
