"""Shared fixtures: one throwaway PostgreSQL 15 cluster per test session (the harness's own
Cluster, so the tests exercise it), a template database with deploy.plan applied, and a fresh
clone of it per test (pytest-postgresql's DatabaseJanitor: CREATE DATABASE ... TEMPLATE).

And the tiers' guard: every test carries exactly one tier marker (pytest.ini's `unit`, `cluster`,
`ha`), and no `unit` test reaches the session cluster, so `pytest -m unit` never starts a server."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from helpers import TEST_PASSWORDS, clone, janitor, new_cluster_base
from hrp_harness.platform.apply import apply
from hrp_harness.platform.cluster import DATABASE, Cluster
from hrp_harness.platform.passwords import ROLE_ENV

#: pytest.ini's tiers: each test is in exactly one (`slow` comes on top of one).
TIERS = ("unit", "cluster", "ha")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With -s (`./hrp test --slow` prints the chaos tables) the run stays in this one process."""
    if config.getoption("capture") == "no":  # xdist's workers would swallow what the tests print
        config.option.numprocesses = 0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Refuse a test without exactly one tier, or `unit` using the cluster; the `ha` tests first."""
    problems = []
    for item in items:  # before -m deselects: `pytest -m unit` refuses an unmarked cluster test too
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            problems.append(f"{item.nodeid}: {'tiers ' + ', '.join(tiers) if tiers else 'no tier marker'}"
                            f" (mark it with exactly one of {', '.join(TIERS)})")
        elif tiers == ["unit"] and "pg_cluster" in getattr(item, "fixturenames", ()):
            problems.append(f"{item.nodeid}: marked unit but uses the session cluster (pg_cluster):"
                            " mark it cluster")
    if problems:
        raise pytest.UsageError("tests without one tier marker:\n  " + "\n  ".join(problems))
    # the Patroni module is the suite's longest file, mostly waiting: first, so that an xdist worker
    # starts on it at once while the others take the rest
    items.sort(key=lambda item: item.get_closest_marker("ha") is None)


@pytest.fixture(scope="session", autouse=True)
def session_secrets():
    """HRP_*_PASSWORD set to TEST_PASSWORDS and HRP_STATE_DIR to a throwaway dir (never the repo's .state)."""
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


@pytest.fixture(scope="session")
def schema_template(pg_cluster):
    """Name of a template database with the whole deploy.plan applied (once per session)."""
    janitor(pg_cluster, "hrp_schema_template").init()
    apply(pg_cluster.dsn("hrp_schema_template"), echo=lambda *_: None)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("alter database hrp_schema_template with is_template true allow_connections false")
    yield "hrp_schema_template"


@pytest.fixture(scope="session")
def app_database(pg_cluster):
    """Superuser DSN of the session cluster's hrp_database, deployed as `deploy --dsn` does it."""
    # roles, SCRAM passwords, database-scope settings: pg_hba lets the login roles reach only it
    from hrp_harness.platform.deploy import deploy

    yield deploy(pg_cluster.dsn(DATABASE), echo=lambda *_: None)


@pytest.fixture
def schema_db(pg_cluster, schema_template):
    """Superuser DSN of a fresh database with the project schema (cloned from the template)."""
    yield from clone(pg_cluster, schema_template, "hrp_test")


@pytest.fixture(scope="module")
def module_db(pg_cluster, schema_template):
    """Superuser DSN of a fresh database with the project schema, shared by one test module."""
    # one expensive load, many cases reading it
    yield from clone(pg_cluster, schema_template, "hrp_module")


@pytest.fixture
def empty_db(pg_cluster):
    """Superuser DSN of a fresh empty database."""
    yield from clone(pg_cluster, None, "hrp_empty")

