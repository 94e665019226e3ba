"""The hot path's statements run by the driver itself (psycopg, sqlite3) rather than by SQLAlchemy's execution.

A task completion over HTTP runs three statements on PostgreSQL (the worklist read, the read of the task's case,
the write of the step). SQLAlchemy builds each of them, as everywhere else, and compiles it once; what this
skips is its execution and result machinery: the execution context, the parameter and result processing, the
result object, and psycopg's column descriptions it asks for. That machinery cost about 110 µs of CPU per
statement, more than psycopg's own execution of the prepared statement (BENCHMARKS.md).

On SQLite the same saves about 50 µs of a read's 75, and the BEGIN and ROLLBACK SQLAlchemy wraps a read in
(one statement needs no transaction to agree with itself); there the save's UPDATE and INSERTs, inside the
transaction SQLAlchemy began, run this way too. SQLAlchemy's own conversions of parameters and columns (SQLite
keeps times as text) are applied as it would apply them, taken from the types once.

`rows()` (statements with rows) and `execute()` (writes) are the one way these statements run. A statement whose
parameters SQLAlchemy expands at execution (IN lists), and any connection with a listener on the statements
SQLAlchemy runs (tracing, a test reading plans), go through Connection.execute. A driver error is raised as
SQLAlchemy would raise it (sqlalchemy.exc.DataError, OperationalError...), and a lost connection is invalidated,
so the pool replaces it, as SQLAlchemy does.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect, Row, result_tuple
from sqlalchemy.sql import Executable, Select


@dataclass(frozen=True)
class _Compiled:
    sql: str
    constants: dict[str, Any]  # the values the statement itself carries (e.g. update(...).values(state="x"))
    order: tuple[str, ...] | None  # the parameters' order where the driver takes them by position (SQLite)
    binds: tuple[tuple[str, Any], ...]  # SQLAlchemy's conversion of each parameter that has one (SQLite's times)
    results: tuple[Any, ...] | None  # ... and of each column (None: no column has one)
    row: Any  # makes a Row with the statement's column names from a tuple


def rows(conn: Connection, statement: Select[Any], params: dict[str, Any]) -> list[Row[Any]]:
    """All rows of `statement` with `params`, as Connection.execute(statement, params).all() gives them.
    `statement` must be built once (a module's constant, a cached builder): its compiled form is kept per object."""
    compiled = _compiled(statement, conn.dialect)
    if compiled is None or _observed(conn):
        return list(conn.execute(statement, params).all())
    cursor = _run(conn, compiled, [params])
    found = cursor.fetchall()
    cursor.close()
    if compiled.results is not None:
        converters = compiled.results
        found = [[value if convert is None else convert(value) for convert, value in zip(converters, row, strict=True)]
                 for row in found]
    return [compiled.row(row) for row in found]


def execute(conn: Connection, statement: Executable, params: dict[str, Any] | list[dict[str, Any]]) -> int:
    """Run an INSERT or UPDATE that returns no rows, with a list of parameter sets as executemany; the number of
    rows it changed. Built once, as for rows()."""
    compiled = _compiled(statement, conn.dialect)
    if compiled is None or _observed(conn):
        return int(conn.execute(statement, params).rowcount)
    cursor = _run(conn, compiled, params if isinstance(params, list) else [params])
    changed = int(cursor.rowcount)
    cursor.close()
    return changed


def _run(conn: Connection, compiled: _Compiled, param_sets: list[dict[str, Any]]) -> Any:
    """The driver's cursor after running the statement once per parameter set."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    sent = [_sent(compiled, params) for params in param_sets]
    cursor = dbapi_connection.cursor()
    try:
        if len(sent) == 1:
            cursor.execute(compiled.sql, sent[0])
        else:
            cursor.executemany(compiled.sql, sent)
    except conn.dialect.loaded_dbapi.Error as error:
        cursor.close()
        _raise_as_sqlalchemy(conn, cursor, compiled.sql, sent, error)
    return cursor


def _sent(compiled: _Compiled, params: dict[str, Any]) -> Any:
    """The parameters as the driver takes them: with the statement's own values, converted, in order."""
    values = {**compiled.constants, **params}
    for name, convert in compiled.binds:
        values[name] = convert(values[name])
    return values if compiled.order is None else tuple(values[name] for name in compiled.order)


def _observed(conn: Connection) -> bool:
    """Whether something listens to the statements run on `conn` (tracing, a test reading query plans): it is
    owed every statement, so SQLAlchemy runs them."""
    return bool(conn.dispatch.before_cursor_execute) or bool(conn.dispatch.after_cursor_execute)


def _raise_as_sqlalchemy(conn: Connection, cursor: Any, sql: str, params: Any, error: Any) -> NoReturn:
    disconnected = conn.dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
    if disconnected:
        conn.invalidate(error)
    raise exc.DBAPIError.instance(sql, params, error, conn.dialect.loaded_dbapi.Error,
                                  connection_invalidated=disconnected, dialect=conn.dialect) from error


@functools.cache  # per statement object: the hot path's statements are built once and kept (store.py)
def _compiled(statement: Any, dialect: Dialect) -> _Compiled | None:
    """The statement compiled for `dialect`, or None where SQLAlchemy must run it: a parameter expanded at
    execution (IN lists) or escaped, or a column type whose conversion needs the driver's type of the column."""
    compiled = statement.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string or compiled.escaped_bind_names:
        return None
    if any(bind.expanding for bind in compiled.binds.values()):
        return None
    columns = list(getattr(statement, "selected_columns", ()))  # none for an INSERT or UPDATE without RETURNING
    results = tuple(_result_processor(column.type, dialect) for column in columns)
    if any(convert is _UNKNOWN for convert in results):
        return None
    binds = tuple((compiled.bind_names[bind], convert) for bind in compiled.binds.values()
                  if (convert := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None)
    given = {compiled.bind_names[bind] for bind in compiled.binds.values() if bind.required}
    constants = {name: value for name, value in compiled.params.items() if name not in given}
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup is not None else None
    return _Compiled(compiled.string, constants, order, binds,
                     results if any(convert is not None for convert in results) else None,
                     result_tuple([column.key for column in columns]))


_UNKNOWN = object()


def _result_processor(type_: Any, dialect: Dialect) -> Any:
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None)
    except Exception:  # noqa: BLE001 - a type that must see the column's driver type (Numeric): leave it to SQLAlchemy
        return _UNKNOWN
