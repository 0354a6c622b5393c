"""invoke deploy: the embedded default cluster through the CLI, and --dsn onto an existing server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from helpers import TEST_PASSWORDS, new_cluster_base
from hrp_harness import HarnessError
from hrp_harness.platform.apply import read_plan
from hrp_harness.platform.cluster import Cluster
from hrp_harness.platform.deploy import deploy
from hrp_harness.platform.pgbouncer import PgBouncer
from hrp_harness.platform.paths import REPO
from hrp_harness.platform.server_user import is_root

INVOKE = [sys.executable, "-m", "invoke"]


def quiet(*_args):
    pass


def invoke(*args: str, state: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HRP_STATE_DIR": str(state)}
    return subprocess.run([*INVOKE, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


@dataclass
class Embedded:
    """The module's embedded deploy: its state directory, the first `invoke deploy`, its cluster."""

    state: Path
    first: subprocess.CompletedProcess
    cluster: Cluster

    @property
    def app_line(self) -> str:
        """The application's TCP connection string deploy prints: TLS 1.3, the certificate verified, SCRAM."""
        return (f"psql 'host=127.0.0.1 port={self.cluster.port} user=hrp_app dbname=hrp_database "
                f"sslmode=verify-full sslrootcert={self.cluster.tls_dir / 'ca.crt'}'")


@pytest.fixture(scope="module")
def embedded():
    """One embedded deploy for the module's steps below, which run in order on it."""
    state = new_cluster_base("hrp-state-")
    try:
        yield Embedded(state, invoke("deploy", state=state), Cluster(state / "pg"))
    finally:
        Cluster(state / "pg").destroy()
        shutil.rmtree(state, ignore_errors=True)  # the sample, secrets and load logs deploy left there


# -- the embedded cluster's life, one step per test (each step runs on what the previous left) --------

@pytest.mark.cluster
def test_embedded_deploy_initialises_starts_and_applies(embedded):
    first, cluster = embedded.first, embedded.cluster
    assert first.returncode == 0, first.stderr
    assert "initialising the embedded PostgreSQL 15 cluster" in first.stdout
    assert f"apply: {len(read_plan())} file(s) applied" in first.stdout
    assert cluster.running
    with psycopg.connect(cluster.dsn("hrp_database")) as conn:
        settings = dict(conn.execute(
            "select name, setting from pg_settings where name in"
            " ('shared_preload_libraries', 'listen_addresses', 'unix_socket_directories', 'port')"))
        tables = conn.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone()
    assert settings["shared_preload_libraries"] == "pgaudit,pg_stat_statements,pg_cron"
    # the maintenance jobs are scheduled in pg_cron (database postgres) for hrp_database
    assert ("maintenance: 3 job(s) of hrp_database in pg_cron (database postgres, UTC): "
            "daily_vacuum_analyze@hrp_database '30 3 * * *', monthly_capacity@hrp_database "
            "'0 2 1 * *', weekly_report@hrp_database '0 3 * * 0'") in first.stdout
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["unix_socket_directories"] == str(cluster.socket_dir)
    assert int(settings["port"]) == cluster.port
    assert tables[0] == 5
    if is_root():  # the postmaster runs as the unprivileged server user, never root
        uid = os.stat(f"/proc/{cluster.pid}").st_uid
        assert uid != 0


@pytest.mark.cluster
def test_embedded_deploy_prints_the_psql_line_and_a_tls13_only_app_string(embedded):
    first, cluster = embedded.first, embedded.cluster
    assert f"psql 'host={cluster.socket_dir} port={cluster.port} user=postgres dbname=hrp_database'" \
        in first.stdout
    # the application's TCP connection string: TLS 1.3, the server certificate verified, SCRAM
    assert embedded.app_line in first.stdout
    conninfo = embedded.app_line.split("'")[1]
    with psycopg.connect(conninfo, password=TEST_PASSWORDS["hrp_app"]) as conn:
        assert conn.execute("select version from pg_stat_ssl"
                            " where pid = pg_backend_pid()").fetchone()[0] == "TLSv1.3"
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(conninfo.replace("sslmode=verify-full", "sslmode=disable"),
                        password=TEST_PASSWORDS["hrp_app"])


@pytest.mark.cluster
def test_embedded_redeploy_keeps_every_row_the_app_wrote_and_a_load_refuses(embedded):
    state, cluster = embedded.state, embedded.cluster
    conninfo = embedded.app_line.split("'")[1]
    # the app writes over TCP, as the app: a re-deploy keeps every row, and a load refuses
    with psycopg.connect(conninfo, password=TEST_PASSWORDS["hrp_app"]) as conn:
        conn.execute("insert into races (race_name, race_date) values ('Written By The App', '2026-12-01')")
        conn.execute("update horses set jockey = 'App Jockey' where id = 1")
    with psycopg.connect(cluster.dsn("hrp_database")) as conn:
        before = {t: conn.execute(f"select * from {t} order by id").fetchall()
                  for t in ("races", "horses", "users", "api_credentials", "predictions")}

    second = invoke("deploy", state=state)
    assert second.returncode == 0, second.stderr
    assert "apply: nothing to do" in second.stdout
    assert "initialising" not in second.stdout
    assert "maintenance: 3 job(s) of hrp_database in pg_cron" in second.stdout
    rows = sum(len(v) for v in before.values())
    assert rows == 56_105 + 1  # the test-size sample and the app's race
    assert f"data left alone: the database holds {rows} rows in its five tables, loaded by migration run 1" \
        in second.stdout
    refused = invoke("load", "--sqlite", str(state / "sample-test-seed1.sqlite"), state=state)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the target changed since load run 1 (the app wrote to it?): "
                                     "horses: 0 inserted, 1 changed, 0 deleted; races: 1 inserted")
    with psycopg.connect(cluster.dsn("hrp_database")) as conn:
        after = {t: conn.execute(f"select * from {t} order by id").fetchall()
                 for t in ("races", "horses", "users", "api_credentials", "predictions")}
    assert after == before


@pytest.mark.cluster
def test_embedded_status_names_the_cluster_and_the_app_strings(embedded):
    state, cluster = embedded.state, embedded.cluster
    status = invoke("status", state=state)
    assert f"running, pid {cluster.pid}, 127.0.0.1:{cluster.port}" in status.stdout
    assert f"{len(read_plan())} file(s) applied" in status.stdout
    # the last line: the application's string through PgBouncer, and the direct one
    summary = json.loads(status.stdout.strip().splitlines()[-1])
    pooler = PgBouncer(cluster)
    assert f"psql '{summary['app_dsn']}'" in embedded.first.stdout and f"port={pooler.port} " in summary["app_dsn"]
    assert summary["direct_dsn"] == embedded.app_line.split("'")[1] and summary["pooler_running"]
    with psycopg.connect(summary["app_dsn"], password=TEST_PASSWORDS["hrp_app"]) as conn:
        # the race the re-deploy step's app wrote
        assert conn.execute("select count(*) from races where race_name = 'Written By The App'").fetchone()[0] == 1


@pytest.mark.cluster
def test_embedded_stop_then_deploy_starts_it_again_with_its_data(embedded):
    state, cluster = embedded.state, embedded.cluster
    pooler = PgBouncer(cluster)
    stopped = invoke("stop", state=state)
    assert stopped.returncode == 0 and not cluster.running and not pooler.running
    assert "stopped" in invoke("status", state=state).stdout
    again = invoke("deploy", state=state)  # a stopped cluster is started again, data kept
    assert again.returncode == 0, again.stderr
    assert cluster.running and "apply: nothing to do" in again.stdout and pooler.running


HOSTILE = 'hrp "db"; drop database postgres; --'


@pytest.mark.cluster
def test_deploy_dsn_creates_a_hostile_named_database_and_changes_nothing_else(pg_cluster):
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        before = conn.execute("select datname from pg_database order by 1").fetchall()
    url = f"{pg_cluster.dsn(HOSTILE)}"
    target = deploy(url, echo=quiet)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        after = conn.execute("select datname from pg_database order by 1").fetchall()
        assert sorted(set(after) - set(before)) == [(HOSTILE,)]
        with psycopg.connect(target) as db:
            assert db.execute("select count(*) from hrp_deploy.ledger").fetchone()[0] == len(read_plan())
        assert deploy(url, echo=quiet) == target  # second deploy: nothing applied, no error
        conn.execute(sql.SQL("drop database {}").format(sql.Identifier(HOSTILE)))


@pytest.mark.cluster
def test_deploy_dsn_over_tcp_with_password_url(pg_cluster):
    password = "p@ss w'rd;\"x"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("create role hrp_test_admin superuser login password {}").format(
            sql.Literal(password)))
    try:
        url = pg_cluster.tcp_dsn("hrp_tcp_target", "hrp_test_admin", password)
        target = deploy(url, echo=quiet)
        with psycopg.connect(target) as db:
            assert db.execute("select current_database()").fetchone()[0] == "hrp_tcp_target"
        with pytest.raises(HarnessError, match="cannot connect to PostgreSQL at 127.0.0.1:"):
            deploy(pg_cluster.tcp_dsn("hrp_tcp_target", "hrp_test_admin", "wrong"), echo=quiet)
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute("drop database if exists hrp_tcp_target")
            conn.execute("drop role hrp_test_admin")


@pytest.mark.cluster
def test_deploy_dsn_refuses_a_non_superuser(pg_cluster):
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("create role hrp_test_plain login password 'plain-pw-1'")
    try:
        url = pg_cluster.tcp_dsn("postgres", "hrp_test_plain", "plain-pw-1")
        with pytest.raises(HarnessError, match="must connect as a superuser.*'hrp_test_plain'"):
            deploy(url, echo=quiet)
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute("drop role hrp_test_plain")


@pytest.mark.unit
@pytest.mark.parametrize("url, error", [
    ("postgresql://postgres@127.0.0.1:1/hrp_database?connect_timeout=2",
     "cannot connect to PostgreSQL at 127.0.0.1:1"),
    ("postgresql://postgres@127.0.0.1:5432", "--dsn must name the target database"),
    ("not a url = =", "--dsn is not a valid PostgreSQL URL or conninfo"),
])
def test_deploy_dsn_bad_targets_are_clear_errors(url, error):
    with pytest.raises(HarnessError, match=error.replace(".", r"\.").replace("?", r"\?")):
        deploy(url, echo=quiet)


@pytest.mark.unit
def test_cli_reports_errors_without_traceback(tmp_path):
    done = invoke("deploy", "--dsn", "postgresql://postgres@127.0.0.1:1/x?connect_timeout=2",
                  state=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot connect to PostgreSQL at 127.0.0.1:1")
    assert "Traceback" not in done.stderr
