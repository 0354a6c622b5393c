"""deploy --dsn onto a server that lacks the project's server-wide settings: it creates the roles
with SCRAM passwords and exactly the spec's privileges, changes nothing server-wide, sets the audit
settings at database scope, and lists what a DBA must install (and which needs a restart)."""

from __future__ import annotations

import psycopg
import pytest

from helpers import TEST_PASSWORDS, new_cluster_base
from hrp_harness.platform.cluster import DATABASE, Cluster
from hrp_harness.platform.deploy import deploy
from hrp_harness.platform.paths import REPO
from hrp_harness.platform.pgtap import run_pgtap
from hrp_harness.platform.serverconf import advice_lines, matches, server_advice


@pytest.fixture(scope="module")
def plain_server():
    """A server with PostgreSQL's defaults but memory (no pgaudit, no TLS, no logging collector),
    as a DBA's existing server might be; one per module."""
    cluster = Cluster(new_cluster_base(), shared_buffers_mb=32, fragments=("tuning",))
    try:
        cluster.init().start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def dsn_deploy(plain_server):
    lines: list[str] = []
    target = deploy(plain_server.dsn(DATABASE), echo=lines.append)
    return target, lines


@pytest.mark.cluster
def test_dsn_deploy_lists_server_wide_settings_with_restart_marks(dsn_deploy):
    _, lines = dsn_deploy
    text = "\n".join(lines)
    assert "deploy changed nothing server-wide" in text
    assert "RESTART  shared_preload_libraries = 'pgaudit,pg_stat_statements,pg_cron'" in text
    assert "RESTART  cron.use_background_workers = on" in text
    assert "RESTART  logging_collector = on" in text
    assert "reload   ssl = on    (now: off; conf/tls.conf)" in text
    assert "reload   ssl_min_protocol_version = 'TLSv1.3'" in text
    assert "reload   log_connections = on" in text
    assert "pg_hba.conf" in text and "run deploy --dsn again to create the pgaudit extension" in text
    # the settings deploy could set for the database are not listed as missing
    assert "log_statement = " not in text and "log_min_duration_statement" not in text


@pytest.mark.cluster
def test_dsn_deploy_without_pg_cron_says_the_jobs_are_not_scheduled_and_succeeds(dsn_deploy):
    target, lines = dsn_deploy
    notice = [line for line in lines if line.startswith("maintenance jobs NOT scheduled")]
    assert notice == ["maintenance jobs NOT scheduled: pg_cron is not in shared_preload_libraries of "
                      "this server. A DBA adds pg_cron to shared_preload_libraries with "
                      "cron.database_name and cron.use_background_workers (conf/base.conf), restarts, "
                      "and runs deploy again; until then run the jobs with `invoke maintenance.run JOB`"]
    with psycopg.connect(target) as conn:  # the schema and the schedule are there all the same
        assert conn.execute("select count(*) from hrp_maintenance.schedule").fetchone()[0] == 3


@pytest.mark.cluster
def test_dsn_deploy_changes_nothing_server_wide(plain_server, dsn_deploy):
    auto = (plain_server.datadir / "postgresql.auto.conf").read_text()
    assert [line for line in auto.splitlines() if not line.startswith("#")] == []
    with psycopg.connect(plain_server.dsn()) as conn:  # another database: server defaults
        got = dict(conn.execute("select name, setting from pg_settings where name in"
                                " ('ssl', 'log_statement', 'shared_preload_libraries')"))
    assert got == {"ssl": "off", "log_statement": "none", "shared_preload_libraries": ""}


@pytest.mark.cluster
def test_dsn_deploy_sets_audit_and_logging_at_database_scope(dsn_deploy):
    target, _ = dsn_deploy
    with psycopg.connect(target) as conn:
        scoped = {name: conn.execute("select current_setting(%s)", (name,)).fetchone()[0]
                  for name in ("pgaudit.log", "pgaudit.log_parameter", "log_statement",
                               "log_min_duration_statement")}
        has_pgaudit = conn.execute("select 1 from pg_extension where extname = 'pgaudit'").fetchone()
    assert scoped == {"pgaudit.log": "all", "pgaudit.log_parameter": "on", "log_statement": "none",
                      "log_min_duration_statement": "1s"}
    assert has_pgaudit is None  # not preloaded: not created (and the deploy did not fail)


@pytest.mark.cluster
def test_dsn_deploy_roles_are_scram_with_exactly_the_spec_privileges(plain_server, dsn_deploy):
    target, _ = dsn_deploy
    with psycopg.connect(target) as conn:
        stored = conn.execute("select rolname, rolpassword from pg_authid"
                              " where rolname like 'hrp\\_%' order by 1").fetchall()
    assert [name for name, _ in stored] == ["hrp_app", "hrp_backup", "hrp_monitor", "hrp_owner",
                                          "hrp_readonly"]
    assert all(p.startswith("SCRAM-SHA-256$4096:") for n, p in stored if n != "hrp_owner")
    assert dict(stored)["hrp_owner"] is None  # NOLOGIN, no password
    # the socket login as hrp_app (pg_hba: local scram) proves the password
    dsn = f"host={plain_server.socket_dir} port={plain_server.port} dbname={DATABASE} user=hrp_app"
    with psycopg.connect(dsn, password=TEST_PASSWORDS["hrp_app"]) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "hrp_app"
    for name in ("roles", "grants"):
        result = run_pgtap(target, REPO / "tests" / "pgtap" / "roles" / f"{name}.sql")
        assert result.ok, "\n" + result.report()


@pytest.mark.cluster
def test_a_server_with_every_setting_needs_nothing(pg_cluster, app_database):
    advice = server_advice(app_database)
    assert [a.name for a in advice if not a.satisfied] == []
    assert advice_lines(advice)[0].startswith("server-wide settings: this server already has")


@pytest.mark.unit
@pytest.mark.parametrize("name, wanted, setting, unit, expected", [
    ("log_rotation_size", "100MB", "102400", "kB", True),
    ("log_rotation_age", "1d", "1440", "min", True),
    ("log_min_duration_statement", "1000", "1000", "ms", True),
    ("log_min_duration_statement", "1000", "500", "ms", False),
    ("shared_preload_libraries", "'pgaudit,pg_stat_statements'", "pg_stat_statements,pgaudit,x",
     None, True),
    ("shared_preload_libraries", "'pgaudit,pg_stat_statements'", "pg_stat_statements", None, False),
    ("ssl", "on", "off", None, False),
    ("log_statement", "'ddl'", "ddl", None, True),
])
def test_setting_comparison_understands_units_and_lists(name, wanted, setting, unit, expected):
    assert matches(name, wanted, setting, unit) is expected
