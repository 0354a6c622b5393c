"""PgBouncer 1.18 in front of a cluster: the application's way in (conf/pgbouncer.ini.template).

One controller shape, as every server the harness runs (procs.Controller): configure, start (as the
server user, by pid), wait until ready with the one deadline helper, stop by pid. Its files live in
CLUSTER_BASE/pgbouncer/: pgbouncer.ini (port kept there), userlist.txt (0600: the login roles' SCRAM
verifiers, copied from pg_authid by `sync_userlist`, which every deploy and start runs, so it stays
in step with the passwords deploy sets), pgbouncer.pid, pgbouncer.log, pgbouncer.out (its output).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from hrp_harness import HarnessError
from hrp_harness.platform import procs
from hrp_harness.platform.cluster import DATABASE, Cluster
from hrp_harness.platform.conf import render, write_private
from hrp_harness.platform.paths import CONF
from hrp_harness.platform.server_user import chown_for_server

#: The login roles PgBouncer serves (roles/roles.sql); the superuser goes to PostgreSQL directly.
ROLES = ("hrp_app", "hrp_readonly", "hrp_backup")
#: The transaction-pooled entry of the application database (the session-pooled one keeps its name).
TX_SUFFIX = "_tx"
#: Server connections: 60 session + 20 transaction = 80 of the cluster's max_connections 100, so
#: that the superuser, replication, backups and monitoring keep room.
SESSION_POOL_SIZE = 60
TX_POOL_SIZE = 20
MAX_CLIENT_CONN = 1000
#: open files PgBouncer may hold (clients + server connections + its own), above its expected use
FILE_LIMIT = 4096


@dataclass
class PgBouncer(procs.Controller):
    cluster: Cluster
    port: int | None = None

    name = "PgBouncer"
    poll_interval = 0.05

    def __post_init__(self) -> None:
        if self.port is None and self.ini.exists():
            found = re.search(r"^listen_port = (\d+)", self.ini.read_text(), re.M)
            self.port = int(found.group(1)) if found else None

    # -- layout ------------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        return self.cluster.base / "pgbouncer"

    @property
    def ini(self) -> Path:
        return self.base / "pgbouncer.ini"

    @property
    def userlist(self) -> Path:
        return self.base / "userlist.txt"

    @property
    def pidfile(self) -> Path:
        return self.base / "pgbouncer.pid"

    @property
    def logfile(self) -> Path:
        return self.base / "pgbouncer.log"

    @property
    def outfile(self) -> Path:
        return self.base / "pgbouncer.out"

    @property
    def cwd(self) -> Path:
        return self.base

    @property
    def argv(self) -> list[str]:
        # runuser's PAM session sets a soft limit of 1024 open files; PgBouncer needs one per client
        # and server connection (it logs its "max expected fd use")
        return ["prlimit", f"--nofile={FILE_LIMIT}", "pgbouncer", str(self.ini)]

    env = None

    @property
    def configured(self) -> bool:
        return self.ini.exists()

    # -- configuration -----------------------------------------------------------------------
    def configure(self) -> None:
        """Render pgbouncer.ini (a free port picked the first time) and the userlist."""
        procs.server_dir(self.base)
        if self.port is None:
            self.port = procs.free_port()
        tls_dir = self.cluster.tls_dir
        values = {
            "PORT": str(self.port), "PG_PORT": str(self.cluster.port), "DATABASE": DATABASE,
            "SESSION_POOL_SIZE": str(SESSION_POOL_SIZE), "TX_POOL_SIZE": str(TX_POOL_SIZE),
            "MAX_CLIENT_CONN": str(MAX_CLIENT_CONN), "AUTH_FILE": str(self.userlist),
            "LOG_FILE": str(self.logfile), "SOCKET_DIR": str(self.cluster.socket_dir),
            "TLS_CERT": str(tls_dir / "server.crt"), "TLS_KEY": str(tls_dir / "server.key"),
            "TLS_CA": str(tls_dir / "ca.crt"),
        }
        write_private(self.ini, render(CONF / "pgbouncer.ini.template", values), server=True)
        self.sync_userlist()

    def sync_userlist(self) -> None:
        """Copy the login roles' SCRAM verifiers from pg_authid into the userlist (0600, server
        user's); reload a running PgBouncer (it re-reads the file only on reload)."""
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as conn:
            rows = conn.execute("select rolname, rolpassword from pg_authid where rolname = any(%s)"
                                " and rolcanlogin order by rolname", [list(ROLES)]).fetchall()
        lines = []
        for role, verifier in rows:
            if verifier and verifier.startswith("SCRAM-SHA-256$"):
                lines.append(f'"{role}" "{verifier}"\n')
        text = "".join(lines)
        if not self.userlist.exists() or self.userlist.read_text() != text:
            write_private(self.userlist, text, server=True)
            if self.running:
                self.reload()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> PgBouncer:
        """Configure, start as the server user, wait until it accepts connections."""
        if not self.cluster.running:
            raise HarnessError(f"PgBouncer needs its cluster running ({self.cluster.datadir})")
        self.configure()
        if self.running:
            return self
        if procs.port_in_use(self.port):
            raise HarnessError(f"PgBouncer's port {self.port} on 127.0.0.1 is taken by another program "
                               f"(free it, or edit listen_port in {self.ini})")
        if not self.logfile.exists():
            self.logfile.touch()
            chown_for_server(self.logfile)
        return super().start(timeout)

    def ready(self) -> bool:
        """PgBouncer listens on its port."""
        return procs.port_in_use(self.port)

    def timeout_message(self, timeout: float) -> str:
        return (f"PgBouncer did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s; see "
                f"{self.logfile}:\n{self.log_tail()}")

    def reload(self) -> None:
        """SIGHUP: re-read pgbouncer.ini and the userlist, keeping client connections."""
        import signal

        if self.pid is not None:
            os.kill(self.pid, signal.SIGHUP)

    def stop(self, timeout: float = 10) -> None:
        """Stop by pid: SIGTERM (PgBouncer 1.18: immediate shutdown, clients disconnected), SIGKILL
        after 10 s."""
        super().stop(timeout)

    # -- connection strings ------------------------------------------------------------------
    def dsn(self, role: str = "hrp_app", transaction_pooling: bool = False, **params: str) -> str:
        """TCP conninfo through PgBouncer, TLS verified against the cluster's CA; no password."""
        dbname = DATABASE + (TX_SUFFIX if transaction_pooling else "")
        params.setdefault("sslmode", "verify-full")
        params.setdefault("sslrootcert", str(self.cluster.tls_dir / "ca.crt"))
        return make_conninfo(host="127.0.0.1", port=self.port, user=role, dbname=dbname, **params)

