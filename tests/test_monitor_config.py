"""The monitoring configuration without the stack running: promtool checks the rendered Prometheus
configuration and the rules, and runs the rules' unit tests (every alert fires and stays silent
at both thresholds); amtool checks Alertmanager's; every metric the rules, the dashboard and the
console page name is one the exporters produce; every alert has a warning and a critical rule
where the spec's table has two thresholds, the spec's action, and a README section; mtail counts
real server log lines of a real cluster; the password never reaches a command line or the
environment; bad input is one clear line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from helpers import TEST_PASSWORDS, new_cluster_base
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.ops.monitor import (MONITOR_CONF, PgTarget, Stack, Targets, Timing, exporter_env,
                                 rules_text)
from hrp_harness.platform.paths import REPO

RULES = MONITOR_CONF / "alerts.yml"
SPEC = REPO.parent / "shared" / "spec" / "postgresql-migration-spec.md"
#: The spec's "Alert Thresholds" rows and the alert that implements each.
SPEC_ALERTS = {"Response Time": "HrpResponseTime", "Connection Count": "HrpConnectionCount",
               "Disk Usage": "HrpDiskUsage", "Replication Lag": "HrpReplicationLag",
               "Failed Connections": "HrpFailedConnections"}


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
            if "alert" in rule]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def rendered():
    """The stack's configuration rendered for an HA-shaped target set (three PostgreSQL members,
    three Patroni members), as monitor.up writes it, without starting anything."""
    stack = Stack(new_cluster_base("hrp-monitor-conf-"))
    members = ("node1", "standby1", "standby2")
    targets = Targets("ha", tuple(PgTarget(m, 5432 + i, None, f"/nowhere/{m}/log/postgresql-*.log")
                                  for i, m in enumerate(members)),
                      tuple((m, 8008 + i) for i, m in enumerate(members)),
                      disk_paths=(stack.base,), primary="node1")
    meta = {"ports": stack.pick_ports(targets), "primary": "node1",
            "postgres": [{"name": t.name, "port": t.port, "log_glob": t.log_glob, "ca_file": None}
                         for t in targets.postgres]}
    stack.install(meta, targets, Timing(rule_for="2s"), password=TEST_PASSWORDS["hrp_monitor"])
    yield stack, meta
    shutil.rmtree(stack.base, ignore_errors=True)


@pytest.mark.unit
def test_promtool_checks_the_rendered_prometheus_config_and_its_rules(rendered):
    stack, _ = rendered
    done = run(["promtool", "check", "config", str(stack.base / "etc" / "prometheus.yml")])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 20 rules found" in done.stdout + done.stderr
    # the live tests' rules: the same file with every `for:` set short, and nothing else changed
    test_rules = yaml.safe_load((stack.base / "etc" / "alerts.yml").read_text())
    original = yaml.safe_load(RULES.read_text())
    for got, want in zip(test_rules["groups"], original["groups"], strict=True):
        for a, b in zip(got["rules"], want["rules"], strict=True):
            assert {k: v for k, v in a.items() if k != "for"} == {k: v for k, v in b.items() if k != "for"}
            assert a.get("for") == ("2s" if "alert" in a else None)


@pytest.mark.unit
def test_prometheus_config_scrapes_every_member_and_patroni(rendered):
    stack, meta = rendered
    config = yaml.safe_load((stack.base / "etc" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"postgres", "node", "mtail", "patroni", "prometheus"}
    postgres = [(c["targets"], c["labels"]["instance"]) for c in jobs["postgres"]["static_configs"]]
    assert [instance for _, instance in postgres] == ["127.0.0.1:5432", "127.0.0.1:5433", "127.0.0.1:5434"]
    patroni = [c["targets"][0] for c in jobs["patroni"]["static_configs"]]
    assert patroni == ["127.0.0.1:8008", "127.0.0.1:8009", "127.0.0.1:8010"]
    assert all(t.startswith("127.0.0.1:") for c in jobs["postgres"]["static_configs"] for t in c["targets"])


@pytest.mark.unit
def test_promtool_checks_the_rules_file_and_runs_its_unit_tests():
    done = run(["promtool", "check", "rules", str(RULES)])
    assert done.returncode == 0 and "SUCCESS: 20 rules found" in done.stdout, done.stdout + done.stderr
    done = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=REPO / "tests" / "promtool")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.unit
def test_every_alert_is_unit_tested_firing_and_silent():
    """Each alert name (and each of its severities) appears firing in the promtool tests, and each
    alert also has a case where it is expected silent (exp_alerts: [] or an instance below the
    threshold that is not listed)."""
    tests = yaml.safe_load((REPO / "tests" / "promtool" / "alerts_test.yml").read_text())["tests"]
    fired: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            expected = check.get("exp_alerts") or []
            if not expected:
                silent.add(check["alertname"])
            fired |= {(check["alertname"], a["exp_labels"]["severity"]) for a in expected}
            series = [s["series"] for s in case["input_series"]]
            listed = {json.dumps(a["exp_labels"], sort_keys=True) for a in expected}
            if expected and len(series) > len(listed):
                silent.add(check["alertname"])  # some input series stays below the threshold
    wanted = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert wanted - fired == set(), "alerts never seen firing in tests/promtool/alerts_test.yml"
    assert {name for name, _ in wanted} - silent == set(), "alerts never seen silent"


def spec_thresholds() -> dict[str, tuple[str, str, str]]:
    """The spec's "Alert Thresholds" table: metric -> (warning, critical, action)."""
    text = SPEC.read_text()
    table = text.split("### Alert Thresholds", 1)[1].split("###", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("Metric",) and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = (cells[1], cells[2], cells[3])
    return rows


@pytest.mark.unit
def test_every_row_of_the_spec_table_has_a_warning_and_a_critical_rule_with_its_action():
    rows = spec_thresholds()
    assert set(rows) == set(SPEC_ALERTS)
    by_name: dict[str, dict[str, dict]] = {}
    for rule in alert_rules():
        by_name.setdefault(rule["alert"], {})[rule["labels"]["severity"]] = rule
    for metric, (warning, critical, action) in rows.items():
        rules = by_name[SPEC_ALERTS[metric]]
        assert set(rules) == {"warning", "critical"}, metric
        for severity, limit in (("warning", warning), ("critical", critical)):
            number = float(re.search(r"[\d.]+", limit).group())
            threshold = float(re.search(r">\s*([\d.]+)\s*$", rules[severity]["expr"].strip()).group(1))
            scale = {"Response Time": 1000, "Connection Count": 100, "Disk Usage": 100}.get(metric, 1)
            assert threshold * scale == pytest.approx(number), f"{metric} {severity}: {limit}"
            assert rules[severity]["annotations"]["action"].startswith(action), metric


@pytest.mark.unit
def test_every_alert_has_summary_action_and_a_readme_section():
    readme = (REPO / "README.md").read_text()
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert {"summary", "description", "action", "runbook"} <= set(annotations), rule["alert"]
        anchor = annotations["runbook"].split("#", 1)[1]
        assert f"#### {rule['alert']}" in readme and anchor == rule["alert"].lower(), rule["alert"]


def defined_metrics() -> set[str]:
    """Metric names the stack produces: the exporter's custom queries, mtail's counters, the
    recording rules, and the built-in ones the rules and dashboards use."""
    queries = yaml.safe_load((MONITOR_CONF / "postgres_exporter_queries.yml").read_text())
    names = {f"{query}_{column}" for query, spec in queries.items()
             for metric in spec["metrics"] for column, mapping in metric.items()
             if mapping["usage"] != "LABEL"}
    names |= set(re.findall(r"^counter (\w+)", (MONITOR_CONF / "postgresql.mtail").read_text(), re.M))
    names |= {rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"] if "record" in rule}
    return names | {"pg_up", "up", "pg_stat_database_xact_commit", "ALERTS", "node_filesystem_avail_bytes",
                    "node_filesystem_size_bytes", "patroni_primary"}


def used_metrics(text: str) -> set[str]:
    prefixes = r"hrp_|instance:|instance_mountpoint:|job:|pg_|node_|patroni_"
    return set(re.findall(rf"\b((?:{prefixes})[\w:]+|ALERTS)\b", text)) - {"hrp_database", "hrp_monitor"}


@pytest.mark.unit
def test_every_metric_named_by_rules_dashboard_and_console_exists():
    defined = defined_metrics()
    exprs = [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    dashboard = json.loads((MONITOR_CONF / "grafana" / "hrp-database.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    console = (MONITOR_CONF / "consoles" / "hrp-overview.html").read_text()
    console_exprs = (re.findall(r'\(args "[^"]*" "([^"]*)"', console)
                     + re.findall(r'(?:query|printf) "([^"]*)"', console))
    assert len(console_exprs) >= 17
    exprs += console_exprs
    unknown = {name for expr in exprs for name in used_metrics(expr)} - defined
    assert unknown == set()
    custom = {n for n in defined if not n.startswith(("pg_", "up", "node_", "patroni_", "ALERTS"))}
    assert all("hrp_" in name for name in custom), "every metric of the project carries the hrp_ prefix"


@pytest.mark.unit
def test_dashboard_panels_use_the_provisioned_data_source():
    dashboard = json.loads((MONITOR_CONF / "grafana" / "hrp-database.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 7
    titles = " ".join(p["title"].lower() for p in panels)
    for key_metric in ("response time", "throughput", "connections", "lock", "index", "replication lag",
                       "disk"):
        assert key_metric in titles, key_metric
    provisioned = yaml.safe_load((MONITOR_CONF / "grafana" / "provisioning" / "datasource.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    for panel in panels:
        assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]


@pytest.mark.unit
def test_amtool_checks_alertmanager_config_with_two_receivers(rendered):
    stack, _ = rendered
    path = stack.base / "etc" / "alertmanager.yml"
    done = run(["amtool", "check-config", str(path)])
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(path.read_text())
    routes = {r["matchers"][0]: r["receiver"] for r in config["route"]["routes"]}
    assert routes == {'severity="warning"': "hrp-warning", 'severity="critical"': "hrp-critical"}
    assert config["inhibit_rules"][0]["source_matchers"] == ['severity="critical"']


@pytest.mark.unit
def test_the_password_is_in_a_0600_file_only(rendered):
    stack, meta = rendered
    secret = stack.base / "secrets" / "hrp_monitor.password"
    assert secret.read_text() == TEST_PASSWORDS["hrp_monitor"] + "\n"
    assert secret.stat().st_mode & 0o777 == 0o600
    for server in stack.servers(meta):
        assert TEST_PASSWORDS["hrp_monitor"] not in " ".join(server.argv)
        assert TEST_PASSWORDS["hrp_monitor"] not in json.dumps(server.env or {})
    env = exporter_env(stack.base, {"port": 5432, "ca_file": "/a dir/ca.crt"})
    assert env["DATA_SOURCE_PASS_FILE"] == str(secret)
    assert env["DATA_SOURCE_URI"] == ("127.0.0.1:5432/hrp_database?sslmode=verify-full&sslrootcert="
                                      "%2Fa%20dir%2Fca.crt")
    assert not any(k.startswith("HRP_") or k.startswith("PG") for k in env)


@pytest.mark.unit
def test_rules_text_without_override_is_the_file_itself():
    assert rules_text() == RULES.read_text()


# -- mtail over a real server log ----------------------------------------------------------------

def mtail_counts(logs: list[Path]) -> dict[str, float]:
    done = run(["mtail", "--one_shot", "--one_shot_format", "prometheus", "--logtostderr",
                "--progs", str(MONITOR_CONF), *[a for p in logs for a in ("--logs", str(p))]])
    assert done.returncode == 0, done.stderr
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r"^(hrp_\w+)\{[^}]*\} (\S+)$", done.stdout, re.M)}


@pytest.mark.cluster
def test_mtail_counts_failed_logins_lock_waits_and_slow_statements(pg_cluster, app_database):
    """Exactly the events caused here are counted, whatever else the session's log holds."""
    logs = sorted((pg_cluster.datadir / "log").glob("postgresql-*.log"))
    before = mtail_counts(logs)
    for attempt in range(7):  # wrong password; a role that does not exist; no TLS (pg_hba rejects)
        params = [("hrp_app", "wrong", "verify-full"), ("hrp_nobody", "x", "verify-full"),
                  ("hrp_app", "wrong", "disable")][attempt % 3]
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_cluster.tcp_dsn(DATABASE, params[0], params[1], sslmode=params[2],
                                               connect_timeout="5"))
    with psycopg.connect(app_database, autocommit=True) as holder, \
            psycopg.connect(app_database, autocommit=True) as waiter:
        holder.execute("begin")
        holder.execute("lock table public.races in access exclusive mode")
        waiter.execute("set lock_timeout = '1500ms'")  # > deadlock_timeout 1 s: the wait is logged
        with pytest.raises(psycopg.errors.LockNotAvailable):
            waiter.execute("select count(*) from public.races")
        holder.execute("rollback")
        waiter.execute("select pg_sleep(1.05)")  # > log_min_duration_statement 1 s
        marker = f"mtail flushed {time.time_ns()}"
        waiter.execute("select %s::text", (marker,))
    deadline = time.monotonic() + 10
    while marker not in "".join(p.read_text(errors="replace") for p in
                                (pg_cluster.datadir / "log").glob("postgresql-*.log")):
        assert time.monotonic() < deadline, "the server log was not written"
        time.sleep(0.2)
    after = mtail_counts(sorted((pg_cluster.datadir / "log").glob("postgresql-*.log")))
    assert after["hrp_failed_logins_total"] - before.get("hrp_failed_logins_total", 0) == 7
    assert after["hrp_lock_waits_logged_total"] - before.get("hrp_lock_waits_logged_total", 0) == 1
    assert after["hrp_slow_statements_logged_total"] - before.get("hrp_slow_statements_logged_total", 0) >= 1


# -- bad input: one clear line ---------------------------------------------------------------------

def invoke(*args: str, state: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "HRP_STATE_DIR": str(state)}
    return run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env, timeout=120)


@pytest.mark.unit
@pytest.mark.parametrize("args, message", [
    (("monitor.up",), r"^error: no embedded cluster in .*/pg \(run `invoke deploy` first\)$"),
    (("monitor.up", "--ha"), r"^error: no HA cluster in .*/ha \(run `invoke cluster.up`\)$"),
    (("monitor.down",), r"^no monitoring stack in .*/monitor$"),
    (("monitor.status",), r"^no monitoring stack in .*/monitor \(run `invoke monitor.up`\)$"),
    (("report.slow-queries",), r"^error: no embedded cluster in .*/pg \(run `invoke deploy` first\)$"),
    (("logs.retain", "--ha"), r"^error: no HA cluster in .*/ha \(run `invoke cluster.up`\)$"),
])
def test_without_a_cluster_each_task_says_so_in_one_line(tmp_path, args, message):
    done = invoke(*args, state=tmp_path)
    output = (done.stderr + done.stdout).strip()
    assert re.match(message, output), output
    assert "Traceback" not in output and len(output.splitlines()) == 1


@pytest.mark.unit
def test_a_monitor_password_with_white_space_is_refused(monkeypatch):
    from hrp_harness.ops.monitor import MonitorError, monitor_password

    monkeypatch.setenv("HRP_MONITOR_PASSWORD", "two words")
    with pytest.raises(MonitorError, match=r"password of hrp_monitor \(from HRP_MONITOR_PASSWORD\) "
                                           r"contains white space, which postgres_exporter 0.11"):
        monitor_password()


@pytest.mark.cluster
def test_a_stack_that_cannot_log_in_stops_what_it_started_and_says_why(tmp_path):
    """An exporter pointed at a port where no PostgreSQL listens: up fails naming the exporter's
    log, and every process it had started is stopped (by pid)."""
    import psutil

    from hrp_harness.platform.cluster import free_port
    from hrp_harness.ops.monitor import MonitorError

    stack = Stack(new_cluster_base("hrp-monitor-fail-"))
    lines: list[str] = []
    target = PgTarget("nowhere", free_port(), None, str(tmp_path / "postgresql-*.log"))
    try:
        with pytest.raises(MonitorError, match=r"postgres_exporter cannot log in to nowhere as "
                                               r"hrp_monitor within 3 s \(its log .*/postgres-exporter-"
                                               r"nowhere\.log ends below"):
            stack.up(Targets("embedded", (target,), disk_paths=(tmp_path,)), Timing(), echo=lines.append,
                     login_timeout=3)
        pids = [int(m.group(1)) for line in lines if (m := re.search(r": pid (\d+),", line))]
        assert len(pids) == 6  # sink, alertmanager, exporter, node exporter, mtail, prometheus
        assert not [pid for pid in pids if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    finally:
        stack.down(echo=lambda *_: None)
        shutil.rmtree(stack.base, ignore_errors=True)
