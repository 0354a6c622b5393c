"""Shared fixtures: one throwaway PostgreSQL 15 cluster per test session (the harness's own
Cluster, so the tests exercise it), a template database with deploy.plan applied, and a fresh
clone of it per test (pytest-postgresql's DatabaseJanitor: CREATE DATABASE ... TEMPLATE)."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pytest_postgresql.janitor import DatabaseJanitor

from hrp_harness.apply import apply
from hrp_harness.cluster import DATABASE, SUPERUSER, Cluster
from hrp_harness.passwords import ROLE_ENV
from hrp_harness.server_user import make_server_dir

_counter = itertools.count()


def new_cluster_base(prefix: str = "hrp-test-") -> Path:
    """A fresh directory under /tmp that the server user owns (pytest's tmp dirs are 0700 root)."""
    return make_server_dir(Path(tempfile.mkdtemp(prefix=prefix)), 0o700)


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


@pytest.fixture(scope="session", autouse=True)
def session_secrets():
    """HRP_*_PASSWORD set to TEST_PASSWORDS, and a throwaway state dir, so no test writes a
    secrets file into the repository's .state."""
    state = new_cluster_base("hrp-state-")
    with pytest.MonkeyPatch.context() as patch:
        for role, variable in ROLE_ENV.items():
            patch.setenv(variable, TEST_PASSWORDS[role])
        patch.setenv("HRP_STATE_DIR", str(state))
        yield TEST_PASSWORDS
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL 15 cluster for the whole session, with conf/ installed; destroyed after."""
    cluster = Cluster(new_cluster_base(), shared_buffers_mb=128)
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.destroy()


def _janitor(cluster: Cluster, dbname: str, template: str | None = None,
             as_template: bool = False) -> DatabaseJanitor:
    return DatabaseJanitor(user=SUPERUSER, host=str(cluster.socket_dir), port=cluster.port,
                           dbname=dbname, template_dbname=template, as_template=as_template)


@pytest.fixture(scope="session")
def schema_template(pg_cluster):
    """Name of a template database with the whole deploy.plan applied (once per session)."""
    janitor = _janitor(pg_cluster, "hrp_schema_template", as_template=False)
    janitor.init()
    apply(pg_cluster.dsn("hrp_schema_template"), echo=lambda *_: None)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("alter database hrp_schema_template with is_template true allow_connections false")
    yield "hrp_schema_template"


@pytest.fixture(scope="session")
def app_database(pg_cluster):
    """Superuser DSN of the session cluster's hrp_database, deployed as `deploy --dsn` does it
    (roles, SCRAM passwords, database-scope settings): pg_hba lets the login roles reach only it."""
    from hrp_harness.deploy import deploy

    yield deploy(pg_cluster.dsn(DATABASE), echo=lambda *_: None)


def _clone(cluster: Cluster, template: str | None, prefix: str):
    dbname = f"{prefix}_{next(_counter)}"
    janitor = _janitor(cluster, dbname, template)
    janitor.init()
    try:
        yield cluster.dsn(dbname)
    finally:
        janitor.drop()


@pytest.fixture
def schema_db(pg_cluster, schema_template):
    """Superuser DSN of a fresh database with the project schema (cloned from the template)."""
    yield from _clone(pg_cluster, schema_template, "hrp_test")


@pytest.fixture(scope="module")
def module_db(pg_cluster, schema_template):
    """Superuser DSN of a fresh database with the project schema, shared by one test module (one
    expensive load, many cases reading it)."""
    yield from _clone(pg_cluster, schema_template, "hrp_module")


@pytest.fixture
def empty_db(pg_cluster):
    """Superuser DSN of a fresh empty database."""
    yield from _clone(pg_cluster, None, "hrp_empty")


def dsn_with(dsn: str, **params) -> str:
    return make_conninfo(dsn, **params)
