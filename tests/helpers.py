"""Shared helpers of the test modules (plain functions and constants; the fixtures are in
conftest.py): throwaway directories the server user owns, the session's role passwords, and
databases cloned from a template, writes as the app and the five tables' contents."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from pytest_postgresql.janitor import DatabaseJanitor

from hrp_harness.migration import TABLES
from hrp_harness.platform.cluster import SUPERUSER, Cluster
from hrp_harness.platform.server_user import make_server_dir

_counter = itertools.count()

#: The login roles' passwords of the whole session: roles are cluster-wide, so every deploy of the
#: session sets these (quotes, spaces, semicolons, dollars and backslashes on purpose).
TEST_PASSWORDS = {
    "hrp_app": "app pw 'quoted' \"double\"; select 1; -- spaces",
    "hrp_readonly": "ro'; drop role hrp_app; --",
    "hrp_backup": "bk $$ dollar \\ backslash %s {}",
    # postgres_exporter gets it through a file and puts it into a URL: every URL delimiter (no
    # white space: postgres_exporter 0.11 cannot take it, monitor.up refuses it)
    "hrp_monitor": "mon@:/?#[]&=+%'q'\"d\"$1\\;",
}


def new_cluster_base(prefix: str = "hrp-test-") -> Path:
    """A fresh directory under /tmp that the server user owns (pytest's tmp dirs are 0700 root)."""
    return make_server_dir(Path(tempfile.mkdtemp(prefix=prefix)), 0o700)


def janitor(cluster: Cluster, dbname: str, template: str | None = None,
            as_template: bool = False) -> DatabaseJanitor:
    """pytest-postgresql's DatabaseJanitor for `dbname` on `cluster` (CREATE DATABASE ... TEMPLATE)."""
    return DatabaseJanitor(user=SUPERUSER, host=str(cluster.socket_dir), port=cluster.port,
                           dbname=dbname, template_dbname=template, as_template=as_template)


def clone(cluster: Cluster, template: str | None, prefix: str) -> Iterator[str]:
    """Superuser DSN of a new database `<prefix>_<n>` cloned from `template` (None: empty),
    dropped when the generator is closed."""
    dbname = f"{prefix}_{next(_counter)}"
    database = janitor(cluster, dbname, template)
    database.init()
    try:
        yield cluster.dsn(dbname)
    finally:
        database.drop()


def as_app(dsn: str, *statements: str) -> None:
    """Writes by the application's role (hrp_app's privileges in this database), committed."""
    with psycopg.connect(dsn) as conn:
        conn.execute("set role hrp_app")
        for statement in statements:
            conn.execute(statement)


def table_contents(dsn: str) -> dict:
    """Every row of the five tables, in id order: what a test compares before and after."""
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(sql.SQL("select * from {} order by id").format(sql.Identifier(t))).fetchall()
                for t in TABLES}
