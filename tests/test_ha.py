"""The Patroni + etcd cluster on real processes: bootstrap with the schema, replication settings,
failover under write load (0 lost commits, pg_rewind rejoin), switchover, backups after a role
change. One cluster for the module, at the drill's timings; stopped by pid even when a test fails."""

from __future__ import annotations

import json
import shutil
import time

import psycopg
import pytest
from conftest import new_cluster_base

from hrp_harness.apply import read_plan
from hrp_harness.deploy import DATABASE
from hrp_harness.ha import NODES, TIMINGS, HaCluster, run_drill


@pytest.fixture(scope="module")
def ha_cluster():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HRP_BACKUP_PASSPHRASE", "test-ha-passphrase")
        base = new_cluster_base("hrp-ha-")
        cluster = HaCluster(base / "ha", timings=TIMINGS["drill"])
        try:
            cluster.up()
            yield cluster
        finally:
            cluster.down(wipe=True)
            shutil.rmtree(base, ignore_errors=True)


def test_bootstrap_three_members_sync_standby_and_schema_everywhere(ha_cluster):
    members = {m["name"]: m for m in ha_cluster.members()}
    assert set(members) == set(NODES)
    assert ha_cluster.leader() == "node1"
    assert ha_cluster.sync_standby() == "standby1"  # standby2 carries nosync
    assert members["standby2"]["role"] == "replica"
    planned = len(read_plan())
    for name in NODES:  # replicas replay the deploy within moments (standby2 asynchronously)
        deadline, applied = time.monotonic() + 20, None
        while applied != planned and time.monotonic() < deadline:
            try:
                with psycopg.connect(ha_cluster.node_dsn(name, DATABASE)) as conn:
                    applied = conn.execute("select count(*) from hrp_deploy.ledger").fetchone()[0]
            except psycopg.OperationalError:  # database "hrp_database" not replayed yet
                time.sleep(0.2)
        assert applied == planned, f"{name}: {applied} of {planned} plan files"


def test_replication_settings_from_the_conf_fragments(ha_cluster):
    leader, replica = ha_cluster.leader(), "standby2"
    with psycopg.connect(ha_cluster.node_dsn(leader)) as conn:
        show = {name: conn.execute(f"show {name}").fetchone()[0] for name in (
            "wal_level", "max_wal_senders", "synchronous_commit", "synchronous_standby_names",
            "archive_mode", "archive_command", "shared_preload_libraries")}
    assert show["wal_level"] == "replica"
    assert show["max_wal_senders"] == "3"
    assert show["synchronous_commit"] == "on"
    assert "standby1" in show["synchronous_standby_names"]
    assert show["archive_mode"] == "on"
    assert "archive-push" in show["archive_command"]
    assert str(ha_cluster.data_dir(leader)) in show["archive_command"]
    assert "pgaudit" in show["shared_preload_libraries"]
    with psycopg.connect(ha_cluster.node_dsn(leader)) as conn:
        streams = conn.execute("select s.ssl, s.version from pg_stat_replication as r "
                               "join pg_stat_ssl as s on s.pid = r.pid").fetchall()
    assert streams == [(True, "TLSv1.3")] * 2, "both standbys stream over TLS 1.3"
    with psycopg.connect(ha_cluster.dsn()) as conn:  # clients: TLS, server certificate verified
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]
        assert conn.pgconn.ssl_in_use
    with psycopg.connect(ha_cluster.node_dsn(replica)) as conn:
        assert conn.execute("show hot_standby_feedback").fetchone()[0] == "on"
        assert conn.execute("show max_standby_streaming_delay").fetchone()[0] == "30s"
        assert conn.execute("show wal_receiver_status_interval").fetchone()[0] == "10s"
        assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is True


def test_failover_under_write_load_loses_no_commit(ha_cluster):
    old = ha_cluster.leader()
    result, lines = run_drill("drill", base=ha_cluster.base)
    summary = json.loads(lines[-1])
    assert summary["lost_commits"] == 0
    assert summary["acked_commits"] > 100
    # The RTO target (<= 15 s at these timings) is the drill's to judge (`invoke cluster.drill`
    # exits 1 when missed); a loaded machine must not fail the suite. Here: failover happened
    # within the spec's RTO of 2 minutes, and the drill reports the target it judged by.
    assert 0 < summary["rto_s"] < 120
    assert summary["rto_target_s"] == 15.0
    assert summary["targets_met"] == (summary["rto_s"] <= 15.0)
    assert summary["old_primary"] == old
    assert summary["new_primary"] not in (None, old)
    # The old primary is back as a replica and the cluster is whole again.
    members = {m["name"]: m for m in ha_cluster.members()}
    assert members[old]["role"] in ("replica", "sync_standby")
    assert members[old]["state"] in ("running", "streaming")
    assert ha_cluster.leader() == summary["new_primary"]
    # ... and replays the new primary's WAL: every acknowledged commit reaches it.
    deadline, rows = time.monotonic() + 20, -1
    while rows < summary["acked_commits"] and time.monotonic() < deadline:
        with psycopg.connect(ha_cluster.node_dsn(old)) as conn:
            rows = conn.execute("select count(*) from public.hrp_drill_writes").fetchone()[0]
        time.sleep(0.2)
    assert rows >= summary["acked_commits"]


def test_switchover_and_backup_from_the_new_primary(ha_cluster):
    ha_cluster.wait_healthy()
    old = ha_cluster.leader()
    result = ha_cluster.switchover()
    assert result["old_primary"] == old
    assert ha_cluster.leader() == result["new_primary"] != old
    with psycopg.connect(ha_cluster.dsn(DATABASE)) as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is False
        assert int(conn.execute("show port").fetchone()[0]) == ha_cluster.pg_port(result["new_primary"])
    # pgBackRest finds the primary among the three members, whichever it is now.
    entry = ha_cluster.repository.backup("full")
    assert entry["type"] == "full"
    assert entry["error"] is False


def test_switchover_refuses_a_bad_candidate(ha_cluster):
    from hrp_harness.ha import HaError

    with pytest.raises(HaError, match="switchover candidate 'nosuchnode'"):
        ha_cluster.switchover("nosuchnode")


def test_a_taken_port_is_named_not_waited_for(tmp_path, monkeypatch):
    import socket

    from hrp_harness.ha import HaError

    monkeypatch.setenv("HRP_BACKUP_PASSPHRASE", "test-ha-passphrase")
    base = new_cluster_base("hrp-ha-ports-")
    cluster = HaCluster(base / "ha")
    try:
        cluster._prepare()
        port = cluster.meta["etcd"]["client_port"]
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(HaError, match=rf"etcd cannot start: 127.0.0.1 port\(s\) \[{port}\]"):
                cluster.start_etcd()
    finally:
        cluster.down(wipe=True)
        shutil.rmtree(base, ignore_errors=True)


def test_members_enforce_the_project_pg_hba(ha_cluster):
    from conftest import TEST_PASSWORDS
    from psycopg.conninfo import make_conninfo

    port = ha_cluster.pg_port(ha_cluster.leader())
    ca = ha_cluster.base / "tls" / "ca.crt"
    app = dict(host="127.0.0.1", port=port, user="hrp_app", password=TEST_PASSWORDS["hrp_app"],
               sslmode="verify-full", sslrootcert=str(ca), connect_timeout=5)
    with psycopg.connect(make_conninfo(**app, dbname=DATABASE)) as conn:
        assert conn.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError, match="rejects connection"):
        psycopg.connect(make_conninfo(**app, dbname="postgres"))  # application roles: hrp_database only
    with pytest.raises(psycopg.OperationalError, match="rejects connection|no encryption"):
        psycopg.connect(make_conninfo(**{**app, "sslmode": "disable"}, dbname=DATABASE))
