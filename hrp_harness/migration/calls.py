"""Calls of the migration's SQL functions (functions/migration_*.sql) and their errors."""

from __future__ import annotations

from decimal import Decimal

import psycopg
from psycopg import sql
from psycopg.types.numeric import Int8

#: The schema of the migration's functions and records (schema/0010_migration.sql, renamed by 0031).
SCHEMA = "hrp_migration"


def call(conn, function: str, *args):
    """select hrp_migration.<function>(args): the function names are constants of the harness;
    Python ints go as bigint and floats as numeric, so the SQL signatures resolve."""
    query = sql.SQL("select {}({})").format(
        sql.Identifier(SCHEMA, function), sql.SQL(", ").join(sql.Placeholder() * len(args)))
    args = tuple(Int8(a) if isinstance(a, int) and not isinstance(a, bool)
                 else Decimal(str(a)) if isinstance(a, float) else a for a in args)
    return conn.execute(query, args).fetchone()[0]


def db_error(exc: psycopg.Error) -> str:
    """A server error as one message: its primary text, where, and its hint."""
    diag = exc.diag
    text = (diag.message_primary if diag else None) or str(exc).strip()
    # where: for a server-side failure; the loader's own refusals (RAISE, P0001) say it in the text
    if diag and diag.context and diag.sqlstate != "P0001":
        text += f" ({diag.context.strip().splitlines()[0]})"
    if diag and diag.message_hint:
        text += f"\nhint: {diag.message_hint}"
    return text
