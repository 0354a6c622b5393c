"""The monitoring stack live, on real processes: an embedded cluster deployed in a throwaway state
dir with a streaming standby, `invoke monitor.up` (its JSON line), then the stack restarted with
short scrape and evaluation intervals and short `for:` (the only test-only change): real
conditions raise real alerts that reach the webhook sink through Prometheus and Alertmanager
(connections above 80 %, failed logins above 10 and 50 a minute, a standby whose replay is paused,
the database stopped); every Grafana panel's PromQL returns series; the console page rendered in
headless Chromium shows live values; pgbadger's weekly report. One stack for the module,
stopped by pid even when a test fails. The standby's replay is paused from the start, so its lag
grows while the other tests run."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

from helpers import TEST_PASSWORDS, new_cluster_base
from hrp_harness.platform.cluster import Cluster, free_port
from hrp_harness.platform.deploy import DATABASE, deploy, embedded_cluster
from hrp_harness.ops.monitor import (MONITOR_CONF, WEBHOOK_ENV, Stack, Timing, api, embedded_targets,
                                 wait_for_alert)
from hrp_harness.platform.paths import REPO, pgbin
from hrp_harness.platform.server_user import make_server_dir, run_as_server

pytestmark = pytest.mark.cluster

#: Short intervals for the test only: scrape every 3 s (the exporter's queries stay well within
#: the scrape timeout on a busy machine), evaluate every second, every `for:` 2 s, Alertmanager
#: notifies at once.
FAST = Timing(scrape_interval="3s", evaluation_interval="1s", rule_for="2s", group_wait="1s",
              group_interval="1s", repeat_interval="1m")
STANDBY = "hrp_test_standby"
ALERT_TIMEOUT = 45


def quiet(*_args):
    pass


def make_standby(primary: Cluster, base: Path) -> Cluster:
    """A streaming standby of primary (pg_basebackup -R as hrp_backup over TLS), started on a free
    port with its own sockets."""
    standby = Cluster(make_server_dir(base), port=free_port(), shared_buffers_mb=64)
    env = {**os.environ, "PGPASSWORD": TEST_PASSWORDS["hrp_backup"]}
    done = run_as_server([pgbin("pg_basebackup"), "--pgdata", str(standby.datadir), "--write-recovery-conf",
                          "--checkpoint", "fast", "--wal-method", "stream", "--dbname",
                          f"host=127.0.0.1 port={primary.port} user=hrp_backup sslmode=verify-full "
                          f"sslrootcert={primary.ca_file} application_name={STANDBY}"],
                         capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    make_server_dir(standby.socket_dir)
    standby.install_conf()  # its own port, sockets and certificate; standby.signal stays
    standby.start()
    return standby


class Writer(threading.Thread):
    """One small commit every 0.3 s on the primary: WAL keeps coming, so a paused standby's replay
    lag grows (the primary interpolates it), and pg_stat_statements sees statements."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.halt, self.error = dsn, threading.Event(), None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("create table if not exists monitor_probe (at timestamptz)")
                while not self.halt.wait(0.3):
                    conn.execute("insert into monitor_probe values (now())")
        except psycopg.Error as exc:  # the database-stopped test ends it
            self.error = str(exc)


class Live:
    def __init__(self, primary: Cluster, standby: Cluster, stack: Stack, cli_urls: dict,
                 paused_at: float):
        self.primary, self.standby, self.stack, self.cli_urls = primary, standby, stack, cli_urls
        self.paused_at = paused_at
        self.urls = stack.urls()

    def query(self, expr: str) -> list[dict]:
        return api(self.urls["prometheus_url"], "api/v1/query", {"query": expr})["result"]


@pytest.fixture(scope="module")
def live():
    """Embedded cluster + paused standby + the stack at FAST timings, in a throwaway state dir."""
    state = new_cluster_base("hrp-monitor-")
    standby = writer = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HRP_STATE_DIR", str(state))
        for variable in WEBHOOK_ENV.values():
            mp.delenv(variable, raising=False)
        try:
            deploy(echo=quiet)  # the embedded cluster: init, start, hrp_database, roles, passwords
            primary = embedded_cluster()
            standby = make_standby(primary, state / "standby")
            # `invoke monitor.up` as a person runs it (production timings): its last line
            done = subprocess.run([sys.executable, "-m", "invoke", "monitor.up"], cwd=REPO,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            cli_urls = json.loads(done.stdout.strip().splitlines()[-1])
            stack = Stack()
            stack.up(embedded_targets(), FAST, echo=quiet)
            with psycopg.connect(standby.dsn(), autocommit=True) as conn:
                conn.execute("select pg_wal_replay_pause()")
            paused_at = time.time()
            writer = Writer(primary.dsn())
            writer.start()
            yield Live(primary, standby, stack, cli_urls, paused_at)
        finally:
            if writer is not None:
                writer.halt.set()
                writer.join(10)
            Stack().down(echo=quiet)  # also what a failed `invoke monitor.up` left
            if standby is not None:
                standby.destroy()
            embedded_cluster().destroy()
            shutil.rmtree(state, ignore_errors=True)


def test_monitor_up_ends_with_the_three_urls(live):
    assert set(live.cli_urls) == {"prometheus_url", "alertmanager_url", "exporter_url"}
    urls = live.urls  # the stack restarted at FAST timings keeps its ports
    assert urls == live.cli_urls
    with urllib.request.urlopen(urls["exporter_url"], timeout=10) as resp:
        metrics = resp.read().decode()
    assert re.search(r"^pg_up 1$", metrics, re.M)
    assert re.search(r"^hrp_connections_max_connections\{[^}]*\} 100$", metrics, re.M)
    # the maintenance jobs deploy scheduled in pg_cron, counted from cron.job_run_details (issue 15)
    for job in ("daily_vacuum_analyze", "weekly_report", "monthly_capacity"):
        assert re.search(rf'^hrp_maintenance_job_active\{{[^}}]*jobname="{job}@hrp_database"[^}}]*\}} 1$',
                         metrics, re.M), job
    for url in (urls["prometheus_url"], urls["alertmanager_url"]):
        with urllib.request.urlopen(url + "-/ready", timeout=10) as resp:
            assert resp.status == 200


def test_exporter_logs_in_as_hrp_monitor_over_tls13(live):
    with psycopg.connect(live.primary.dsn(DATABASE)) as conn:
        sessions = conn.execute(
            "select a.usename, s.ssl, s.version, host(a.client_addr) from pg_stat_activity as a"
            " join pg_stat_ssl as s using (pid) where a.usename = 'hrp_monitor'").fetchall()
    assert sessions and all(row == ("hrp_monitor", True, "TLSv1.3", "127.0.0.1") for row in sessions)


def test_every_target_is_scraped(live):
    targets = api(live.urls["prometheus_url"], "api/v1/targets")["activeTargets"]

    def healthy() -> bool:
        nonlocal targets
        targets = api(live.urls["prometheus_url"], "api/v1/targets")["activeTargets"]
        return len(targets) == 4 and all(t["health"] == "up" for t in targets)
    deadline = time.monotonic() + 20
    while not healthy():
        assert time.monotonic() < deadline, [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
        time.sleep(1)
    assert {t["labels"]["job"] for t in targets} == {"postgres", "node", "mtail", "prometheus"}
    disk = live.query("node_filesystem_size_bytes")
    assert disk and all(s["metric"]["mountpoint"] for s in disk)  # the database's file system(s) only


def test_connections_held_above_80_percent_raise_a_warning(live):
    """85 % of max_connections held open: HrpConnectionCount warning, not critical; released, it
    resolves."""
    since = time.time()
    with psycopg.connect(live.primary.dsn()) as conn:
        used, limit = conn.execute(
            "select count(*) filter (where backend_type = 'client backend'),"
            " current_setting('max_connections')::int from pg_stat_activity").fetchone()
    held = [psycopg.connect(live.primary.dsn()) for _ in range(math.ceil(0.85 * limit) - used)]
    try:
        alert = wait_for_alert(live.stack, "hrp-warning", "HrpConnectionCount", ALERT_TIMEOUT,
                               since=since, severity="warning")
        assert alert["labels"]["instance"] == f"127.0.0.1:{live.primary.port}"
        assert alert["annotations"]["action"].startswith("Scale connections")
        ratio = float(live.query("instance:hrp_connections:ratio")[0]["value"][1])
        assert 0.80 < ratio <= 0.95
    finally:
        for conn in held:
            conn.close()
    assert not [a for n in live.stack.received("hrp-critical") if n["received_at"] >= since
                for a in n["payload"]["alerts"] if a["labels"]["alertname"] == "HrpConnectionCount"]
    wait_for_alert(live.stack, "hrp-warning", "HrpConnectionCount", ALERT_TIMEOUT, status="resolved",
                   since=since, severity="warning")


def test_failed_logins_above_10_then_50_a_minute(live):
    """Wrong passwords over TLS, counted by mtail in the server log: 15 raise the warning, 45 more
    within the minute the critical alert, each at its own receiver."""
    def fail(times: int) -> None:
        for _ in range(times):
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(live.primary.tcp_dsn(DATABASE, "hrp_app", "not the password",
                                                     connect_timeout="5"))
    since = time.time()
    fail(15)
    alert = wait_for_alert(live.stack, "hrp-warning", "HrpFailedConnections", ALERT_TIMEOUT,
                           since=since, severity="warning")
    assert alert["annotations"]["action"].startswith("Check authentication")
    fail(45)
    alert = wait_for_alert(live.stack, "hrp-critical", "HrpFailedConnections", ALERT_TIMEOUT,
                           since=since, severity="critical")
    assert float(live.query("job:hrp_failed_logins:increase1m")[0]["value"][1]) > 50


def test_a_standby_whose_replay_is_paused_raises_replication_lag(live):
    """Paused since the module began while the primary commits: its replay lag passes 30 s."""
    with psycopg.connect(live.standby.dsn(), autocommit=True) as conn:
        assert conn.execute("select pg_is_wal_replay_paused()").fetchone()[0] is True
    alert = wait_for_alert(live.stack, "hrp-warning", "HrpReplicationLag",
                           ALERT_TIMEOUT + max(0.0, 35 - (time.time() - live.paused_at)),
                           since=live.paused_at, severity="warning", standby=STANDBY)
    assert alert["labels"]["instance"] == f"127.0.0.1:{live.primary.port}"
    assert alert["annotations"]["action"].startswith("Check replication")
    lag = float(live.query(f'hrp_replication_replay_lag_seconds{{standby="{STANDBY}"}}')[0]["value"][1])
    assert lag > 30


def test_every_dashboard_panel_returns_series(live):
    dashboard = json.loads((MONITOR_CONF / "grafana" / "hrp-database.json").read_text())
    empty = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if not live.query(target["expr"]):
                empty.append(f"{panel['title']}: {target['expr']}")
    assert empty == []


CHROMIUM_DUMP = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"]


def test_console_page_shows_live_values_in_headless_chromium(live):
    url = live.urls["prometheus_url"] + "consoles/hrp-overview.html"
    done = subprocess.run([*CHROMIUM_DUMP, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    page = done.stdout
    cells = dict(re.findall(r'<td class="value" id="([\w-]+)">([^<]*)</td>', page))
    assert len(cells) == 17
    used = float(live.query("sum(hrp_connections_used)")[0]["value"][1])
    assert abs(float(cells["connections-used"]) - used) <= 3
    assert cells["connections-max"] == "100"
    assert re.fullmatch(r"[\d.]+[kMG]iB", cells["database-size"])
    assert re.fullmatch(r"[\d.]+%", cells["disk-used"])
    assert re.fullmatch(r"(\d+m )?[\d.]+s", cells["replication-lag"])  # the paused standby
    assert cells["response-time"] != "-" and cells["throughput"] != "-"
    assert STANDBY in page
    for job in ("postgres", "node", "mtail"):
        assert re.search(rf"<td>{job}</td>\s*<td>[^<]+</td>\s*<td class=\"ok\">up</td>", page), job


def test_weekly_slow_query_report(live, tmp_path):
    with psycopg.connect(live.primary.tcp_dsn(DATABASE, "hrp_app", TEST_PASSWORDS["hrp_app"])) as conn:
        conn.execute("select pg_sleep(1.2), 'slow report probe'")
    out = tmp_path / "weekly.html"
    deadline = time.monotonic() + 10
    while "slow report probe" not in "".join(
            p.read_text(errors="replace") for p in (live.primary.datadir / "log").glob("*.log")):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    done = subprocess.run([sys.executable, "-m", "invoke", "report.slow-queries", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    html = out.read_text()
    assert "pg_sleep" in html and "slow report probe" in html
    assert out.stat().st_mode & 0o777 == 0o600


def test_the_database_stopped_raises_postgres_down(live):
    """Last: stops the primary. pg_up falls to 0 and HrpPostgresDown reaches the critical receiver."""
    since = time.time()
    live.primary.stop()
    alert = wait_for_alert(live.stack, "hrp-critical", "HrpPostgresDown", ALERT_TIMEOUT, since=since,
                           severity="critical", instance=f"127.0.0.1:{live.primary.port}")
    summary = f"PostgreSQL 127.0.0.1:{live.primary.port} does not answer its exporter"
    assert alert["annotations"]["summary"] == summary
