"""A local three-node Patroni 3.0 cluster over one etcd 3.4, and its failover drill.

node1 starts first and becomes the primary; standby1 is the synchronous standby (Patroni's
synchronous_mode); standby2 carries the nosync tag (reporting, disaster recovery). Everything lives
in one base directory (STATE/ha by default) on free 127.0.0.1 ports recorded in base/cluster.json;
every process is started as the server user and stopped by its pid or data directory.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template

import psycopg
from psycopg import sql

from hrp_harness import HarnessError, procs, tls
from hrp_harness.backup import PgInstance, Repository, read_fragment
from hrp_harness.cluster import APP_DATABASE, DEFAULT_FRAGMENTS, port_in_use, render
from hrp_harness.deploy import DATABASE, deploy
from hrp_harness.paths import CONF, PGBIN, state_dir
from hrp_harness.server_user import as_server_user, current_os_user, server_user

SCOPE = "hrp"
NODES = ("node1", "standby1", "standby2")
NOSYNC = {"standby2"}
SQL_DIR = Path(__file__).parent / "sql"


@dataclass(frozen=True)
class Timings:
    ttl: int
    loop_wait: int
    retry_timeout: int


TIMINGS = {
    "production": Timings(ttl=30, loop_wait=10, retry_timeout=10),
    "drill": Timings(ttl=10, loop_wait=1, retry_timeout=3),
}


class HaError(HarnessError):
    """The cluster is not in the state an operation needs; the message says which and where."""


def _http(method: str, url: str, body: dict | None = None, timeout: float = 3.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class HaCluster:
    def __init__(self, base: Path | None = None, timings: Timings = TIMINGS["production"]):
        self.base = Path(base or state_dir() / "ha").resolve()
        self.meta_file = self.base / "cluster.json"
        self.timings = timings
        self.meta = json.loads(self.meta_file.read_text()) if self.meta_file.exists() else None

    # -- layout --------------------------------------------------------------------------------
    def node_dir(self, name: str) -> Path:
        return self.base / name

    def data_dir(self, name: str) -> Path:
        return self.node_dir(name) / "data"

    def socket_dir(self, name: str) -> Path:
        return self.node_dir(name) / "socket"

    def patroni_yml(self, name: str) -> Path:
        return self.node_dir(name) / "patroni.yml"

    def pg_port(self, name: str) -> int:
        return self.meta["nodes"][name]["pg_port"]

    def rest_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.meta['nodes'][name]['rest_port']}"

    @property
    def repository(self) -> Repository:
        """The pgBackRest stanza over the three members (pgBackRest finds the primary)."""
        return Repository([PgInstance(self.data_dir(n), self.pg_port(n), self.socket_dir(n))
                           for n in NODES], base=self.base / "backup")

    # -- configuration -------------------------------------------------------------------------
    def _prepare(self) -> None:
        """First run: pick ports, generate passwords, render etcd, Patroni and pgBackRest config."""
        procs.server_dir(self.base, 0o750)
        if self.meta is None:
            ports: list[int] = []
            while len(ports) < 2 + 2 * len(NODES):  # distinct: the kernel may hand one out twice
                port = procs.free_port()
                if port not in ports:
                    ports.append(port)
            self.meta = {
                "etcd": {"client_port": ports[0], "peer_port": ports[1]},
                "nodes": {n: {"pg_port": ports[2 + 2 * i], "rest_port": ports[3 + 2 * i]}
                          for i, n in enumerate(NODES)},
                "timings": asdict(self.timings),
            }
            secrets_file = self.base / "secrets.json"
            fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({k: secrets.token_urlsafe(24) for k in ("superuser", "replication", "rewind")},
                          out)
            self.meta_file.write_text(json.dumps(self.meta, indent=2) + "\n")
        self.repository.write_config()
        etcd_dir = procs.server_dir(self.base / "etcd")
        (etcd_dir / "etcd.yml").write_text(Template((CONF / "etcd.yml.template").read_text())
                                           .substitute(name=f"{SCOPE}-etcd", data_dir=etcd_dir / "data",
                                                       **self.meta["etcd"]))
        tls_files = tls.install(self.base / "tls")  # one local CA and certificate for 127.0.0.1
        for name in NODES:
            self._render_patroni(name, tls_files)
        procs.give_tree(self.base, skip=("tls", "harness.pgpass"))

    @staticmethod
    def _hba() -> dict[str, str]:
        """pg_hba and pg_ident as every cluster has them (conf/pg_hba.conf.template,
        conf/pg_ident.conf.template, rendered for 127.0.0.1), plus Patroni's replication user;
        as YAML flow lists for the Patroni template."""
        values = {"DATABASE": APP_DATABASE, "CLIENT_NETWORKS": "127.0.0.1/32",
                  "SERVER_OS_USER": server_user(), "ADMIN_OS_USER": current_os_user()}

        def lines(template: str) -> list[str]:
            text = render(CONF / template, values)
            return [" ".join(line.split()) for line in text.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]

        hba = lines("pg_hba.conf.template")
        hba.append("hostssl replication replicator 127.0.0.1/32 scram-sha-256")
        return {"pg_hba": json.dumps(hba), "pg_ident": json.dumps(lines("pg_ident.conf.template"))}

    def _render_patroni(self, name: str, tls_files: tls.TlsFiles) -> None:
        node = procs.server_dir(self.node_dir(name))
        procs.server_dir(self.socket_dir(name))
        placeholders = self.repository.placeholders(self.data_dir(name))
        # Every cluster's fragments (base, logging, audit, tuning), then the replication ones.
        params = {}
        for fragment in (*DEFAULT_FRAGMENTS, "replication-primary", "replication-standby"):
            params.update(read_fragment(CONF / f"{fragment}.conf", placeholders))
        # Patroni owns synchronous_standby_names in synchronous_mode (see the fragment's header);
        # restore_command is a recovery setting (postgresql.recovery_conf); both it and
        # archive_command name this node's data dir, so they are local settings, not the DCS's.
        params.pop("synchronous_standby_names")
        restore_command = params.pop("restore_command")
        archive_command = params.pop("archive_command")
        pw = json.loads((self.base / "secrets.json").read_text())
        timings = self.meta["timings"]
        text = Template((CONF / "patroni.yml.template").read_text()).substitute(
            scope=SCOPE, name=name, etcd_hosts=f"127.0.0.1:{self.meta['etcd']['client_port']}",
            rest_host="127.0.0.1", rest_port=self.meta["nodes"][name]["rest_port"],
            pg_host="127.0.0.1", pg_port=self.pg_port(name), data_dir=self.data_dir(name),
            socket_dir=self.socket_dir(name), bin_dir=PGBIN, pgpass=node / "pgpass",
            parameters=json.dumps(params), restore_command=json.dumps(restore_command),
            archive_command=json.dumps(archive_command),
            nosync=json.dumps(name in NOSYNC), superuser_password=pw["superuser"],
            replication_password=pw["replication"], rewind_password=pw["rewind"],
            ssl_cert_file=tls_files.cert, ssl_key_file=tls_files.key, ssl_ca_file=tls_files.ca or "",
            ssl_crl_file=tls_files.crl or "", **self._client_tls(), **self._hba(), **timings)
        path = self.patroni_yml(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)

    # -- processes -----------------------------------------------------------------------------
    def _etcd_pidfile(self) -> Path:
        return self.base / "etcd" / "etcd.pid"

    def _patroni_pidfile(self, name: str) -> Path:
        return self.node_dir(name) / "patroni.pid"

    def _check_ports_free(self, what: str, ports: list[int]) -> None:
        taken = [p for p in ports if port_in_use(p)]
        if taken:
            raise HaError(f"{what} cannot start: 127.0.0.1 port(s) {taken} taken by another program "
                          f"(free them, or `invoke cluster.down --wipe` to pick new ports; "
                          f"ports are kept in {self.meta_file})")

    def start_etcd(self) -> None:
        if procs.read_pid(self._etcd_pidfile()):
            return
        self._check_ports_free("etcd", list(self.meta["etcd"].values()))
        etcd_dir = self.base / "etcd"
        procs.spawn(["etcd", "--config-file", str(etcd_dir / "etcd.yml")], etcd_dir / "etcd.log",
                    self._etcd_pidfile(), cwd=etcd_dir)
        url = f"http://127.0.0.1:{self.meta['etcd']['client_port']}/health"
        self._wait(lambda: _ok(url), 30, f"etcd health at {url} (log {etcd_dir / 'etcd.log'})")

    def start_node(self, name: str) -> None:
        if procs.read_pid(self._patroni_pidfile(name)):
            return
        ports = [self.meta["nodes"][name]["rest_port"]]
        if not procs.read_pid(self.data_dir(name) / "postmaster.pid"):  # Patroni adopts its own
            ports.append(self.pg_port(name))
        self._check_ports_free(name, ports)
        node = self.node_dir(name)
        procs.spawn(["patroni", str(self.patroni_yml(name))], node / "patroni.log",
                    self._patroni_pidfile(name), cwd=node)

    def stop_node(self, name: str) -> None:
        """Stop Patroni by pid (it shuts PostgreSQL down), then any postmaster left in the data dir."""
        procs.stop_pid(procs.read_pid(self._patroni_pidfile(name)), timeout=60)
        data = self.data_dir(name)
        if procs.read_pid(data / "postmaster.pid"):
            subprocess.run(as_server_user([PGBIN / "pg_ctl", "stop", "-D", data, "-m", "immediate",
                                           "-w"]), capture_output=True, cwd="/")

    def kill_node(self, name: str) -> float:
        """Crash a member: SIGKILL its Patroni, its postmaster and their children at once.
        Killing only the postmaster would let Patroni restart it in place. Returns the kill time."""
        pids = [procs.read_pid(self._patroni_pidfile(name)), procs.read_pid(self.data_dir(name) /
                                                                            "postmaster.pid")]
        if None in pids:
            raise HaError(f"{name}: Patroni pid {pids[0]}, postmaster pid {pids[1]}; both must run")
        killed_at = time.monotonic()
        procs.kill_tree_now(pids)
        return killed_at

    # -- lifecycle -----------------------------------------------------------------------------
    def up(self, apply_schema: bool = True) -> dict:
        """Start etcd, node1 (wait until it is the primary), the standbys (wait for a sync standby),
        then create hrp_database and apply deploy.plan on the primary (replicated to the others)."""
        started = time.monotonic()
        self._prepare()
        self.start_etcd()
        self.start_node(NODES[0])
        self._wait(lambda: self.leader() is not None, 90, "a leader (node1 bootstrap)")
        self.repository_ready()
        # One at a time: each pg_basebackup -X stream holds two of the spec's three WAL senders.
        for count, name in enumerate(NODES[1:], 2):
            self.start_node(name)
            self._wait(lambda: len(self._running()) >= count, 120, f"{name} to stream")
        self.wait_healthy(timeout=120)
        bootstrap_s = time.monotonic() - started
        if apply_schema:
            deploy(self.dsn(DATABASE), echo=lambda *_: None)
        return {"bootstrap_s": round(bootstrap_s, 1), **self.status()}

    def repository_ready(self) -> None:
        """Create the pgBackRest stanza once a primary runs (archive_command needs it)."""
        if not self.repository.exists():
            self.repository.stanza_create()

    def down(self, wipe: bool = False) -> None:
        """Stop replicas, then the leader (no failover churn), then etcd; wipe removes the state."""
        if self.meta is not None:
            leader = self.leader() if procs.read_pid(self._etcd_pidfile()) else None
            for name in sorted(NODES, key=lambda n: n == leader):
                self.stop_node(name)
        procs.stop_pid(procs.read_pid(self._etcd_pidfile()))
        if wipe and self.base.exists():
            shutil.rmtree(self.base)
            self.meta = None

    # -- state ---------------------------------------------------------------------------------
    def require(self) -> None:
        if self.meta is None:
            raise HaError(f"no HA cluster in {self.base} (run `invoke cluster.up`)")

    def cluster_view(self) -> dict | None:
        """GET /cluster from the first member that answers."""
        if self.meta is None:
            return None
        for name in NODES:
            try:
                status, body = _http("GET", self.rest_url(name) + "/cluster", timeout=1)
            except OSError:
                continue
            if status == 200:
                return json.loads(body)
        return None

    def members(self) -> list[dict]:
        view = self.cluster_view()
        return view["members"] if view else []

    def leader(self) -> str | None:
        for member in self.members():
            if member["role"] == "leader" and member["state"] == "running":
                return member["name"]
        return None

    def sync_standby(self) -> str | None:
        for member in self.members():
            if member["role"] == "sync_standby" and member["state"] in ("running", "streaming"):
                return member["name"]
        return None

    def _running(self) -> list[str]:
        return [m["name"] for m in self.members() if m["state"] in ("running", "streaming")]

    def wait_healthy(self, timeout: float = 120, members: int = len(NODES)) -> None:
        """Until there is a leader, a sync standby and `members` running members."""
        def healthy():
            return self.leader() and self.sync_standby() and len(self._running()) >= members
        self._wait(healthy, timeout, f"{members} running members with a leader and a sync_standby")

    def status(self) -> dict:
        members = [{k: m.get(k) for k in ("name", "role", "state", "host", "port", "timeline", "lag")}
                   for m in self.members()]
        return {"base": str(self.base), "timings": self.meta and self.meta["timings"],
                "running": bool(members), "members": members}

    # -- connection strings --------------------------------------------------------------------
    def _client_tls(self) -> dict[str, str]:
        """How clients (and the members, for replication and pg_rewind) check the server: TLS is
        mandatory on TCP (conf/tls.conf, pg_hba); verify-full against our CA when we have it."""
        ca = self.base / "tls" / "ca.crt"
        if ca.exists():
            return {"sslmode": "verify-full", "sslrootcert": str(ca)}
        return {"sslmode": "require", "sslrootcert": ""}

    def password(self) -> str:
        return json.loads((self.base / "secrets.json").read_text())["superuser"]

    def passfile(self) -> Path:
        """A 0600 pgpass file with the superuser's password for the three members, so that the
        password never appears in a command line (psql, pg_dump get the conninfo as argv)."""
        path = self.base / "harness.pgpass"
        lines = "".join(f"127.0.0.1:{self.pg_port(n)}:*:postgres:{self.password()}\n" for n in NODES)
        if not path.exists() or path.read_text() != lines:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(lines)
        return path

    def dsn(self, dbname: str = "postgres", connect_timeout: int = 2) -> str:
        """Multi-host conninfo that always reaches the current primary (target_session_attrs)."""
        hosts = ",".join("127.0.0.1" for _ in NODES)
        ports = ",".join(str(self.pg_port(n)) for n in NODES)
        client_tls = {k: v for k, v in self._client_tls().items() if v}
        return psycopg.conninfo.make_conninfo(
            host=hosts, port=ports, dbname=dbname, user="postgres", passfile=str(self.passfile()),
            target_session_attrs="read-write", connect_timeout=str(connect_timeout), **client_tls)

    def node_dsn(self, name: str, dbname: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(host=str(self.socket_dir(name)), port=str(self.pg_port(name)),
                                              dbname=dbname, user="postgres")

    # -- planned and unplanned role changes ----------------------------------------------------
    def set_timings(self, timings: Timings) -> None:
        """Change ttl / loop_wait / retry_timeout in the DCS (Patroni applies them on its next loop)."""
        leader = self.leader()
        if leader is None:
            raise HaError("no leader: cannot change the DCS configuration")
        status, body = _http("PATCH", self.rest_url(leader) + "/config", asdict(timings))
        if status != 200:
            raise HaError(f"PATCH /config on {leader}: HTTP {status} {body[:200]!r}")
        self.meta["timings"] = asdict(timings)
        self.meta_file.write_text(json.dumps(self.meta, indent=2) + "\n")
        time.sleep(max(timings.loop_wait, 1) + 1)

    def dcs_timings(self) -> Timings:
        """The timings in force (the DCS's dynamic configuration, GET /config)."""
        status, body = _http("GET", self.rest_url(self.leader() or NODES[0]) + "/config")
        if status != 200:
            raise HaError(f"GET /config: HTTP {status}")
        config = json.loads(body)
        return Timings(**{k: int(config[k]) for k in ("ttl", "loop_wait", "retry_timeout")})

    def switchover(self, candidate: str | None = None) -> dict:
        """Planned change of primary with patronictl (to the sync standby unless told otherwise)."""
        self.require()
        self.wait_healthy(timeout=60)
        leader = self.leader()
        candidate = candidate or self.sync_standby()
        if candidate not in NODES or candidate == leader:
            raise HaError(f"switchover candidate {candidate!r}: pick a replica among {NODES}")
        started = time.monotonic()
        proc = subprocess.run(as_server_user(["patronictl", "-c", self.patroni_yml(leader), "switchover",
                                              "--leader", leader, "--candidate", candidate, "--force"]),
                              capture_output=True, text=True, cwd="/")
        if proc.returncode != 0:
            raise HaError(f"patronictl switchover {leader} -> {candidate}: {proc.stdout}{proc.stderr}")
        self._wait(lambda: self.leader() == candidate, 60, f"{candidate} to lead")
        self.wait_healthy(timeout=90)
        return {"old_primary": leader, "new_primary": candidate,
                "switchover_s": round(time.monotonic() - started, 1)}

    def drill(self, warmup_s: float = 2.0, after_s: float = 2.0, rejoin_timeout: float = 120) -> dict:
        """Kill the primary under write load; measure RTO and lost commits; rejoin the old primary."""
        self.require()
        self.wait_healthy(timeout=90)
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute((SQL_DIR / "drill_writes.sql").read_text())
        old = self.leader()
        writer = _Writer(self.dsn(connect_timeout=1))
        writer.start()
        time.sleep(warmup_s)
        self._wait(lambda: self.sync_standby() is not None, 30, "a sync_standby before the kill")
        if writer.error:
            raise HaError(f"drill writer failed before the kill: {writer.error}")
        killed_at = self.kill_node(old)
        writer.killed_at = killed_at
        self._wait(lambda: writer.first_ack_after_kill is not None, 180,
                   "the first acknowledged write on a new connection after the kill")
        time.sleep(after_s)
        writer.stop()
        rto = writer.first_ack_after_kill - killed_at
        new = self.leader()
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            found = conn.execute(sql.SQL("select count(*) from public.hrp_drill_writes where n = any(%s)"),
                                 [writer.acked]).fetchone()[0]
        lost = len(writer.acked) - found
        log = self.node_dir(old) / "patroni.log"
        log_offset = log.stat().st_size
        rejoin_started = time.monotonic()
        self.start_node(old)
        self._wait(lambda: any(m["name"] == old and m["state"] in ("running", "streaming")
                               and m["role"] != "leader" for m in self.members()),
                   rejoin_timeout, f"{old} to rejoin as a replica")
        rejoin_s = time.monotonic() - rejoin_started
        with open(log, "rb") as fh:
            fh.seek(log_offset)
            rewound = b"pg_rewind exit code=0" in fh.read()
        self.wait_healthy(timeout=rejoin_timeout)
        return {"rto_s": round(rto, 2), "lost_commits": lost, "acked_commits": len(writer.acked),
                "failed_attempts": writer.failures, "old_primary": old, "new_primary": new,
                "rejoin_s": round(rejoin_s, 1), "pg_rewind_ran": rewound, "timings": self.meta["timings"]}

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _wait(predicate, timeout: float, what: str, interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (OSError, psycopg.Error):
                pass
            time.sleep(interval)
        raise HaError(f"timed out after {timeout:.0f} s waiting for {what}")


def _ok(url: str) -> bool:
    try:
        return _http("GET", url, timeout=1)[0] == 200
    except OSError:
        return False


class _Writer(threading.Thread):
    """The drill's client: one insert per commit through the multi-host conninfo; reconnects on
    error; remembers which commits were acknowledged and when the first one after the kill came
    back on a connection opened after the kill."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.acked: list[int] = []
        self.failures = 0
        self.error: str | None = None
        self.killed_at: float | None = None
        self.first_ack_after_kill: float | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        insert = sql.SQL("insert into public.hrp_drill_writes (n) values (%s)")
        n, conn, opened_at = 0, None, 0.0
        while not self._halt.is_set():
            try:
                if conn is None:
                    opened_at = time.monotonic()
                    conn = psycopg.connect(self.dsn, autocommit=True)
                n += 1
                conn.execute(insert, [n])
                acked_at = time.monotonic()
                self.acked.append(n)
                if (self.killed_at is not None and self.first_ack_after_kill is None
                        and opened_at > self.killed_at):
                    self.first_ack_after_kill = acked_at
            except psycopg.Error as err:
                self.failures += 1
                self.error = str(err).strip()
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


#: Drill targets: RTO at the drill's timings (issue: 10.5 s measured), and at production timings
#: (spec RTO 2 minutes; 27.8 s measured). lost_commits must be 0 in both (spec RPO 1 minute).
RTO_TARGET_S = {"drill": 15.0, "production": 60.0}


def run_drill(timings_name: str = "drill", base: Path | None = None) -> tuple[dict, list[str]]:
    """`invoke cluster.drill`: use the running cluster (its DCS timings switched to the asked ones
    for the drill and back after), or bring one up and stop it afterwards. Returns the result
    (with "targets_met") and the summary lines, the last one the result as one JSON object."""
    if timings_name not in TIMINGS:
        raise HaError(f"timings {timings_name!r}: expected one of {', '.join(TIMINGS)}")
    timings = TIMINGS[timings_name]
    cluster = HaCluster(base, timings=timings)
    started_here = cluster.meta is None or procs.read_pid(cluster._etcd_pidfile()) is None
    if started_here:
        cluster.up()
    previous = cluster.dcs_timings()
    if previous == timings:
        previous = None
    else:
        cluster.set_timings(timings)
    try:
        result = cluster.drill()
    finally:
        if previous is not None:
            cluster.set_timings(previous)
        if started_here:
            cluster.down()
    result["rto_target_s"] = RTO_TARGET_S[timings_name]
    result["targets_met"] = result["lost_commits"] == 0 and result["rto_s"] <= result["rto_target_s"]
    t = result["timings"]
    lines = [
        f"timings: ttl {t['ttl']} / loop_wait {t['loop_wait']} / retry_timeout {t['retry_timeout']}"
        f" ({timings_name})",
        f"killed {result['old_primary']} (Patroni + postmaster); new primary {result['new_primary']}",
        f"RTO (kill -> first acknowledged write on a new connection): {result['rto_s']} s"
        f" (target <= {result['rto_target_s']:.0f} s)",
        f"lost commits: {result['lost_commits']} of {result['acked_commits']} acknowledged (target 0)",
        f"old primary rejoined as a replica in {result['rejoin_s']} s"
        f" ({'after pg_rewind' if result['pg_rewind_ran'] else 'without pg_rewind'})",
        f"targets {'met' if result['targets_met'] else 'MISSED'}",
        json.dumps(result),
    ]
    return result, lines


def bring_up(timings_name: str = "production", base: Path | None = None) -> dict:
    """`invoke cluster.up`: start (or restart) the cluster; set the DCS timings to the named ones."""
    if timings_name not in TIMINGS:
        raise HaError(f"timings {timings_name!r}: expected one of {', '.join(TIMINGS)}")
    cluster = HaCluster(base, timings=TIMINGS[timings_name])
    result = cluster.up()
    if cluster.dcs_timings() != TIMINGS[timings_name]:
        cluster.set_timings(TIMINGS[timings_name])
        result["timings"] = cluster.meta["timings"]
    return result
