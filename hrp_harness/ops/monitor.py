"""The monitoring stack (issue 14): Debian's prometheus-postgres-exporter (one per PostgreSQL
instance, as hrp_monitor over TLS + SCRAM, the project's queries), prometheus-node-exporter (disk),
mtail (failed logins and lock waits from the server log), Patroni's own /metrics (with --ha),
Prometheus (rules: conf/monitoring/alerts.yml, console page: conf/monitoring/consoles/) and
prometheus-alertmanager, which posts warnings and critical alerts to two webhook receivers (by
default the local sink, hrp_harness/ops/webhook_sink.py).

Every process runs as the server user (the one that runs PostgreSQL: mtail must read its 0600
log), on a free 127.0.0.1 port kept in STATE/monitor/stack.json, and is stopped by its pid
(procs.HttpServer), never by name. Layout of STATE/monitor:

    stack.json             the cluster watched, ports, URLs (monitor.status reads it)
    etc/                   rendered configuration: prometheus.yml, alerts.yml, alertmanager.yml,
                           postgres_exporter_queries.yml, mtail/, consoles/, console_libraries/
    secrets/               hrp_monitor's password for the exporters (0600, DATA_SOURCE_PASS_FILE)
    bin/webhook_sink.py    the local receiver (a copy: the repository may be closed to the server user)
    prometheus/, alertmanager/   their data (kept across restarts; `monitor.down --wipe` deletes)
    webhook/               hrp-warning.jsonl, hrp-critical.jsonl: what the receivers got
    logs/, run/            one log and one pid file per process
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
import yaml

from hrp_harness import HarnessError
from hrp_harness.platform import procs
from hrp_harness.platform.conf import render, write_private
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.platform.deploy import embedded_cluster
from hrp_harness.platform.passwords import role_passwords
from hrp_harness.platform.paths import CONF, state_dir
from hrp_harness.platform.server_user import make_server_dir

MONITOR_CONF = CONF / "monitoring"
ROLE = "hrp_monitor"
WEBHOOK_ENV = {"hrp-warning": "HRP_ALERT_WARNING_WEBHOOK_URL",
               "hrp-critical": "HRP_ALERT_CRITICAL_WEBHOOK_URL"}
#: node_exporter's default fs-types-exclude without overlay (a container's root file system may be
#: one and hold the data); pseudo file systems stay out. Prometheus keeps only the database's.
FS_TYPES_EXCLUDE = ("^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|"
                    "hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|"
                    "selinuxfs|squashfs|sysfs|tracefs)$")


class MonitorError(HarnessError):
    """The stack cannot start or answer; the message says which process and where its log is."""


@dataclass(frozen=True)
class Timing:
    """Intervals of the stack. The defaults are production's; the live tests shorten them (and
    the rules' `for:`) so that an alert reaches the receiver in seconds."""

    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    rule_for: str | None = None  # None: each rule's own `for:` (conf/monitoring/alerts.yml)
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"


PRODUCTION = Timing()


@dataclass(frozen=True)
class PgTarget:
    """One PostgreSQL instance to watch: where it listens, the CA its certificate verifies with,
    the glob of its server log files."""

    name: str
    port: int
    ca_file: Path | None
    log_glob: str


@dataclass(frozen=True)
class Targets:
    """What the stack watches: the embedded cluster, or the Patroni members (--ha)."""

    cluster: str                      # "embedded" or "ha"
    postgres: tuple[PgTarget, ...]
    patroni: tuple[tuple[str, int], ...] = ()  # (member, REST port)
    disk_paths: tuple[Path, ...] = ()
    primary: str | None = None        # whose exporter is exporter_url


@dataclass
class Stack:
    """STATE/monitor: the stack's files, ports and processes."""

    base: Path = field(default_factory=lambda: state_dir() / "monitor")

    def __post_init__(self) -> None:
        self.base = Path(self.base).resolve()

    @property
    def meta_file(self) -> Path:
        return self.base / "stack.json"

    def meta(self) -> dict | None:
        try:
            return json.loads(self.meta_file.read_text())
        except FileNotFoundError:
            return None

    def servers(self, meta: dict) -> list[procs.HttpServer]:
        """The stack's processes in start order (receivers before senders)."""
        etc, ports = self.base / "etc", meta["ports"]
        run, logs = self.base / "run", self.base / "logs"

        def server(name, argv, ready_path, env=None):
            url = f"http://127.0.0.1:{ports[name]}{ready_path}"
            return procs.HttpServer(name, argv, url, run / f"{name}.pid", logs / f"{name}.log",
                                    cwd=self.base, env=env)

        listen = lambda name: f"127.0.0.1:{ports[name]}"  # noqa: E731
        found = [
            server("webhook-sink", ["/usr/bin/python3", str(self.base / "bin" / "webhook_sink.py"),
                                    "--listen", listen("webhook-sink"),
                                    "--dir", str(self.base / "webhook")], "/-/ready"),
            server("alertmanager", [
                "prometheus-alertmanager", f"--config.file={etc / 'alertmanager.yml'}",
                f"--storage.path={self.base / 'alertmanager'}",
                f"--web.listen-address={listen('alertmanager')}",
                f"--web.external-url=http://{listen('alertmanager')}/",
                "--cluster.listen-address="], "/-/ready"),
        ]
        for target in meta["postgres"]:
            name = f"postgres-exporter-{target['name']}"
            found.append(server(name, [
                "prometheus-postgres-exporter", f"--web.listen-address={listen(name)}",
                f"--extend.query-path={etc / 'postgres_exporter_queries.yml'}",
                "--disable-settings-metrics", "--log.level=warn"], "/", env=exporter_env(
                    self.base, target)))
        found.append(server("node-exporter", [
            "prometheus-node-exporter", f"--web.listen-address={listen('node-exporter')}",
            "--collector.disable-defaults", "--collector.filesystem",
            "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys)($|/)",
            f"--collector.filesystem.fs-types-exclude={FS_TYPES_EXCLUDE}"], "/"))
        found.append(server("mtail", [
            "mtail", "--address", "127.0.0.1", "--port", str(ports["mtail"]),
            "--progs", str(etc / "mtail"), "--logtostderr",
            *[arg for target in meta["postgres"] for arg in ("--logs", target["log_glob"])]],
            "/metrics"))
        found.append(server("prometheus", [
            "prometheus", f"--config.file={etc / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.base / 'prometheus'}",
            f"--web.listen-address={listen('prometheus')}",
            f"--web.external-url=http://{listen('prometheus')}/",
            f"--web.console.templates={etc / 'consoles'}",
            f"--web.console.libraries={etc / 'console_libraries'}"], "/-/ready"))
        return found

    # -- lifecycle -----------------------------------------------------------------------------
    def up(self, targets: Targets, timing: Timing = PRODUCTION, echo=print,
           login_timeout: float = 30) -> dict:
        """(Re)start the stack for targets: stop what runs, pick ports, render, start each process
        and wait for it, then wait until every exporter logs in (pg_up 1). Returns the URLs."""
        password = monitor_password()
        self.down(echo=lambda *_: None)
        make_server_dir(self.base, 0o750)
        meta = {
            "cluster": targets.cluster,
            "ports": self.pick_ports(targets),
            "postgres": [{"name": t.name, "port": t.port, "log_glob": t.log_glob,
                          "ca_file": str(t.ca_file) if t.ca_file else None} for t in targets.postgres],
            "patroni": [list(p) for p in targets.patroni],
            "timing": asdict(timing),
            "primary": targets.primary or targets.postgres[0].name,
        }
        self.install(meta, targets, timing, password)
        self.meta_file.write_text(json.dumps(meta, indent=2) + "\n")
        try:
            for server in self.servers(meta):
                server.start()
                echo(f"{server.name}: pid {server.pid}, {origin(server.ready_url)}")
            for target in meta["postgres"]:
                self.wait_exporter_login(meta, target["name"], login_timeout)
        except BaseException:  # nothing half-started stays behind (Ctrl-C included)
            self.down(echo=lambda *_: None)
            raise
        return self.urls(meta)

    def down(self, wipe: bool = False, echo=print) -> None:
        """Stop every process of the stack (reverse order, by pid); wipe deletes STATE/monitor."""
        meta = self.meta()
        if meta is not None:
            for server in reversed(self.servers(meta)):
                if server.pid is not None:
                    server.stop()
                    echo(f"stopped {server.name}")
        if wipe and self.base.exists():
            shutil.rmtree(self.base)

    def urls(self, meta: dict | None = None) -> dict:
        meta = meta or self.require()
        ports = meta["ports"]
        return {"prometheus_url": f"http://127.0.0.1:{ports['prometheus']}/",
                "alertmanager_url": f"http://127.0.0.1:{ports['alertmanager']}/",
                "exporter_url": f"http://127.0.0.1:{ports['postgres-exporter-' + meta['primary']]}"
                                "/metrics"}

    def require(self) -> dict:
        meta = self.meta()
        if meta is None:
            raise MonitorError(f"no monitoring stack in {self.base} (run `invoke monitor.up`)")
        return meta

    def status(self) -> list[str]:
        """One line per process (running, pid, URL), then Prometheus's targets and firing alerts."""
        meta = self.meta()
        if meta is None:
            return [f"no monitoring stack in {self.base} (run `invoke monitor.up`)"]
        lines = [f"monitoring the {meta['cluster']} cluster; state in {self.base}"]
        for server in self.servers(meta):
            pid = server.pid
            state = ("ready" if server.ready() else "NOT READY") if pid else "STOPPED"
            lines.append(f"  {server.name:<28} {state:<9} pid {pid or '-':<8} {origin(server.ready_url)}")
        prometheus = self.urls(meta)["prometheus_url"]
        try:
            targets = api(prometheus, "api/v1/targets")["activeTargets"]
            alerts = api(prometheus, "api/v1/alerts")["alerts"]
        except (OSError, MonitorError):
            return [*lines, "  (Prometheus does not answer: no target or alert status)"]
        for target in targets:
            lines.append(f"  target {target['labels']['job']}/{target['labels']['instance']}: "
                         f"{target['health']}" + (f" ({target['lastError']})" if target['lastError'] else ""))
        firing = [a for a in alerts if a["state"] == "firing"]
        lines.append(f"  alerts firing: {len(firing)}" + "".join(
            f"\n    {a['labels']['alertname']} {a['labels'].get('severity', '')} "
            f"{a['labels'].get('instance', '')}: {a['annotations'].get('summary', '')}" for a in firing))
        return lines

    def received(self, receiver: str) -> list[dict]:
        """The notifications the local sink got for receiver (hrp-warning, hrp-critical)."""
        path = self.base / "webhook" / f"{receiver}.jsonl"
        try:
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def wait_exporter_login(self, meta: dict, name: str, timeout: float = 30) -> None:
        """Until the exporter of PostgreSQL instance `name` reports pg_up 1 (hrp_monitor logged
        in over TLS); else the exporter's log says why (password, pg_hba, certificate)."""
        url = f"http://127.0.0.1:{meta['ports']['postgres-exporter-' + name]}/metrics"

        def logged_in() -> bool:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return re.search(r"^pg_up(\{[^}]*\})? 1$", resp.read().decode(), re.M) is not None
        try:
            procs.wait_until(logged_in, timeout, f"postgres_exporter of {name} to log in as {ROLE}",
                             interval=1)
        except HarnessError:
            log = self.base / "logs" / f"postgres-exporter-{name}.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:]) if log.exists() else ""
            raise MonitorError(
                f"postgres_exporter cannot log in to {name} as {ROLE} within {timeout:.0f} s (its log "
                f"{log} ends below; a wrong password: `invoke deploy` sets it from "
                f"HRP_MONITOR_PASSWORD or the secrets file):\n{tail}") from None

    # -- configuration -------------------------------------------------------------------------
    def pick_ports(self, targets: Targets) -> dict[str, int]:
        """The kept port of each process when still free, else a new free one."""
        kept = (self.meta() or {}).get("ports", {})
        names = ["webhook-sink", "alertmanager", "node-exporter", "mtail", "prometheus",
                 *[f"postgres-exporter-{t.name}" for t in targets.postgres]]
        ports: dict[str, int] = {}
        for name in names:
            port = kept.get(name)
            while port is None or port in ports.values() or procs.port_in_use(port):
                port = procs.free_port()
            ports[name] = port
        return ports

    def install(self, meta: dict, targets: Targets, timing: Timing, password: str) -> None:
        """Render conf/monitoring into etc/, the password file, the sink; give them to the server
        user."""
        etc = self.base / "etc"
        for sub in ("etc", "etc/mtail", "secrets", "bin", "webhook", "logs", "run", "prometheus",
                    "alertmanager"):
            make_server_dir(self.base / sub, 0o700 if sub == "secrets" else 0o750)
        for sub in ("consoles", "console_libraries"):
            shutil.rmtree(etc / sub, ignore_errors=True)
            shutil.copytree(MONITOR_CONF / sub, etc / sub)
        shutil.copy(MONITOR_CONF / "postgres_exporter_queries.yml", etc)
        shutil.copy(MONITOR_CONF / "postgresql.mtail", etc / "mtail")
        shutil.copy(Path(__file__).with_name("webhook_sink.py"), self.base / "bin")
        (etc / "alerts.yml").write_text(rules_text(timing.rule_for))
        ports = meta["ports"]
        loopback = "127.0.0.1"

        def static(entries: list[tuple[int, dict]]) -> str:
            return json.dumps([{"targets": [f"{loopback}:{port}"], "labels": labels}
                               for port, labels in entries])

        postgres = [(ports[f"postgres-exporter-{t.name}"],
                     {"instance": f"{loopback}:{t.port}", "member": t.name}) for t in targets.postgres]
        patroni = [(port, {"instance": member, "member": member}) for member, port in targets.patroni]
        host = os.uname().nodename
        (etc / "prometheus.yml").write_text(render(MONITOR_CONF / "prometheus.yml.template", {
            "SCRAPE_INTERVAL": timing.scrape_interval,
            "EVALUATION_INTERVAL": timing.evaluation_interval,
            "RULES_FILE": str(etc / "alerts.yml"),
            "ALERTMANAGER": f"{loopback}:{ports['alertmanager']}",
            "PROMETHEUS": f"{loopback}:{ports['prometheus']}",
            "POSTGRES_TARGETS": static(postgres),
            "NODE_TARGETS": static([(ports["node-exporter"], {"instance": host})]),
            "MTAIL_TARGETS": static([(ports["mtail"], {"instance": host})]),
            "PATRONI_TARGETS": static(patroni),
            "DISK_MOUNTPOINTS": "|".join(sorted({re.escape(mountpoint(p))
                                                 for p in targets.disk_paths})).replace("'", "''"),
            "CLUSTER": targets.cluster,
        }))
        sink = f"http://{loopback}:{ports['webhook-sink']}"
        (etc / "alertmanager.yml").write_text(render(MONITOR_CONF / "alertmanager.yml.template", {
            "WARNING_WEBHOOK_URL": os.environ.get(WEBHOOK_ENV["hrp-warning"]) or f"{sink}/hrp-warning",
            "CRITICAL_WEBHOOK_URL": (os.environ.get(WEBHOOK_ENV["hrp-critical"])
                                     or f"{sink}/hrp-critical"),
            "GROUP_WAIT": timing.group_wait,
            "GROUP_INTERVAL": timing.group_interval,
            "REPEAT_INTERVAL": timing.repeat_interval,
        }))
        procs.give_tree(self.base, skip=("prometheus", "alertmanager", "webhook"))
        write_private(self.base / "secrets" / f"{ROLE}.password", password + "\n", server=True)


def exporter_env(base: Path, target: dict) -> dict[str, str]:
    """postgres_exporter's connection: DATA_SOURCE_URI (host, port, database, TLS verified against
    the cluster's CA), user, and the password from a 0600 file (never on a command line or in the
    environment)."""
    params = {"sslmode": "verify-full", "sslrootcert": target["ca_file"]} if target["ca_file"] \
        else {"sslmode": "require"}
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATA_SOURCE_URI": f"127.0.0.1:{target['port']}/{DATABASE}?{query}",
            "DATA_SOURCE_USER": ROLE,
            "DATA_SOURCE_PASS_FILE": str(base / "secrets" / f"{ROLE}.password")}


def monitor_password() -> str:
    """hrp_monitor's password as deploy sets it (HRP_MONITOR_PASSWORD or the secrets file)."""
    password, source = role_passwords()[ROLE]
    if any(char.isspace() for char in password):
        # postgres_exporter 0.11 strips its password file and splits its connection string at
        # spaces: it would exit with "malformed dsn", printing the password into its log.
        raise MonitorError(f"the password of {ROLE} (from {source}) contains white space, which "
                           "postgres_exporter 0.11 cannot take: choose another and run `invoke deploy`")
    return password


def rules_text(rule_for: str | None = None) -> str:
    """conf/monitoring/alerts.yml as it is, or with every alert's `for:` replaced (tests only)."""
    text = (MONITOR_CONF / "alerts.yml").read_text()
    if rule_for is None:
        return text
    rules = yaml.safe_load(text)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = rule_for
    return "# alerts.yml with every `for:` set to " + rule_for + " (tests)\n" + yaml.safe_dump(
        rules, sort_keys=False, width=1000)


def mountpoint(path: Path) -> str:
    """The mount point of the file system holding path (its nearest existing ancestor)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return str(path)


def origin(url: str) -> str:
    """scheme://host:port of url."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def api(base_url: str, path: str, params: dict | None = None, timeout: float = 10) -> dict:
    """GET a Prometheus/Alertmanager JSON API; its "data" (Prometheus) or the body."""
    url = base_url.rstrip("/") + "/" + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = json.loads(resp.read())
    if isinstance(body, dict) and body.get("status") == "error":
        raise MonitorError(f"{url}: {body.get('errorType')}: {body.get('error')}")
    return body["data"] if isinstance(body, dict) and "data" in body else body


# -- what to watch -----------------------------------------------------------------------------
def embedded_targets() -> Targets:
    """The embedded cluster (STATE/pg), which must run with hrp_monitor deployed."""
    cluster = embedded_cluster()
    if not cluster.initialized:
        raise MonitorError(f"no embedded cluster in {cluster.base} (run `invoke deploy` first)")
    if not cluster.running:
        raise MonitorError(f"the embedded cluster in {cluster.base} is stopped (`invoke start`)")
    require_role(cluster.dsn(DATABASE), "`invoke deploy`")
    target = PgTarget("embedded", cluster.port, cluster.ca_file,
                      str(cluster.datadir / "log" / "postgresql-*.log"))
    return Targets("embedded", (target,), disk_paths=(cluster.datadir, state_dir()))


def ha_targets() -> Targets:
    """Every member of the Patroni cluster (hrp_harness.ha.patroni, its cluster.json): an exporter each,
    its Patroni REST API, its server log; the leader's exporter is exporter_url."""
    from hrp_harness.ha.patroni import HaCluster

    cluster = HaCluster()
    if cluster.meta is None:
        raise MonitorError(f"no HA cluster in {cluster.base} (run `invoke cluster.up`)")
    leader = cluster.leader()
    if leader is None:
        raise MonitorError(f"the HA cluster in {cluster.base} has no running leader "
                           "(`invoke cluster.status`, `invoke cluster.up`)")
    require_role(cluster.dsn(DATABASE), "`invoke cluster.up` (it deploys)")
    ca = cluster.base / "tls" / "ca.crt"
    members = tuple(cluster.meta["nodes"])
    postgres = tuple(PgTarget(name, cluster.pg_port(name), ca if ca.exists() else None,
                              str(cluster.data_dir(name) / "log" / "postgresql-*.log"))
                     for name in members)
    patroni = tuple((name, int(cluster.rest_url(name).rsplit(":", 1)[1])) for name in members)
    return Targets("ha", postgres, patroni, disk_paths=(cluster.base,), primary=leader)


def require_role(dsn: str, fix: str) -> None:
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            found = conn.execute("select 1 from pg_roles where rolname = %s", (ROLE,)).fetchone()
    except psycopg.OperationalError as exc:
        raise MonitorError(f"cannot connect to {DATABASE}: {str(exc).strip()} (deploy it: {fix})") from None
    if found is None:
        raise MonitorError(f"role {ROLE} does not exist: the database was deployed before the "
                           f"monitoring role existed; run {fix}")


def bring_up(ha: bool = False, timing: Timing = PRODUCTION, echo=print) -> dict:
    """`invoke monitor.up [--ha]`: the stack for the embedded cluster or the Patroni cluster."""
    targets = ha_targets() if ha else embedded_targets()
    return Stack().up(targets, timing, echo=echo)


def wait_for_alert(stack: Stack, receiver: str, alertname: str, timeout: float,
                   status: str = "firing", since: float = 0.0, **labels: str) -> dict:
    """The first alert named alertname with these labels that receiver got (notified after since,
    Unix seconds) with this status; a HarnessError after timeout."""
    found: list[dict] = []

    def arrived() -> bool:
        for note in stack.received(receiver):
            if note["received_at"] < since:
                continue
            for alert in note["payload"].get("alerts", []):
                if (alert["status"] == status and alert["labels"].get("alertname") == alertname
                        and all(alert["labels"].get(k) == v for k, v in labels.items())):
                    found.append(alert)
                    return True
        return False
    procs.wait_until(arrived, timeout, f"{alertname} {labels} ({status}) at receiver {receiver}",
                     interval=0.5)
    return found[0]

