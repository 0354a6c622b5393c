"""HAProxy 2.6 in front of the Patroni cluster (conf/haproxy.cfg.template): a read-write port that
always reaches the leader, a read-only port balanced over the replicas, a reports port on standby2,
all judged by Patroni's REST health checks (/primary, /replica).

One controller shape, as every server the harness runs (procs.Controller): configure, start as the
server user, wait until ready with the one deadline helper (the read-write port reaches the leader),
stop by pid. Its files live in
STATE/ha/haproxy/: haproxy.cfg, ports.json (picked free once, then kept), haproxy.pid, haproxy.log.
ha.py calls it from small hooks marked "HAProxy hook (issue 13)": up, down, status, the drill.
"""
from __future__ import annotations

import json
import subprocess
import threading
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import make_conninfo

from hrp_harness import HarnessError
from hrp_harness.platform import procs
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.platform.conf import render
from hrp_harness.platform.paths import CONF

if TYPE_CHECKING:
    from hrp_harness.ha.patroni import HaCluster

#: The member reports and backups read from (the spec's "Standby Server 2": reporting, backups, DR).
REPORTS_MEMBER = "standby2"
ENDPOINTS = ("read_write", "read_only", "reports")
MAX_CONN = 2000


class HaProxy(procs.Controller):
    poll_interval = 0.3

    def __init__(self, cluster: HaCluster):
        base = cluster.base / "haproxy"
        self.cfg = base / "haproxy.cfg"
        super().__init__("HAProxy", ["haproxy", "-db", "-f", str(self.cfg)], base / "haproxy.pid",
                         base / "haproxy.log", cwd=base)
        self.cluster = cluster
        self.base = base
        self.ports_file = self.base / "ports.json"
        self.ports = json.loads(self.ports_file.read_text()) if self.ports_file.exists() else None
        self._last = ""

    # -- configuration -----------------------------------------------------------------------
    def render(self) -> str:
        """haproxy.cfg for the cluster's members (ports from cluster.json)."""
        from hrp_harness.ha.patroni import NODES

        def servers(names, backup_of=None):
            lines = []
            for name in names:
                node = self.cluster.meta["nodes"][name]
                backup = " backup" if backup_of is not None and name != backup_of else ""
                lines.append(f"    server {name} 127.0.0.1:{node['pg_port']} check port {node['rest_port']}{backup}")
            return "\n".join(lines)

        reports_order = [REPORTS_MEMBER, *(n for n in NODES if n != REPORTS_MEMBER)]
        return render(CONF / "haproxy.cfg.template", {
            "RW_PORT": str(self.ports["read_write"]), "RO_PORT": str(self.ports["read_only"]),
            "REPORTS_PORT": str(self.ports["reports"]), "MAX_CONN": str(MAX_CONN),
            "RW_SERVERS": servers(NODES), "RO_SERVERS": servers(NODES),
            "REPORTS_SERVERS": servers(reports_order, backup_of=REPORTS_MEMBER)})

    def configure(self) -> bool:
        """Pick the three ports once, render haproxy.cfg, check it with `haproxy -c`; whether
        the file changed."""
        procs.server_dir(self.base)
        if self.ports is None:
            taken = {p for n in self.cluster.meta["nodes"].values() for p in n.values()}
            taken |= set(self.cluster.meta["etcd"].values())
            ports: list[int] = []
            while len(ports) < len(ENDPOINTS):
                port = procs.free_port()
                if port not in ports and port not in taken:
                    ports.append(port)
            self.ports = dict(zip(ENDPOINTS, ports))
            self.ports_file.write_text(json.dumps(self.ports) + "\n")
        text = self.render()
        changed = not self.cfg.exists() or self.cfg.read_text() != text
        self.cfg.write_text(text)
        procs.give_tree(self.base)
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise HarnessError(f"haproxy -c refuses {self.cfg}:\n{check.stdout}{check.stderr}")
        return changed

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> HaProxy:
        """Configure, start (foreground process as the server user, by pid; restarted when its
        configuration changed), wait until the read-write port reaches the leader."""
        changed = self.configure()
        if self.pid is None:
            taken = [p for p in self.ports.values() if procs.port_in_use(p)]
            if taken:
                raise HarnessError(f"HAProxy cannot start: 127.0.0.1 port(s) {taken} taken by another program "
                                   f"(free them, or delete {self.ports_file} to pick new ones)")
        elif changed:
            self.reload()
        return super().start(timeout)

    def ready(self) -> bool:
        """The read-write port reaches the leader."""
        self._last = ""
        try:
            with psycopg.connect(self.dsn("read_write"), password=self.cluster.password(),
                                 connect_timeout=2) as conn:
                if conn.execute("select not pg_is_in_recovery()").fetchone()[0]:
                    return True
                self._last = "the read-write port reached a replica"
        except psycopg.Error as exc:
            self._last = str(exc).strip().splitlines()[0]
        return False

    def timeout_message(self, timeout: float) -> str:
        return (f"HAProxy's read-write port 127.0.0.1:{self.ports['read_write']} did not reach the "
                f"leader within {timeout:.0f} s ({self._last}); see {self.logfile}")

    def reload(self) -> None:
        """HAProxy 2.6 without master-worker mode reloads by a new process (-sf): simpler and as
        quick to restart it (clients reconnect, as after any failover)."""
        procs.stop_pid(self.pid, timeout=10)
        self.launch()

    def stop(self, timeout: float = 10) -> None:
        super().stop(timeout)

    # -- connection strings ------------------------------------------------------------------
    def dsn(self, endpoint: str, user: str = "postgres", dbname: str = "postgres", **params: str) -> str:
        """Conninfo through one of the ports, TLS verified like a direct connection; no password."""
        tls = {k: v for k, v in self.cluster._client_tls().items() if v}
        return make_conninfo(host="127.0.0.1", port=self.ports[endpoint], user=user, dbname=dbname,
                             **{**tls, **params})

    def endpoints(self) -> dict[str, str | None]:
        """The application's strings (cluster.status): read-write as hrp_app, read-only and reports
        as hrp_readonly, all to hrp_database; None while HAProxy is not running."""
        if self.ports is None or self.pid is None:
            return {e: None for e in ENDPOINTS}
        return {"read_write": self.dsn("read_write", "hrp_app", DATABASE),
                "read_only": self.dsn("read_only", "hrp_readonly", DATABASE),
                "reports": self.dsn("reports", "hrp_readonly", DATABASE)}


class ReadProbe:
    """Reads through the read-only port while a drill runs: a new connection per read (as a short
    web request), one every `interval`; counts reads, errors, and which members served them."""

    def __init__(self, proxy: HaProxy, interval: float = 0.05):
        self.dsn = proxy.dsn("read_only", connect_timeout="2")
        self.password = proxy.cluster.password()
        self.interval = interval
        self.reads = 0
        self.errors = 0
        self.served_by: dict[int, int] = {}
        self.last_error: str | None = None
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                with psycopg.connect(self.dsn, password=self.password, autocommit=True) as conn:
                    port = conn.execute("select inet_server_port()").fetchone()[0]
                self.reads += 1
                self.served_by[port] = self.served_by.get(port, 0) + 1
            except psycopg.Error as exc:
                self.errors += 1
                self.last_error = str(exc).strip().splitlines()[0]
            self._halt.wait(self.interval)

    def __enter__(self) -> ReadProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join(10)

