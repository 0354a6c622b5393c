"""A local PostgreSQL 15 instance: initdb, conf/ installation, start, stop, connection strings.

Used for the embedded default cluster (`invoke deploy`), for the throwaway clusters of the tests and
as the building block of the HA and backup tooling. Server processes run as the server user
(server_user.py); the data directory, sockets and logs live under one base directory.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hrp_harness import HarnessError
from hrp_harness.platform import tls
from hrp_harness.platform.conf import render, write_private
from hrp_harness.platform.paths import CONF, pgbin
from hrp_harness.platform.procs import Controller, free_port, port_in_use, read_pid, stop_pid
from hrp_harness.platform.sizing import Host, sized_values
from hrp_harness.platform.server_user import (
    chown_for_server,
    current_os_user,
    make_server_dir,
    run_as_server,
    server_user,
)

#: conf/ fragments every cluster the project runs gets, in this order (one concern each).
DEFAULT_FRAGMENTS = ("base", "logging", "audit", "tls", "tuning")

SUPERUSER = "postgres"
#: The spec's database: the one the application roles may reach over TCP (pg_hba.conf), the one
#: deploy creates and applies to.
DATABASE = "hrp_database"


def max_connections() -> int:
    """max_connections as conf/base.conf sets it (work_mem is sized per connection)."""
    found = re.search(r"^max_connections\s*=\s*(\d+)", (CONF / "base.conf").read_text(), re.M)
    if not found:
        raise HarnessError(f"{CONF / 'base.conf'} sets no max_connections")
    return int(found.group(1))


def pg_ctl(datadir: Path, action: str, *options: str) -> list[str]:
    """pg_ctl ACTION on a data directory, to run as the server user (server_user.run_as_server, or
    printed with server_user.as_server_user for a human to run)."""
    return [pgbin("pg_ctl"), action, "--pgdata", str(datadir), *options]


#: A client network with a shorter prefix (a /7 holds 33 million IPv4 addresses) needs the override.
WIDEST_PREFIX = 8
WIDE_OVERRIDE = "HRP_ALLOW_WIDE_CLIENT_NETWORKS"


def client_networks_from_env(default: tuple[str, ...] = ("127.0.0.1/32",)) -> tuple[str, ...]:
    """HRP_CLIENT_NETWORKS (space-separated CIDR networks) for the embedded cluster's pg_hba."""
    value = os.environ.get("HRP_CLIENT_NETWORKS", "").split()
    return tuple(value) or default


def checked_networks(networks: tuple[str, ...], allow_wide: bool | None = None) -> str:
    """The networks, space-separated: valid CIDR networks that together do not cover a whole address
    family ("everyone", however it is split: 0.0.0.0/1 and 128.0.0.0/1 are 0.0.0.0/0), none wider
    than /8 unless HRP_ALLOW_WIDE_CLIENT_NETWORKS=1 (or allow_wide) says so."""
    if allow_wide is None:
        allow_wide = os.environ.get(WIDE_OVERRIDE, "") == "1"
    parsed = []
    for network in networks:
        try:
            parsed.append(ipaddress.ip_network(network, strict=True))
        except ValueError as exc:
            raise HarnessError(f"client network {network!r} is not a CIDR network: {exc}") from None
    for family in (4, 6):
        union = list(ipaddress.collapse_addresses(n for n in parsed if n.version == family))
        if any(n.prefixlen == 0 for n in union):
            raise HarnessError(f"client networks {' '.join(map(str, networks))!r} together cover every "
                               f"IPv{family} address: they would let the whole internet try to log in; "
                               "list the networks your clients are on")
    wide = [str(n) for n in parsed if n.prefixlen < WIDEST_PREFIX]
    if wide and not allow_wide:
        raise HarnessError(f"client network(s) {' '.join(wide)} are wider than /{WIDEST_PREFIX}; list the "
                           f"networks your clients are on, or set {WIDE_OVERRIDE}=1 if you mean it")
    return " ".join(networks)


@dataclass
class Cluster(Controller):
    """One PostgreSQL instance under `base`: base/data (PGDATA), base/run (sockets), base/server.log.

    port None picks a free loopback port at init; it is then kept in conf.d/instance.conf, so
    Cluster(base) finds it again later. Its controller (procs.Controller's shape) is pg_ctl: start
    waits until the server accepts connections (pg_ctl --wait, its own deadline), stop goes by data
    directory.
    """

    name = "PostgreSQL"

    base: Path
    port: int | None = None
    shared_buffers_mb: int | None = None  # None: sized from host RAM in the spec's ratios
    client_networks: tuple[str, ...] = ("127.0.0.1/32",)
    fragments: tuple[str, ...] = DEFAULT_FRAGMENTS
    extra_conf: dict[str, str] = field(default_factory=dict)
    host: Host | None = None  # None: this machine (sizing.py)

    def __post_init__(self) -> None:
        self.base = Path(self.base).resolve()
        if self.port is None and self.instance_conf.exists():
            found = re.search(r"^port = (\d+)", self.instance_conf.read_text(), re.M)
            self.port = int(found.group(1)) if found else None

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    @property
    def pidfile(self) -> Path:
        return self.datadir / "postmaster.pid"

    @property
    def tls_dir(self) -> Path:
        return self.base / "tls"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients verify the server with (None: real cert without a CA)."""
        ca = self.tls_dir / "ca.crt"
        return ca if ca.exists() else None

    @property
    def instance_conf(self) -> Path:
        return self.datadir / "conf.d" / "instance.conf"

    @property
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    # -- lifecycle ---------------------------------------------------------------------------

    def init(self) -> Cluster:
        """initdb (UTF8, data checksums, superuser postgres) and install conf/. Once only."""
        if self.initialized:
            raise HarnessError(f"{self.datadir} is already a PostgreSQL data directory")
        make_server_dir(self.base, 0o700)
        make_server_dir(self.socket_dir, 0o700)
        if self.port is None:
            self.port = free_port()
        done = run_as_server(
            [
                pgbin("initdb"),
                "--pgdata", str(self.datadir),
                "--username", SUPERUSER,
                "--encoding", "UTF8",
                "--locale", "C.UTF-8",
                "--data-checksums",
                "--auth-local", "peer",
                "--auth-host", "scram-sha-256",
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise HarnessError(f"initdb of {self.datadir} failed:\n{done.stderr.strip()}")
        self.install_conf()
        return self

    def conf_values(self, tls_files: tls.TlsFiles | None = None) -> dict[str, str]:
        if tls_files is None:
            tls_files = tls.TlsFiles(self.tls_dir / "server.crt", self.tls_dir / "server.key",
                                     self.tls_dir / "ca.crt", None)
        return {
            "PORT": str(self.port),
            "LISTEN_ADDRESSES": "127.0.0.1",
            "SOCKET_DIR": str(self.socket_dir),
            "LOG_DIRECTORY": "log",
            # memory, cores, WAL: sizing.py's rules for this host (or self.host)
            **sized_values(self.host or Host.this_machine(), max_connections(), self.shared_buffers_mb),
            "CLIENT_NETWORKS": checked_networks(self.client_networks),
            "SERVER_OS_USER": server_user(),
            "ADMIN_OS_USER": current_os_user(),
            "DATABASE": DATABASE,
            **tls_files.conf_values(),
        }

    def install_conf(self) -> None:
        """Copy conf/ fragments into DATADIR/conf.d, render instance.conf, pg_hba.conf, pg_ident.conf.

        Idempotent: re-running replaces the installed copies with the repository's versions.
        A running server needs `reload` (or a restart for preload libraries) afterwards.
        """
        if self.port is None:
            raise HarnessError(f"{self.base}: no port known; initialise the cluster first")
        confd = self.datadir / "conf.d"
        confd.mkdir(exist_ok=True)
        chown_for_server(confd)
        values = self.conf_values(tls.install(self.tls_dir))
        files: dict[Path, str] = {}
        for name in self.fragments:
            src = CONF / f"{name}.conf"
            if not src.exists():
                raise HarnessError(f"conf fragment {src} does not exist")
            files[confd / src.name] = src.read_text()
        for old in confd.glob("*.conf"):
            if old not in files and old.name != "instance.conf":
                old.unlink()
        instance = render(CONF / "instance.conf.template", values)
        instance += "".join(f"{key} = {value}\n" for key, value in self.extra_conf.items())
        files[confd / "instance.conf"] = instance
        files[self.datadir / "pg_hba.conf"] = render(CONF / "pg_hba.conf.template", values)
        files[self.datadir / "pg_ident.conf"] = render(CONF / "pg_ident.conf.template", values)
        for path, text in files.items():
            write_private(path, text, server=True)
        main = self.datadir / "postgresql.conf"
        if "include_dir = 'conf.d'" not in main.read_text():
            with main.open("a") as conf:
                conf.write("\n# HRP: every project setting lives in conf.d/ (from the repo's conf/).\n")
                conf.write("include_dir = 'conf.d'\n")

    def start(self, timeout: float = 60) -> Cluster:
        """pg_ctl start --wait: pg_ctl waits until the server accepts connections, within timeout."""
        if not self.initialized:
            raise HarnessError(f"{self.datadir} is not initialised")
        if self.running:
            return self
        if port_in_use(self.port):
            raise HarnessError(
                f"port {self.port} on 127.0.0.1 is taken by another program; the cluster in "
                f"{self.base} cannot start (edit port in {self.instance_conf} or free the port)"
            )
        if not self.logfile.exists():
            self.logfile.touch()
            chown_for_server(self.logfile)
        done = run_as_server(self.pg_ctl("start", "--log", str(self.logfile), "--wait",
                                         "--timeout", str(int(timeout))),
                             capture_output=True, text=True)
        if done.returncode != 0:
            raise HarnessError(
                f"PostgreSQL in {self.datadir} did not start:\n{done.stdout}{done.stderr}"
                f"\n--- last lines of {self.logfile} ---\n{self.log_tail(20)}"
            )
        return self

    def stop(self, timeout: float = 60, mode: str = "fast") -> None:
        """Stop by data directory (never by process name)."""
        if not self.initialized or not self.running:
            return
        done = run_as_server(self.pg_ctl("stop", "--mode", mode, "--wait", "--timeout", str(int(timeout))),
                             capture_output=True, text=True)
        if done.returncode != 0:
            raise HarnessError(f"could not stop PostgreSQL in {self.datadir}:\n{done.stderr}")

    def pg_ctl(self, action: str, *options: str) -> list[str]:
        return pg_ctl(self.datadir, action, *options)

    def reload(self) -> None:
        run_as_server(self.pg_ctl("reload"), capture_output=True, check=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def alter_system(self, settings: dict[str, str]) -> None:
        """Persist settings of this instance only in postgresql.auto.conf (ALTER SYSTEM, so
        install_conf leaves them alone), reload, and restart when one of them needs it.
        Used for the pgBackRest archive settings (hrp_harness.ha.backup.enable_archiving)."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            for name, value in settings.items():
                conn.execute(sql.SQL("alter system set {} = {}").format(
                    sql.Identifier(name), sql.Literal(value)))
            conn.execute("select pg_reload_conf()")
            time.sleep(0.2)  # let the postmaster re-read the files before asking
            pending = conn.execute(
                "select count(*) from pg_settings where pending_restart").fetchone()[0]
        if pending:
            self.restart()

    def destroy(self) -> None:
        """Stop the server, and the servers beside it under base (PgBouncer: base/*/*.pid), by
        pid; delete everything under base (throwaway clusters only)."""
        try:
            for pidfile in self.base.glob("*/*.pid"):
                if pidfile.parent != self.datadir:  # postmaster.pid: pg_ctl below
                    stop_pid(read_pid(pidfile), timeout=10)
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    @property
    def running(self) -> bool:
        if not self.initialized:
            return False
        done = run_as_server(self.pg_ctl("status"), capture_output=True)
        return done.returncode == 0

    @property
    def pid(self) -> int | None:
        """postmaster.pid's first line (as written, alive or not)."""
        try:
            return int(self.pidfile.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    # -- connections -------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """Superuser conninfo over the unix socket (peer authentication through pg_ident)."""
        return make_conninfo(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname)

    def tcp_dsn(self, dbname: str, user: str, password: str | None = None, **params: str) -> str:
        """Conninfo over TCP; TLS with the server's certificate verified (verify-full against the
        cluster's CA) unless params say otherwise (e.g. sslmode="disable" to test the refusal)."""
        if self.ca_file is not None:
            params.setdefault("sslmode", "verify-full")
            if params["sslmode"] != "disable":
                params.setdefault("sslrootcert", str(self.ca_file))
        return make_conninfo(host="127.0.0.1", port=self.port, user=user, dbname=dbname,
                             password=password, **params)
