"""A local three-node Patroni 4.1 cluster over one etcd 3.4: lifecycle, state, member operations,
and the failover drill (the other faults: hrp_harness.ha.chaos).

node1 starts first and becomes the primary; standby1 is the synchronous standby (Patroni's strict
synchronous_mode); standby2 is for reporting and disaster recovery, the synchronous standby only
while neither of the other two can be (sync_priority 1 against 2). Everything lives in one base
directory (STATE/ha by default) on free 127.0.0.1 ports recorded in base/cluster.json; every
process (etcd, Patroni from the project's venv, a postmaster check beside each Patroni) is started
as the server user and stopped by its pid or data directory.
"""
from __future__ import annotations

import json
import secrets
import shutil
import signal
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import psycopg

from hrp_harness import HarnessError
from hrp_harness.platform import procs
from hrp_harness.platform import tls
from hrp_harness.ha import writeload
from hrp_harness.ha.backup import PgInstance, Repository
from hrp_harness.platform.cluster import DATABASE, DEFAULT_FRAGMENTS, pg_ctl
from hrp_harness.platform.conf import fragment_values, render, write_private
from hrp_harness.platform.deploy import deploy
from hrp_harness.ha.haproxy import HaProxy, ReadProbe
from hrp_harness.platform.paths import CONF, PGBIN, VENV_BIN, state_dir
from hrp_harness.platform.server_user import current_os_user, run_as_server, server_user

SCOPE = "hrp"
NODES = ("node1", "standby1", "standby2")
#: Patroni's sync_priority tag: the streaming member with the highest is the synchronous standby.
SYNC_PRIORITY = {"node1": 2, "standby1": 2, "standby2": 1}
#: The postmaster check beside each Patroni (hrp_harness/ha/postmaster_check.py).
POSTMASTER_CHECK = Path(__file__).parent / "postmaster_check.py"


@dataclass(frozen=True)
class Timings:
    ttl: int
    loop_wait: int
    retry_timeout: int


TIMINGS = {
    "production": Timings(ttl=30, loop_wait=10, retry_timeout=10),
    # Patroni (since 3.1) raises a ttl below 20 s to 20: the shortest lease it allows.
    "drill": Timings(ttl=20, loop_wait=1, retry_timeout=3),
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
            write_private(self.base / "secrets.json", json.dumps(
                {k: secrets.token_urlsafe(24) for k in ("superuser", "replication", "rewind")}))
            self.meta_file.write_text(json.dumps(self.meta, indent=2) + "\n")
        self.repository.write_config()
        etcd_dir = procs.server_dir(self.base / "etcd")
        (etcd_dir / "etcd.yml").write_text(render(CONF / "etcd.yml.template", {
            "NAME": f"{SCOPE}-etcd", "DATA_DIR": etcd_dir / "data",
            "CLIENT_PORT": self.meta["etcd"]["client_port"], "PEER_PORT": self.meta["etcd"]["peer_port"]}))
        # The check runs as the server user, which may not enter the repository: a copy here.
        shutil.copy(POSTMASTER_CHECK, self.base / POSTMASTER_CHECK.name)
        tls_files = tls.install(self.base / "tls")  # one local CA and certificate for 127.0.0.1
        for name in NODES:
            self._render_patroni(name, tls_files)
        procs.give_tree(self.base, skip=("tls", "harness.pgpass"))

    @staticmethod
    def _hba() -> dict[str, str]:
        """pg_hba and pg_ident as every cluster has them (conf/pg_hba.conf.template,
        conf/pg_ident.conf.template, rendered for 127.0.0.1), plus Patroni's replication user;
        as YAML flow lists for the Patroni template."""
        values = {"DATABASE": DATABASE, "CLIENT_NETWORKS": "127.0.0.1/32",
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
            params.update(fragment_values(CONF / f"{fragment}.conf", placeholders))
        # Patroni owns synchronous_standby_names in synchronous_mode (see the fragment's header);
        # archive_command names this node's data dir: a local setting, not the DCS's.
        params.pop("synchronous_standby_names")
        archive_command = params.pop("archive_command")
        pw = json.loads((self.base / "secrets.json").read_text())
        timings = self.meta["timings"]
        values = {
            "SCOPE": SCOPE, "NAME": name, "ETCD_HOSTS": f"127.0.0.1:{self.meta['etcd']['client_port']}",
            "REST_HOST": "127.0.0.1", "REST_PORT": self.meta["nodes"][name]["rest_port"],
            "PG_HOST": "127.0.0.1", "PG_PORT": self.pg_port(name), "DATA_DIR": self.data_dir(name),
            "SOCKET_DIR": self.socket_dir(name), "BIN_DIR": PGBIN, "PGPASS": node / "pgpass",
            "PARAMETERS": json.dumps(params), "ARCHIVE_COMMAND": json.dumps(archive_command),
            "SYNC_PRIORITY": SYNC_PRIORITY[name], "SUPERUSER_PASSWORD": pw["superuser"],
            "REPLICATION_PASSWORD": pw["replication"], "REWIND_PASSWORD": pw["rewind"],
            "SSL_CERT_FILE": tls_files.cert, "SSL_KEY_FILE": tls_files.key,
            "SSL_CA_FILE": tls_files.ca or "", "SSL_CRL_FILE": tls_files.crl or "",
            **{k.upper(): v for k, v in {**self._client_tls(), **self._hba(), **timings}.items()}}
        write_private(self.patroni_yml(name), render(CONF / "patroni.yml.template", values))

    # -- processes (procs.Controller each: started as the server user, stopped by pid) ---------
    def etcd(self) -> procs.HttpServer:
        """The etcd member, ready when /health answers 200."""
        etcd_dir = self.base / "etcd"
        return procs.HttpServer("etcd", ["etcd", "--config-file", str(etcd_dir / "etcd.yml")],
                                f"http://127.0.0.1:{self.meta['etcd']['client_port']}/health",
                                etcd_dir / "etcd.pid", etcd_dir / "etcd.log", cwd=etcd_dir)

    def patroni(self, name: str) -> procs.Controller:
        """A member's Patroni (from the venv); the cluster's state says when it is ready."""
        node = self.node_dir(name)
        return procs.Controller(f"Patroni {name}", [str(VENV_BIN / "patroni"), str(self.patroni_yml(name))],
                                node / "patroni.pid", node / "patroni.log", cwd=node)

    def postmaster_check(self, name: str) -> procs.Controller:
        """The postmaster check beside a member's Patroni (hrp_harness/ha/postmaster_check.py)."""
        node = self.node_dir(name)
        argv = [str(VENV_BIN / "python"), str(self.base / POSTMASTER_CHECK.name),
                "--data", str(self.data_dir(name)), "--socket", str(self.socket_dir(name)),
                "--port", str(self.pg_port(name)), "--rest", self.rest_url(name)]
        return procs.Controller(f"postmaster check {name}", argv, node / "postmaster-check.pid",
                                node / "postmaster-check.log", cwd=node)

    def etcd_pid(self) -> int | None:
        return procs.read_pid(self.base / "etcd" / "etcd.pid")

    def patroni_pid(self, name: str) -> int | None:
        return self.patroni(name).pid

    def postmaster_pid(self, name: str) -> int | None:
        return procs.read_pid(self.data_dir(name) / "postmaster.pid")

    def _check_ports_free(self, what: str, ports: list[int]) -> None:
        taken = [p for p in ports if procs.port_in_use(p)]
        if taken:
            raise HaError(f"{what} cannot start: 127.0.0.1 port(s) {taken} taken by another program "
                          f"(free them, or `invoke cluster.down --wipe` to pick new ports; "
                          f"ports are kept in {self.meta_file})")

    def start_etcd(self) -> None:
        if self.etcd_pid():
            return
        self._check_ports_free("etcd", list(self.meta["etcd"].values()))
        self.etcd().start(timeout=30)

    def stop_etcd(self) -> None:
        procs.stop_pid(self.etcd_pid())

    def start_node(self, name: str) -> None:
        """Start the member's Patroni (from the venv) and its postmaster check, each unless running."""
        patroni = self.patroni(name)
        if not patroni.running:
            if not (VENV_BIN / "patroni").exists():
                raise HaError(f"{VENV_BIN / 'patroni'} is missing: run `./hrp setup` (Patroni comes from "
                              "requirements.txt)")
            ports = [self.meta["nodes"][name]["rest_port"]]
            if not self.postmaster_pid(name):  # Patroni adopts its own
                ports.append(self.pg_port(name))
            self._check_ports_free(name, ports)
            patroni.start(timeout=None)  # ready: judged by the callers from the cluster's state
        self.postmaster_check(name).start(timeout=None)

    def node_processes(self, name: str) -> list[psutil.Process]:
        """Every process of a member: Patroni, the postmaster, their descendants (backends, logger,
        pg_rewind, pg_basebackup), and the postmaster check."""
        found: dict[int, psutil.Process] = {}
        for pid in (self.patroni_pid(name), self.postmaster_pid(name), self.postmaster_check(name).pid):
            if pid is None:
                continue
            try:
                proc = psutil.Process(pid)
                for one in (proc, *proc.children(recursive=True)):
                    found[one.pid] = one
            except psutil.NoSuchProcess:
                continue
        return list(found.values())

    def processes(self) -> list[psutil.Process]:
        """Every process of the cluster (members and etcd)."""
        found = [p for name in NODES for p in self.node_processes(name)] if self.meta else []
        pid = self.etcd_pid()
        if pid:
            try:
                found.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        return found

    def thaw(self) -> int:
        """SIGCONT every stopped process of the cluster (a chaos run killed while it held a freeze
        leaves them stopped for good), the runuser wrappers that started them included (also those
        whose program is gone: a stopped runuser never reaps its child); returns how many."""
        base = str(self.base)
        wrappers = [p for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] == "runuser"
                    and any(base in arg for arg in p.info["cmdline"] or ())]
        return procs.continue_stopped(self.processes() + wrappers)

    def stop_node(self, name: str) -> None:
        """Stop the postmaster check, then Patroni by pid (it shuts PostgreSQL down), then any
        postmaster left in the data dir; wait until every process of the member is gone (the
        logger outlives the postmaster a moment), SIGKILL what is not."""
        victims = self.node_processes(name)
        self.postmaster_check(name).stop(timeout=10)
        self.patroni(name).stop(timeout=60)
        if self.postmaster_pid(name):  # by data directory; a failure shows in what is left alive
            run_as_server(pg_ctl(self.data_dir(name), "stop", "--mode", "immediate", "--wait"),
                          capture_output=True)
        alive = procs.wait_gone(victims, timeout=30)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        procs.wait_gone(alive, timeout=10)

    def kill_node(self, name: str) -> float:
        """Crash a member: SIGKILL its Patroni, postmaster, their children and its postmaster check
        at once (killing only the postmaster would let Patroni restart it in place). Returns the
        kill time."""
        if not self.patroni_pid(name) or not self.postmaster_pid(name):
            raise HaError(f"{name}: Patroni pid {self.patroni_pid(name)}, postmaster pid "
                          f"{self.postmaster_pid(name)}; both must run")
        victims = self.node_processes(name)
        killed_at = time.monotonic()
        procs.kill_tree_now([p.pid for p in victims])
        procs.kill_by_cwd(self.data_dir(name))  # a backend forked meanwhile, orphaned
        return killed_at

    # -- lifecycle -----------------------------------------------------------------------------
    def up(self, apply_schema: bool = True, timeout: float = 240, echo=lambda *_: None) -> dict:
        """Bring the cluster up from whatever state it is in.

        First run: start etcd, node1 (until it leads), then the standbys one at a time (each
        pg_basebackup holds two of the three WAL senders). Data directories present: continue
        stopped processes, start etcd and every member at once, remove a stale failover key,
        resume a paused cluster, wait for a leader, re-clone (reinit) a member that does not
        stream, and wait until the cluster is healthy. Then apply deploy.plan on the primary."""
        started = time.monotonic()
        self._prepare()
        if self.thaw():
            echo("continued stopped processes of the cluster")
        self.start_etcd()
        if not any((self.data_dir(n) / "PG_VERSION").exists() for n in NODES):
            self.start_node(NODES[0])
            self._wait(lambda: self.leader() is not None, 90, "a leader (node1 bootstrap)")
            self.repository_ready()
            for count, name in enumerate(NODES[1:], 2):
                self.start_node(name)
                self._wait(lambda: len(self._streaming()) >= count - 1, 120, f"{name} to stream")
        else:
            self._recover(timeout, echo)
        self.repository_ready()
        self.wait_healthy(timeout=timeout)
        bootstrap_s = time.monotonic() - started
        if apply_schema:
            deploy(self.dsn(DATABASE), echo=lambda *_: None)
        # -- HAProxy hook (issue 13): the read-write, read-only and reports ports (haproxy.py) --
        HaProxy(self).start()
        return {"bootstrap_s": round(bootstrap_s, 1), **self.status()}

    def _recover(self, timeout: float, echo) -> None:
        """The existing cluster's way back: keys, members, leader, replicas."""
        if self.etcd_delete(f"/service/{SCOPE}/failover"):
            echo("removed a stale failover key from etcd")
        for name in NODES:
            self.start_node(name)
        self._wait(lambda: self.cluster_view() is not None, 60, "a Patroni REST API to answer")
        config = self.etcd_get(f"/service/{SCOPE}/config") or {}
        if config.get("pause"):
            self.patch_config({"pause": None})
            echo("the cluster was paused (maintenance mode): resumed")
        try:
            self._wait(lambda: self.leader() is not None, timeout / 2, "a leader")
        except HaError:
            raise HaError(f"no leader after {timeout / 2:.0f} s; members: {self.members_line()}. "
                          "If the synchronous standby is gone for good, `invoke cluster.failover "
                          "--candidate NAME` to a running member accepts losing what only it "
                          "had") from None
        try:
            self._wait(lambda: len(self._streaming()) == len(NODES) - 1, timeout / 4,
                       "every replica to stream")
        except HaError:
            for member in self.members():
                if member["role"] != "leader" and member["state"] != "streaming":
                    echo(f"{member['name']} is {member['state']}: re-cloning it from the leader")
                    try:
                        self.patronictl("reinit", SCOPE, member["name"], "--force", "--wait")
                    except HaError as exc:  # e.g. Patroni is busy rewinding it: wait_healthy judges
                        echo(str(exc).splitlines()[0])

    def repository_ready(self) -> None:
        """Create the pgBackRest stanza once a primary runs (archive_command needs it)."""
        if not self.repository.exists():
            self.repository.stanza_create()

    def down(self, wipe: bool = False) -> None:
        """Continue stopped processes, stop replicas, then the leader (no failover churn), then
        etcd; wipe removes the state once every process is gone."""
        if self.meta is not None:
            HaProxy(self).stop()  # -- HAProxy hook (issue 13): stopped first, by pid
            self.thaw()
            leader = self.leader() if self.etcd_pid() else None
            for name in sorted(NODES, key=lambda n: n == leader):
                self.stop_node(name)
        self.stop_etcd()
        if wipe and self.base.exists():
            for attempt in range(5):
                try:
                    shutil.rmtree(self.base)
                    break
                except OSError as exc:  # a process still writing (a logger's last line)
                    if attempt == 4:
                        raise HaError(f"could not remove {self.base}: {exc}") from None
                    time.sleep(1)
            self.meta = None

    # -- etcd keys (v3 gRPC gateway) -----------------------------------------------------------
    def _etcd(self, call: str, body: dict) -> dict:
        import base64

        body = {k: base64.b64encode(v.encode()).decode() for k, v in body.items()}
        url = f"http://127.0.0.1:{self.meta['etcd']['client_port']}/v3/kv/{call}"
        status, raw = _http("POST", url, body, timeout=5)
        if status != 200:
            raise HaError(f"etcd {call}: HTTP {status} {raw[:200]!r}")
        return json.loads(raw)

    def etcd_get(self, key: str) -> dict | None:
        """The JSON value of one of Patroni's keys (None when absent)."""
        import base64

        kvs = self._etcd("range", {"key": key}).get("kvs")
        if not kvs:
            return None
        value = base64.b64decode(kvs[0]["value"]).decode()
        try:
            return json.loads(value)
        except ValueError:
            return {"value": value}

    def etcd_delete(self, key: str) -> bool:
        return int(self._etcd("deleterange", {"key": key}).get("deleted", 0)) > 0

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
                status, body = _http("GET", self.rest_url(name) + "/cluster", timeout=2)
            except OSError:
                continue
            if status == 200:
                return json.loads(body)
        return None

    def members(self) -> list[dict]:
        view = self.cluster_view()
        return view["members"] if view else []

    def members_line(self) -> str:
        members = self.members()
        return ", ".join(f"{m['name']} {m['role']} {m['state']}" for m in members) or "none answers"

    def leader(self) -> str | None:
        for member in self.members():
            if member["role"] == "leader" and member["state"] == "running":
                return member["name"]
        return None

    def sync_standby(self) -> str | None:
        for member in self.members():
            if member["role"] == "sync_standby" and member["state"] == "streaming":
                return member["name"]
        return None

    def _streaming(self) -> list[str]:
        return [m["name"] for m in self.members() if m["role"] != "leader" and m["state"] == "streaming"]

    def problems(self, view: dict | None = None, deep: bool = True) -> list[str]:
        """Why the cluster is not healthy (empty: healthy). Healthy = one running leader, every
        other member streaming from it on its timeline, one of them the synchronous standby; deep
        also asks the leader's pg_stat_replication and synchronous_standby_names."""
        view = view if view is not None else self.cluster_view()
        if view is None:
            return ["no member's Patroni REST API answers"]
        members = {m["name"]: m for m in view["members"]}
        found = []
        leaders = [m for m in members.values() if m["role"] == "leader"]
        if len(leaders) != 1 or leaders[0]["state"] != "running":
            found.append("no running leader" if not leaders else
                         "leaders: " + ", ".join(f"{m['name']} ({m['state']})" for m in leaders))
        if not any(m["role"] == "sync_standby" and m["state"] == "streaming" for m in members.values()):
            found.append("no synchronous standby streaming")
        timeline = leaders[0].get("timeline") if leaders else None
        for name in NODES:
            member = members.get(name)
            if member is None:
                found.append(f"{name}: not in the cluster (its Patroni is not running)")
            elif member["role"] != "leader" and member["state"] != "streaming":
                found.append(f"{name}: {member['state']}, not streaming")
            elif member["role"] != "leader" and timeline and member.get("timeline") != timeline:
                found.append(f"{name}: timeline {member.get('timeline')}, the leader is on {timeline}")
        syncs = [m for m in members.values() if m["role"] == "sync_standby"]
        streaming = [m for m in members.values() if m["role"] != "leader" and m["state"] == "streaming"]
        if not found and syncs and streaming:
            best = max(streaming, key=lambda m: SYNC_PRIORITY.get(m["name"], 0))
            if SYNC_PRIORITY.get(syncs[0]["name"], 0) < SYNC_PRIORITY.get(best["name"], 0):
                found.append(f"{syncs[0]['name']} is the synchronous standby while {best['name']} "
                             "(higher sync_priority) streams: Patroni is handing the role back")
        if deep and not found:
            found += self._replication_problems(leaders[0]["name"])
        return found

    def _replication_problems(self, leader: str) -> list[str]:
        try:
            with psycopg.connect(self.node_dsn(leader), connect_timeout=3, autocommit=True) as conn:
                ssn = conn.execute("show synchronous_standby_names").fetchone()[0]
                rows = dict(conn.execute("select application_name, sync_state from pg_stat_replication "
                                         "where state = 'streaming'").fetchall())
        except psycopg.Error as exc:
            return [f"{leader}: cannot ask pg_stat_replication ({str(exc).strip()})"]
        found = [f"{name}: no streaming walsender on the leader" for name in NODES
                 if name != leader and name not in rows]
        if "sync" not in rows.values():
            found.append(f"{leader}: no standby in sync_state 'sync' "
                         f"(synchronous_standby_names = {ssn!r})")
        return found

    def wait_healthy(self, timeout: float = 120) -> None:
        """Until problems() is empty; the error names what is still wrong."""
        last: list[str] = []

        def healthy() -> bool:
            last[:] = self.problems()
            return not last
        try:
            self._wait(healthy, timeout, "a healthy cluster", interval=0.5)
        except HaError:
            raise HaError(f"cluster not healthy after {timeout:.0f} s: {'; '.join(last)}") from None

    def status(self) -> dict:
        """Members (role, state, host, port, timeline, lag, tags, pids of Patroni and postmaster),
        health, the multi-host DSN, the endpoints (HAProxy's ports; None while it is not running)."""
        view = self.cluster_view() if self.meta else None
        members = []
        for m in (view or {}).get("members", []):
            name = m["name"]
            members.append({**{k: m.get(k) for k in ("name", "role", "state", "host", "port", "timeline",
                                                     "lag")},
                            "tags": m.get("tags", {}),
                            "pids": {"patroni": self.patroni_pid(name),
                                     "postmaster": self.postmaster_pid(name)} if name in NODES else {}})
        problems = self.problems(view) if self.meta else ["no HA cluster"]
        return {"base": str(self.base), "timings": self.meta and self.meta["timings"],
                "running": bool(members), "paused": bool(view and view.get("pause")),
                "healthy": not problems, "problems": problems, "members": members,
                "dsn": self.dsn() if self.meta else None,
                # -- HAProxy hook (issue 13): read_write, read_only, reports --
                "endpoints": HaProxy(self).endpoints() if self.meta else
                {"read_write": None, "read_only": None, "reports": None}}

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
            write_private(path, lines)
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
        return psycopg.conninfo.make_conninfo(host=str(self.socket_dir(name)),
                                              port=str(self.pg_port(name)), dbname=dbname, user="postgres")

    # -- configuration in the DCS --------------------------------------------------------------
    def patch_config(self, change: dict) -> None:
        """PATCH /config (the DCS's dynamic configuration) through any member that answers."""
        for name in [self.leader() or NODES[0], *NODES]:
            try:
                status, body = _http("PATCH", self.rest_url(name) + "/config", change)
            except OSError:
                continue
            if status == 200:
                return
        raise HaError(f"PATCH /config {change}: no member accepted it")

    def set_timings(self, timings: Timings) -> None:
        """Change ttl / loop_wait / retry_timeout in the DCS (Patroni applies them on its next loop)."""
        self.patch_config(asdict(timings))
        self.meta["timings"] = asdict(timings)
        self.meta_file.write_text(json.dumps(self.meta, indent=2) + "\n")
        time.sleep(max(timings.loop_wait, 1) + 1)

    def dcs_timings(self) -> Timings:
        """The timings in force (the DCS's dynamic configuration, GET /config)."""
        for name in [self.leader() or NODES[0], *NODES]:
            try:
                status, body = _http("GET", self.rest_url(name) + "/config")
            except OSError:
                continue
            if status == 200:
                config = json.loads(body)
                return Timings(**{k: int(config[k]) for k in ("ttl", "loop_wait", "retry_timeout")})
        raise HaError("GET /config: no member answers")

    # -- planned role changes and member operations --------------------------------------------
    def patronictl(self, *args: str) -> str:
        """patronictl (from the venv) as the server user with node1's configuration (any member's
        names the same etcd); raises HaError with its output when it fails."""
        argv = [str(VENV_BIN / "patronictl"), "-c", str(self.patroni_yml(NODES[0])), *args]
        proc = run_as_server(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise HaError(f"patronictl {' '.join(args)}: {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout

    def _check_name(self, name: str | None, what: str) -> str:
        if name not in NODES:
            raise HaError(f"{what} {name!r}: expected one of {', '.join(NODES)}")
        return name

    def switchover(self, candidate: str | None = None) -> dict:
        """Planned change of primary with patronictl (to the sync standby unless told otherwise)."""
        self.require()
        if candidate is not None:
            self._check_name(candidate, "switchover candidate")
        self.wait_healthy(timeout=60)
        leader = self.leader()
        candidate = candidate or self.sync_standby()
        if candidate == leader:
            raise HaError(f"switchover candidate {candidate!r} is the leader already: pick a replica")
        started = time.monotonic()
        output = self.patronictl("switchover", SCOPE, "--leader", leader, "--candidate", candidate,
                                 "--force")
        if "Successfully" not in output:  # patronictl may exit 0 on "Failover failed"
            raise HaError(f"patronictl switchover {leader} -> {candidate}: {output.strip()}")
        self._wait(lambda: self.leader() == candidate, 60, f"{candidate} to lead")
        self.wait_healthy(timeout=120)
        return {"old_primary": leader, "new_primary": candidate,
                "switchover_s": round(time.monotonic() - started, 1)}

    def failover(self, candidate: str) -> dict:
        """Manual failover to candidate (patronictl failover): works without a healthy leader too.
        Patroni warns when the candidate is not the synchronous standby: it may lack commits."""
        self.require()
        self._check_name(candidate, "failover candidate")
        before = self.leader()
        if candidate == before:
            raise HaError(f"failover candidate {candidate!r} is the leader already")
        was_sync = self.sync_standby() == candidate
        started = time.monotonic()
        output = self.patronictl("failover", SCOPE, "--candidate", candidate, "--force")
        if "Successfully" not in output:  # patronictl may exit 0 on "Failover failed"
            raise HaError(f"patronictl failover to {candidate}: {output.strip()}")
        self._wait(lambda: self.leader() == candidate, 90, f"{candidate} to lead")
        self.wait_healthy(timeout=180)
        return {"old_primary": before, "new_primary": candidate, "candidate_was_sync_standby": was_sync,
                "failover_s": round(time.monotonic() - started, 1)}

    MEMBER_ACTIONS = ("start", "stop", "restart", "reinit")

    def member(self, name: str, action: str, timeout: float = 180) -> dict:
        """One member: start (Patroni and its check), stop (Patroni shuts PostgreSQL down; a leader
        hands over to the synchronous standby), restart (PostgreSQL, through Patroni), reinit
        (re-clone a replica from the leader). Waits until the member is where the action leads."""
        self.require()
        self._check_name(name, "member")
        if action not in self.MEMBER_ACTIONS:
            raise HaError(f"member action {action!r}: expected one of {', '.join(self.MEMBER_ACTIONS)}")
        started = time.monotonic()
        if action == "start":
            self.start_node(name)
            self._wait(lambda: self._member_ok(name), timeout, f"{name} to run")
        elif action == "stop":
            self.stop_node(name)
            self._wait(lambda: name not in {m["name"] for m in self.members()} and self.leader(),
                       timeout, f"{name} to leave the cluster and a leader to remain")
        elif action == "restart":
            self.patronictl("restart", SCOPE, name, "--force")
            self._wait(lambda: self._member_ok(name), timeout, f"{name} to run again")
        else:
            if name == self.leader():
                raise HaError(f"{name} is the leader: reinit re-clones a replica (switch over first)")
            self.patronictl("reinit", SCOPE, name, "--force", "--wait")
            self._wait(lambda: self._member_ok(name), timeout, f"{name} to stream again")
        return {"member": name, "action": action, "seconds": round(time.monotonic() - started, 1),
                "members": self.members_line()}

    def _member_ok(self, name: str) -> bool:
        return any(m["name"] == name and (m["state"] == "streaming" or
                                          (m["role"] == "leader" and m["state"] == "running"))
                   for m in self.members())

    def pause(self, paused: bool = True) -> dict:
        """Maintenance mode on (no automatic failover, Patroni leaves PostgreSQL alone) or off."""
        self.require()
        current = bool((self.cluster_view() or {}).get("pause"))
        if current != paused:
            self.patronictl("pause" if paused else "resume", SCOPE, "--wait")
        return {"paused": bool((self.cluster_view() or {}).get("pause"))}

    # -- the failover drill --------------------------------------------------------------------
    def drill(self, warmup_s: float = 2.0, after_s: float = 2.0, rejoin_timeout: float = 180,
              write_dsn: str | None = None) -> dict:
        """Kill the primary under write load (through write_dsn, default the multi-host DSN);
        measure RTO and lost commits; rejoin the old primary."""
        self.require()
        self.wait_healthy(timeout=120)
        writeload.prepare_table(self.dsn())
        old = self.leader()
        load = writeload.WriteLoad(write_dsn or self.dsn(connect_timeout=1)).start()
        time.sleep(warmup_s)
        if not load.record.acks:
            load.stop()
            raise HaError(f"drill writer failed before the kill: {load.record.last_error}")
        old_port = self.pg_port(old)
        killed_at = self.kill_node(old)
        # -- HAProxy hook (issue 13): through HAProxy every ack shows HAProxy's port, so "another
        # member" is told by time instead: a connection opened after every process of the old
        # primary is gone (kill_node returns once they are) cannot have reached it.
        all_dead_at = time.monotonic()

        def first_ack() -> float | None:
            return load.record.first_ack_after(all_dead_at, new_connection=True, other_than_port=old_port)

        try:
            self._wait(lambda: first_ack() is not None, 180,
                       "the first acknowledged write on a new connection to the new primary")
            time.sleep(after_s)
        finally:
            record = load.stop()
        rto = first_ack() - killed_at
        new = self.leader()
        lost = writeload.missing(self.dsn(), record.acked_ids)
        log = self.node_dir(old) / "patroni.log"
        log_offset = log.stat().st_size
        rejoin_started = time.monotonic()
        self.start_node(old)
        self._wait(lambda: old in self._streaming(), rejoin_timeout, f"{old} to rejoin as a replica")
        rejoin_s = time.monotonic() - rejoin_started
        with open(log, "rb") as fh:
            fh.seek(log_offset)
            rewound = b"pg_rewind exit code=0" in fh.read()
        self.wait_healthy(timeout=rejoin_timeout)
        return {"rto_s": round(rto, 2), "lost_commits": len(lost), "acked_commits": len(record.acks),
                "failed_attempts": record.failures + record.unknown, "old_primary": old,
                "new_primary": new, "rejoin_s": round(rejoin_s, 1), "pg_rewind_ran": rewound,
                "timings": self.meta["timings"]}

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _wait(predicate, timeout: float, what: str, interval: float = 0.2) -> None:
        """procs.wait_until for the cluster's state: a member not answering yet (OSError, a
        psycopg error, a REST body without the key) counts as not yet; HaError at the deadline."""
        procs.wait_until(predicate, timeout, what, interval,
                         ignore=(OSError, psycopg.Error, ValueError, KeyError), error=HaError)


#: Drill targets: RTO at the drill's timings (ttl 20: the leader lock of a dead primary expires
#: after 20 s) and at production timings (spec RTO 2 minutes). lost_commits must be 0 in both
#: (spec RPO 1 minute; strict synchronous mode: 0).
RTO_TARGET_S = {"drill": 30.0, "production": 60.0}


def timings_named(name: str) -> Timings:
    if name not in TIMINGS:
        raise HaError(f"timings {name!r}: expected one of {', '.join(TIMINGS)}")
    return TIMINGS[name]


class timings_for_run:
    """Context manager of the drill and the chaos runs: use the running cluster at the asked
    timings (switched in the DCS and back after, also on SIGTERM/SIGHUP), or bring one up and
    stop it afterwards. A run killed with SIGKILL leaves the timings changed: `invoke cluster.up`
    sets them back."""

    def __init__(self, timings_name: str, base: Path | None = None):
        self.timings = timings_named(timings_name)
        self.cluster = HaCluster(base, timings=self.timings)
        self.started_here = False
        self.previous: Timings | None = None
        self._handlers: dict = {}

    def __enter__(self) -> HaCluster:
        cluster = self.cluster
        self.started_here = cluster.meta is None or cluster.etcd_pid() is None
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._handlers[sig] = signal.signal(sig, _raise_interrupt)
        if self.started_here:
            cluster.up()
        previous = cluster.dcs_timings()
        if previous != self.timings:
            cluster.set_timings(self.timings)
            self.previous = previous
        return cluster

    def __exit__(self, *exc) -> None:
        try:
            self.cluster.thaw()
            if self.previous is not None:
                try:
                    self.cluster.set_timings(self.previous)
                except HaError:
                    pass
            if self.started_here:
                self.cluster.down()
        finally:
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_drill(timings_name: str = "drill", base: Path | None = None) -> tuple[dict, list[str]]:
    """`invoke cluster.drill`: the drill on the running cluster at the asked timings (or on one
    brought up for it). Returns the result (with "targets_met") and the summary lines, the last
    one the result as one JSON object."""
    with timings_for_run(timings_name, base) as cluster:
        # -- HAProxy hook (issue 13): writes through the read-write port (RTO measured there, the
        # one address the app uses), reads through the read-only port counted during the failover
        proxy = HaProxy(cluster).start()
        write_dsn = psycopg.conninfo.make_conninfo(proxy.dsn("read_write", connect_timeout="1"),
                                                   password=cluster.password())
        with ReadProbe(proxy) as probe:
            result = cluster.drill(write_dsn=write_dsn)
        result.update(ro_errors=probe.errors, ro_reads=probe.reads, via="haproxy")
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
        f"reads through HAProxy's read-only port during the drill: {result['ro_reads']} served, "
        f"{result['ro_errors']} errors",
        f"old primary rejoined as a replica in {result['rejoin_s']} s"
        f" ({'after pg_rewind' if result['pg_rewind_ran'] else 'without pg_rewind'})",
        f"targets {'met' if result['targets_met'] else 'MISSED'}",
        json.dumps(result),
    ]
    return result, lines


def bring_up(timings_name: str = "production", base: Path | None = None, echo=print) -> dict:
    """`invoke cluster.up`: start (or bring back) the cluster; set the DCS timings to the named ones."""
    timings = timings_named(timings_name)
    cluster = HaCluster(base, timings=timings)
    result = cluster.up(echo=echo)
    if cluster.dcs_timings() != timings:
        cluster.set_timings(timings)
        result["timings"] = cluster.meta["timings"]
    return result


def status_lines(status: dict) -> list[str]:
    """`invoke cluster.status`: a table of the members, what is wrong, then one JSON line."""
    lines = []
    if status["members"]:
        head = ("member", "role", "state", "address", "timeline", "lag", "tags", "patroni", "postmaster")
        rows = [(m["name"], m["role"], m["state"], f"{m['host']}:{m['port']}", str(m["timeline"]),
                 "-" if m["lag"] is None else str(m["lag"]),
                 " ".join(f"{k}={v}" for k, v in sorted(m["tags"].items())),
                 str(m["pids"].get("patroni")), str(m["pids"].get("postmaster")))
                for m in status["members"]]
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines += [fmt.format(*head), *(fmt.format(*row) for row in rows)]
    if status["paused"]:
        lines.append("maintenance mode: Patroni is paused (`invoke cluster.resume`)")
    lines.append("healthy" if status["healthy"] else "NOT healthy: " + "; ".join(status["problems"]))
    # -- HAProxy hook (issue 13): the ports the app uses --
    for endpoint, dsn in status["endpoints"].items():
        lines.append(f"{endpoint}: {dsn or 'HAProxy not running (`invoke cluster.up`)'}")
    members = [{k: m[k] for k in ("name", "role", "state", "host", "port", "timeline", "lag", "pids")}
               for m in status["members"]]
    lines.append(json.dumps({"healthy": status["healthy"], "problems": status["problems"],
                             "paused": status["paused"], "members": members, "dsn": status["dsn"],
                             "endpoints": status["endpoints"]}))
    return lines
