"""The hot path's statements on PostgreSQL, run by psycopg itself rather than by SQLAlchemy's execution.

A task completion over HTTP runs three statements on PostgreSQL (the worklist read, the read of the task's case,
the write of the step). SQLAlchemy builds each of them, as everywhere else, and compiles it once; what this
skips is its execution and result machinery: the execution context, the parameter and result processing, the
result object, and psycopg's column descriptions it asks for. That machinery cost about 110 µs of CPU per
statement, more than psycopg's own execution of the prepared statement (BENCHMARKS.md).

`rows()` is the one way these statements run: on SQLite, for a statement whose parameters or columns need a
conversion by SQLAlchemy (checked once, when it is compiled), and where something listens to the statements
SQLAlchemy runs (tracing), it is plain Connection.execute. A driver error is
raised as SQLAlchemy would raise it (sqlalchemy.exc.IntegrityError, OperationalError...), and a lost
connection is invalidated, so the pool replaces it, as SQLAlchemy does.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect, Row, result_tuple
from sqlalchemy.sql import Select


@dataclass(frozen=True)
class _Compiled:
    sql: str
    constants: dict[str, Any]  # the values the statement itself carries (e.g. update(...).values(state="x"))
    row: Any  # makes a Row with the statement's column names from a tuple


def rows(conn: Connection, statement: Select[Any], params: dict[str, Any]) -> list[Row[Any]]:
    """All rows of `statement` with `params`, as Connection.execute(statement, params).all() gives them."""
    compiled = _compiled(statement, conn.dialect) if conn.dialect.name == "postgresql" else None
    if compiled is None or _observed(conn):
        return list(conn.execute(statement, params).all())
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    values = {**compiled.constants, **params} if compiled.constants else params
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(compiled.sql, values)
        found = cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as error:
        _raise_as_sqlalchemy(conn, cursor, compiled.sql, values, error)
    finally:
        cursor.close()
    return [compiled.row(values) for values in found]


def _observed(conn: Connection) -> bool:
    """Whether something listens to the statements run on `conn` (tracing, a test reading query plans): it is
    owed every statement, so SQLAlchemy runs them."""
    return bool(conn.dispatch.before_cursor_execute) or bool(conn.dispatch.after_cursor_execute)


def _raise_as_sqlalchemy(conn: Connection, cursor: Any, sql: str, params: dict[str, Any], error: Any) -> NoReturn:
    disconnected = conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
    if disconnected:
        conn.invalidate(error)
    raise exc.DBAPIError.instance(sql, params, error, conn.dialect.loaded_dbapi.Error,
                                  connection_invalidated=disconnected, dialect=conn.dialect) from error


@functools.cache  # per statement object: the hot path's statements are built once and kept (store.py)
def _compiled(statement: Select[Any], dialect: Dialect) -> _Compiled | None:
    """The statement compiled for `dialect`, or None where SQLAlchemy must run it: a parameter expanded at
    execution (IN lists) or escaped, or a parameter or column whose type SQLAlchemy converts on this driver."""
    compiled = statement.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string or compiled.escaped_bind_names:
        return None
    if any(bind.expanding or _converts_binds(bind.type, dialect) for bind in compiled.binds.values()):
        return None
    if any(_converts_results(column.type, dialect) for column in statement.selected_columns):
        return None
    given = {compiled.bind_names[bind] for bind in compiled.binds.values() if bind.required}
    constants = {name: value for name, value in compiled.params.items() if name not in given}
    return _Compiled(compiled.string, constants, result_tuple(list(statement.selected_columns.keys())))


def _converts_binds(type_: Any, dialect: Dialect) -> bool:
    return type_.dialect_impl(dialect).bind_processor(dialect) is not None


def _converts_results(type_: Any, dialect: Dialect) -> bool:
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None) is not None
    except Exception:  # noqa: BLE001 - a type that must see the column's driver type (Numeric): leave it to SQLAlchemy
        return True
