"""The Patroni + etcd cluster on real processes: bootstrap with the schema, replication settings,
failover under write load (0 lost commits, pg_rewind rejoin), switchover, backups after a role
change, the chaos faults (a fast subset by default, every fault x 3 rounds at production timings
under the `slow` marker), member operations, status, bringing back a cluster left in a mess, down
--wipe of a frozen cluster. One cluster for the module, at the drill's timings; stopped by pid even
when a test fails."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import psycopg
import pytest

from helpers import TEST_PASSWORDS, new_cluster_base
from hrp_harness.platform import procs
from hrp_harness.platform.apply import read_plan
from hrp_harness.ha.chaos import FAULTS, run_chaos
from hrp_harness.platform.deploy import DATABASE
from hrp_harness.ha.patroni import NODES, SCOPE, TIMINGS, HaCluster, HaError, run_drill
from hrp_harness.ha.haproxy import REPORTS_MEMBER, HaProxy
from hrp_harness.platform.paths import REPO

pytestmark = pytest.mark.ha


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
    assert ha_cluster.sync_standby() == "standby1"  # standby2: sync_priority 1, the fallback
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


def test_haproxy_routes_by_patroni_role(ha_cluster):
    """The read-write port reaches the leader, the read-only port alternates over the replicas,
    the reports port reaches standby2; the app's roles log in through them (TLS verified)."""
    ha_cluster.wait_healthy()
    proxy = HaProxy(ha_cluster)
    assert proxy.pid is not None  # started by up()
    password = ha_cluster.password()
    ports = {ha_cluster.pg_port(n): n for n in NODES}

    def served(endpoint: str) -> tuple[str, bool]:
        with psycopg.connect(proxy.dsn(endpoint), password=password) as conn:
            port, recovery = conn.execute("select inet_server_port(), pg_is_in_recovery()").fetchone()
            assert conn.pgconn.ssl_in_use
        return ports[port], recovery

    assert served("read_write") == (ha_cluster.leader(), False)
    readers = {served("read_only") for _ in range(6)}
    assert readers == {(n, True) for n in NODES if n != ha_cluster.leader()}
    if ha_cluster.leader() != REPORTS_MEMBER:
        assert served("reports") == (REPORTS_MEMBER, True)
    # the app roles' passwords are the session's (conftest: HRP_*_PASSWORD)
    with psycopg.connect(proxy.endpoints()["read_write"], password=TEST_PASSWORDS["hrp_app"]) as conn:
        assert conn.execute("select current_user, pg_is_in_recovery()").fetchone() == ("hrp_app", False)
    with psycopg.connect(proxy.endpoints()["read_only"], password=TEST_PASSWORDS["hrp_readonly"]) as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is True


def test_failover_under_write_load_loses_no_commit(ha_cluster):
    old = ha_cluster.leader()
    result, lines = run_drill("drill", base=ha_cluster.base)
    summary = json.loads(lines[-1])
    assert summary["lost_commits"] == 0
    assert summary["acked_commits"] > 100
    # through HAProxy: writes at the read-write port, reads at the read-only port counted
    assert summary["via"] == "haproxy" and summary["ro_reads"] > 20
    assert summary["ro_errors"] <= summary["ro_reads"] // 4, summary
    # The RTO target (<= 15 s at these timings) is the drill's to judge (`invoke cluster.drill`
    # exits 1 when missed); a loaded machine must not fail the suite. Here: failover happened
    # within the spec's RTO of 2 minutes, and the drill reports the target it judged by.
    assert 0 < summary["rto_s"] < 120
    assert summary["rto_target_s"] == 30.0
    assert summary["targets_met"] == (summary["rto_s"] <= 30.0)
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
    with pytest.raises(HaError, match="switchover candidate 'nosuchnode': expected one of"):
        ha_cluster.switchover("nosuchnode")


def test_a_taken_port_is_named_not_waited_for(tmp_path, monkeypatch):
    import socket

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
    from helpers import TEST_PASSWORDS
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


# -- chaos: every fault, no acknowledged commit lost, the cluster converges by itself -----------

#: The default suite's subset, at the drill's timings: the frozen primary node (the issue's lost
#: commits: strict synchronous mode and Patroni's stale-leader check) and the frozen postmaster
#: (the postmaster check). All six, 3 rounds each at production timings, under `slow`.
FAST_FAULTS = ("freeze-primary", "freeze-postmaster")


def _assert_chaos(summary: dict, rounds: int) -> None:
    assert summary["rounds"] == rounds, summary
    assert summary["lost_commits"] == 0, summary["details"]
    assert summary["converged"] is True, summary["details"]
    assert all(r["acked"] > 50 for r in summary["details"]), "the write load ran"
    assert summary["max_write_outage_s"] <= 120, summary["details"]  # spec RTO


@pytest.mark.parametrize("fault", FAST_FAULTS)
def test_chaos_fast(ha_cluster, fault):
    lines = []
    summary = run_chaos(fault, 1, "drill", base=ha_cluster.base, echo=lines.append)
    _assert_chaos(summary, 1)
    assert set(json.loads(lines[-1])) == {"fault", "rounds", "lost_commits", "converged",
                                          "max_write_outage_s", "max_recovery_s"}
    if fault == "freeze-primary":  # the frozen primary lost its lock: someone else leads now
        assert summary["details"][0]["new_primary"] != summary["details"][0]["old_primary"]
    if fault == "freeze-postmaster":  # the check killed the hung postmaster, Patroni restarted it
        node = summary["details"][0]["old_primary"]
        assert "hangs: SIGKILL" in (ha_cluster.node_dir(node) / "postmaster-check.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_chaos_production_three_rounds(ha_cluster, fault):
    lines = []
    summary = run_chaos(fault, 3, "production", base=ha_cluster.base, echo=lines.append)
    print("\n".join(lines))
    _assert_chaos(summary, 3)


def test_chaos_refuses_an_unknown_fault(ha_cluster):
    with pytest.raises(HaError, match="fault 'freeze-everything': expected one of kill-primary"):
        run_chaos("freeze-everything", 1, "drill", base=ha_cluster.base)


# -- member operations, status -------------------------------------------------------------------

def _invoke(base, *args: str) -> subprocess.CompletedProcess:
    """An invoke task as a user runs it, on the module's cluster (HRP_STATE_DIR = its parent)."""
    env = {**os.environ, "HRP_STATE_DIR": str(base.parent)}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_status_exit_code_json_and_member_stop_start(ha_cluster):
    ha_cluster.wait_healthy()
    done = _invoke(ha_cluster.base, "cluster.status")
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout.splitlines()[-1])
    assert status["healthy"] is True
    assert {m["name"] for m in status["members"]} == set(NODES)
    for member in status["members"]:
        assert set(member) == {"name", "role", "state", "host", "port", "timeline", "lag", "pids"}
        assert member["pids"]["patroni"] and member["pids"]["postmaster"]
    assert "target_session_attrs=read-write" in status["dsn"]
    proxy = HaProxy(ha_cluster)
    assert status["endpoints"] == proxy.endpoints() and set(status["endpoints"]) == {
        "read_write", "read_only", "reports"}
    assert f"port={proxy.ports['read_write']} user=hrp_app dbname=hrp_database" in status["endpoints"]["read_write"]
    assert f"read_only: {status['endpoints']['read_only']}" in done.stdout
    assert "sync_priority=" in done.stdout  # tags shown
    replica = next(n for n in NODES if n not in (ha_cluster.leader(), ha_cluster.sync_standby()))
    done = _invoke(ha_cluster.base, "cluster.member", "--name", replica, "stop")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ha_cluster.patroni_pid(replica) is None and ha_cluster.postmaster_pid(replica) is None
    done = _invoke(ha_cluster.base, "cluster.status")
    assert done.returncode == 1
    assert f"{replica}: not in the cluster" in json.loads(done.stdout.splitlines()[-1])["problems"][0]
    done = _invoke(ha_cluster.base, "cluster.member", "--name", replica, "start")
    assert done.returncode == 0, done.stdout + done.stderr
    ha_cluster.wait_healthy()
    assert _invoke(ha_cluster.base, "cluster.status").returncode == 0


def test_member_restart_and_reinit(ha_cluster):
    ha_cluster.wait_healthy()
    replica = next(n for n in NODES if n != ha_cluster.leader())
    before = ha_cluster.postmaster_pid(replica)
    ha_cluster.member(replica, "restart")
    assert ha_cluster.postmaster_pid(replica) not in (None, before)
    marker = ha_cluster.data_dir(replica) / "hrp-reinit-marker"
    marker.write_text("gone after a re-clone")
    result = ha_cluster.member(replica, "reinit")
    assert result["action"] == "reinit"
    assert not marker.exists(), "reinit re-cloned the data directory"
    ha_cluster.wait_healthy()
    with pytest.raises(HaError, match="is the leader: reinit re-clones a replica"):
        ha_cluster.member(ha_cluster.leader(), "reinit")
    with pytest.raises(HaError, match="member action 'explode'"):
        ha_cluster.member(replica, "explode")
    done = _invoke(ha_cluster.base, "cluster.member", "--name", "nosuchnode", "stop")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: member 'nosuchnode': expected one of")


def test_pause_resume_and_failover_to_a_candidate(ha_cluster):
    ha_cluster.wait_healthy()
    assert ha_cluster.pause(True) == {"paused": True}
    assert ha_cluster.status()["paused"] is True
    assert ha_cluster.pause(False) == {"paused": False}
    candidate = ha_cluster.sync_standby()
    old = ha_cluster.leader()
    result = ha_cluster.failover(candidate)
    assert result["old_primary"] == old and result["new_primary"] == candidate
    assert result["candidate_was_sync_standby"] is True
    assert ha_cluster.leader() == candidate
    ha_cluster.wait_healthy()


def test_up_brings_back_a_cluster_left_in_a_mess(ha_cluster):
    """What an interrupted drill leaves: two members dead, a stale failover key, the cluster
    paused, the survivor frozen, etcd dead; `cluster.up` brings it back without help."""
    ha_cluster.wait_healthy()
    leader = ha_cluster.leader()
    others = [n for n in NODES if n != leader]
    ha_cluster.pause(True)
    ha_cluster.kill_node(others[0])
    ha_cluster.kill_node(others[1])
    ha_cluster._etcd("put", {"key": f"/service/{SCOPE}/failover",
                             "value": json.dumps({"leader": others[0], "member": others[1]})})
    for proc in ha_cluster.node_processes(leader):
        os.kill(proc.pid, signal.SIGSTOP)
    procs.kill_tree_now([ha_cluster.etcd_pid()])
    result = ha_cluster.up(apply_schema=False)
    assert result["healthy"] is True, result["problems"]
    assert result["paused"] is False
    assert ha_cluster.etcd_get(f"/service/{SCOPE}/failover") is None


def _frozen(cluster: HaCluster) -> bool:
    """Whether any process of the cluster is stopped (SIGSTOP) now."""
    for proc in cluster.processes():
        try:
            if proc.status() == "stopped":
                return True
        except psutil.NoSuchProcess:  # a backend that ended meanwhile
            continue
    return False


def test_a_chaos_run_killed_half_way_leaves_nothing_up_cannot_undo(ha_cluster):
    """SIGKILL of `invoke cluster.chaos` while it holds the primary frozen and has switched the
    timings (as a CI timeout does): `cluster.up` continues the frozen processes, sets the timings
    back and the cluster is healthy; no key of the run is left."""
    ha_cluster.wait_healthy()
    env = {**os.environ, "HRP_STATE_DIR": str(ha_cluster.base.parent)}
    run = subprocess.Popen([sys.executable, "-m", "invoke", "cluster.chaos", "--fault", "freeze-primary",
                            "--timings", "production"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _frozen(ha_cluster):
            assert time.monotonic() < deadline and run.poll() is None, "the run never froze a member"
            time.sleep(0.2)
    finally:
        run.kill()
        run.wait()
    assert ha_cluster.dcs_timings() == TIMINGS["production"], "the killed run left its timings"
    done = _invoke(ha_cluster.base, "cluster.up", "--timings", "drill")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not _frozen(ha_cluster)
    assert ha_cluster.dcs_timings() == TIMINGS["drill"]
    assert ha_cluster.etcd_get(f"/service/{SCOPE}/failover") is None
    assert ha_cluster.problems() == []


# -- last: down --wipe of a cluster with frozen processes ------------------------------------------

def test_down_wipe_ends_stopped_and_wiped_even_when_frozen(ha_cluster):
    ha_cluster.wait_healthy()
    processes = ha_cluster.processes()
    leader = ha_cluster.leader()
    for proc in ha_cluster.node_processes(leader):
        os.kill(proc.pid, signal.SIGSTOP)
    done = _invoke(ha_cluster.base, "cluster.down", "--wipe")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "stopped and wiped"
    assert not ha_cluster.base.exists()
    alive = [p.pid for p in processes if not procs.gone(p)]
    assert alive == []
