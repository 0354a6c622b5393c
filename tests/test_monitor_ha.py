"""`invoke monitor.up --ha` against a Patroni cluster of its own (slow: the cluster takes a minute
or two to bootstrap): an exporter per member, each logged in as hrp_monitor; Patroni's /metrics of
every member scraped; the leader's replication lag per standby; no "no leader" alert; then a
member stopped raises HrpTargetDown (its Patroni) and HrpPostgresDown (its PostgreSQL) at the
critical receiver. Run with `.venv/bin/pytest -m slow tests/test_monitor_ha.py`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import psycopg
import pytest

from helpers import new_cluster_base
from hrp_harness.platform.deploy import DATABASE
from hrp_harness.ha.patroni import TIMINGS, HaCluster
from hrp_harness.ops.monitor import MONITOR_CONF, Stack, api, ha_targets, wait_for_alert
from hrp_harness.platform.paths import REPO
from test_monitor_live import FAST, quiet

pytestmark = [pytest.mark.ha, pytest.mark.slow]


@pytest.fixture(scope="module")
def ha_stack():
    state = new_cluster_base("hrp-monitor-ha-")
    cluster = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HRP_STATE_DIR", str(state))
        mp.setenv("HRP_BACKUP_PASSPHRASE", "test-monitor-ha-passphrase")
        try:
            cluster = HaCluster(state / "ha", timings=TIMINGS["drill"])
            cluster.up()
            done = subprocess.run([sys.executable, "-m", "invoke", "monitor.up", "--ha"], cwd=REPO,
                                  capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr
            urls = json.loads(done.stdout.strip().splitlines()[-1])
            stack = Stack()
            stack.up(ha_targets(), FAST, echo=quiet)
            yield cluster, stack, urls
        finally:
            Stack().down(echo=quiet)  # also what a failed `invoke monitor.up --ha` left
            if cluster is not None:
                cluster.down(wipe=True)
            shutil.rmtree(state, ignore_errors=True)


def query(stack: Stack, expr: str) -> list[dict]:
    return api(stack.urls()["prometheus_url"], "api/v1/query", {"query": expr})["result"]


def wait_for(stack: Stack, expr: str, predicate, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(stack, expr)
        if predicate(result):
            return result
        assert time.monotonic() < deadline, f"{expr}: {result}"
        time.sleep(1)


def test_every_member_and_its_patroni_are_scraped(ha_stack):
    cluster, stack, urls = ha_stack
    members = set(cluster.meta["nodes"])
    assert set(urls) == {"prometheus_url", "alertmanager_url", "exporter_url"}
    up = wait_for(stack, "up", lambda r: len(r) == 2 * len(members) + 3
                  and all(s["value"][1] == "1" for s in r))
    assert {s["metric"]["member"] for s in up if s["metric"]["job"] == "patroni"} == members
    pg_up = wait_for(stack, "pg_up", lambda r: len(r) == len(members)
                     and all(s["value"][1] == "1" for s in r))
    assert {s["metric"]["member"] for s in pg_up} == members
    primary = wait_for(stack, "patroni_primary == 1", lambda r: len(r) == 1)
    assert primary[0]["metric"]["member"] == cluster.leader()


def test_the_leader_reports_the_lag_of_each_standby(ha_stack):
    cluster, stack, _ = ha_stack
    lag = wait_for(stack, "hrp_replication_replay_lag_seconds", lambda r: len(r) == 2)
    leader = cluster.leader()
    assert {s["metric"]["standby"] for s in lag} == set(cluster.meta["nodes"]) - {leader}
    assert {s["metric"]["instance"] for s in lag} == {f"127.0.0.1:{cluster.pg_port(leader)}"}
    assert not query(stack, 'ALERTS{alertname="HrpPatroniNoLeader"}')


def test_every_dashboard_panel_returns_series_on_the_ha_cluster(ha_stack):
    """Once some statements ran and the rates have two samples."""
    cluster, stack, _ = ha_stack
    with psycopg.connect(cluster.dsn(DATABASE), autocommit=True) as conn:
        for _ in range(20):
            conn.execute("select count(*) from public.races")
            time.sleep(0.2)
    dashboard = json.loads((MONITOR_CONF / "grafana" / "hrp-database.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    deadline = time.monotonic() + 30
    while empty := [e for e in exprs if not query(stack, e)]:
        assert time.monotonic() < deadline, empty
        time.sleep(1)


def test_a_stopped_member_raises_target_down_and_postgres_down(ha_stack):
    cluster, stack, _ = ha_stack
    victim = next(name for name in cluster.meta["nodes"] if name != cluster.leader()
                  and name != cluster.sync_standby())
    since = time.time()
    cluster.stop_node(victim)
    wait_for_alert(stack, "hrp-critical", "HrpTargetDown", 60, since=since, job="patroni", member=victim)
    wait_for_alert(stack, "hrp-critical", "HrpPostgresDown", 60, since=since,
                   instance=f"127.0.0.1:{cluster.pg_port(victim)}")
