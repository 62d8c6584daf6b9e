"""Set-based writes: many rows of one table in one statement.

On SQLite, an executemany of one INSERT or UPDATE, straight on the driver (it loops in C over
the rows; the values are converted as the column types would, once per value). On
PostgreSQL, one statement over arrays, one per column: `INSERT ... SELECT * FROM unnest(...)`
and `UPDATE ... FROM unnest(...)`. Its text is the same whatever the number of rows, so the
server and psycopg parse it once, where an executemany would send one statement per row and a
multi-row VALUES one text per batch size.

New rows get their ids here, reserved in one statement (`reserve`), so that the inserts need
no RETURNING (which makes the database insert one row at a time to say which id went where).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, Table, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.store.models import UtcDateTime

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_SQLITE = sqlite.dialect()
_UTC = UtcDateTime()


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

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert these rows: each a tuple of the columns' values, in their order."""
        if not rows:
            return
        if not self.postgres:
            marks = ", ".join("?" * len(columns))
            statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
            self._executemany(statement, table, columns, rows)
            return
        arrays = ", ".join(_array(table, name) for name in columns)
        statement = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        )
        self._unnest(statement, _arrays(table, columns, rows))

    def update(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Set these columns of the rows of these ids: each row a tuple (id, *values)."""
        if not rows:
            return
        names = ["id", *columns]
        if not self.postgres:
            sets = ", ".join(f"{name} = ?" for name in columns)
            statement = f"UPDATE {table.name} SET {sets} WHERE id = ?"
            moved = [(*row[1:], row[0]) for row in rows]  # the id goes last, in the WHERE
            self._executemany(statement, table, [*columns, "id"], moved)
            return
        arrays = ", ".join(_array(table, name) for name in names)
        sets = ", ".join(f"{name} = v.{name}" for name in columns)
        statement = (
            f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE {table.name}.id = v.id"
        )
        self._unnest(statement, _arrays(table, names, rows))

    def _driver(self) -> Any:
        """The driver's connection, in this session's transaction."""
        driver = self.session.connection().connection.driver_connection
        assert driver is not None
        return driver

    def _unnest(self, statement: str, arrays: list[list[Any]]) -> None:
        """One statement over arrays, sent in binary (`%b`: psycopg quotes text arrays element
        by element with regular expressions, several times the cost)."""
        with self._driver().cursor() as cursor:
            cursor.execute(statement, arrays)

    def _executemany(
        self, statement: str, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """The driver's own executemany, in this session's transaction."""
        converts = [(i, f) for i, n in enumerate(names) if (f := _sqlite_value(table, n))]
        values: Any = rows
        if converts:
            columns = list(zip(*rows, strict=True))
            for i, convert in converts:
                columns[i] = tuple(map(convert, columns[i]))
            values = zip(*columns, strict=True)
        self._driver().executemany(statement, values)


def _sqlite_value(table: Table, name: str) -> Callable[[Any], Any] | None:
    """How a value is stored in this column on SQLite, as its SQLAlchemy type stores it: UTC
    times as naive ISO text with microseconds, JSON as its text (the driver stores a string
    enum as its value)."""
    kind = table.c[name].type
    if isinstance(kind, UtcDateTime):
        return _sqlite_time
    if isinstance(kind, JSON):
        return json.dumps
    return None


def _sqlite_time(value: datetime | None) -> str | None:
    stored = _UTC.process_bind_param(value, _SQLITE)  # naive UTC; refuses a naive value
    return None if stored is None else stored.isoformat(" ", "microseconds")


def _array(table: Table, name: str) -> str:
    kind = table.c[name].type.compile(dialect=_PG)
    return f"CAST(%b AS {kind}[])"


def _arrays(table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """One list per column, as the driver sends arrays: JSON as its text, enums as values."""
    arrays: list[list[Any]] = []
    for name, column in zip(names, zip(*rows, strict=True), strict=True):
        if isinstance(table.c[name].type, JSON):
            arrays.append([None if v is None else json.dumps(v) for v in column])
        else:
            arrays.append([v.value if isinstance(v, Enum) else v for v in column])
    return arrays
