"""pgBackRest: the encrypted repository, its stanza, backups, expiry, restore and point-in-time recovery.

pgBackRest does the work; this module renders conf/pgbackrest.conf.template, keeps the passphrase
out of the repository, and runs pgbackrest as the server user.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hrp_harness import HarnessError
from hrp_harness.platform.cluster import Cluster
from hrp_harness.platform.conf import fragment_values, render, write_private
from hrp_harness.platform.paths import CONF, state_dir
from hrp_harness.platform.procs import free_port, wait_until
from hrp_harness.platform.server_user import chown_for_server, make_server_dir, run_as_server

STANZA = "hrp"
PASSPHRASE_ENV = "HRP_BACKUP_PASSPHRASE"
BACKUP_TYPES = ("full", "diff", "incr")
#: The function comparing a database's tables (functions/maintenance_table_fingerprints.sql).
FINGERPRINTS = sql.Identifier("hrp_maintenance", "table_fingerprints")


class BackupError(HarnessError):
    """A pgBackRest command failed; the message carries the command and its stderr."""


@dataclass(frozen=True)
class PgInstance:
    """One PostgreSQL instance pgBackRest may back up: data dir, port and unix socket dir."""

    data_dir: Path
    port: int
    socket_dir: Path


def passphrase_file() -> Path:
    return state_dir() / "secrets" / "backup-passphrase"


def passphrase() -> str:
    """The repository passphrase: $HRP_BACKUP_PASSPHRASE, else the 0600 secrets file in the state
    dir, created with a random passphrase on first use. Never written into the git tree."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    path = passphrase_file()
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, secrets.token_urlsafe(48) + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise BackupError(f"{path} has mode {mode:o}; it holds the backup passphrase and must be 0600")
    return path.read_text().strip()


class Repository:
    """A pgBackRest repository with one stanza, all under `base` (STATE/backup by default):

    base/pgbackrest.conf   rendered template (no secret)      base/conf.d/cipher.conf  passphrase, 0600
    base/repo              the encrypted repository           base/log, base/lock, base/spool
    """

    def __init__(self, instances: list[PgInstance], base: Path | None = None, stanza: str = STANZA):
        if not instances:
            raise BackupError("a stanza needs at least one PostgreSQL instance")
        self.instances = list(instances)
        self.base = Path(base or state_dir() / "backup").resolve()
        self.stanza = stanza

    # -- configuration -------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.base / "pgbackrest.conf"

    def write_config(self) -> None:
        """Render the template and the passphrase fragment; give the tree to the server user."""
        make_server_dir(self.base, 0o750)
        for sub in ("repo", "log", "lock", "spool", "conf.d"):
            make_server_dir(self.base / sub, 0o750)
        pg_hosts = []
        for index, pg in enumerate(self.instances, 1):
            pg_hosts += [f"pg{index}-path={pg.data_dir}", f"pg{index}-port={pg.port}",
                         f"pg{index}-socket-path={pg.socket_dir}", f"pg{index}-user=postgres"]
        self.config.write_text(render(CONF / "pgbackrest.conf.template", {
            "REPO_PATH": self.base / "repo", "LOG_PATH": self.base / "log", "LOCK_PATH": self.base / "lock",
            "SPOOL_PATH": self.base / "spool", "STANZA": self.stanza, "PG_HOSTS": "\n".join(pg_hosts)}))
        cipher = self.base / "conf.d" / "cipher.conf"
        secret = passphrase()
        known = cipher.exists() and f"repo1-cipher-pass={secret}\n" in cipher.read_text()
        if self.exists() and not known:
            # A changed passphrase must open the existing repository, or archiving would stop.
            try:
                self.info(env={"PGBACKREST_REPO1_CIPHER_PASS": secret})
            except BackupError:
                raise BackupError(
                    f"the backup passphrase (${PASSPHRASE_ENV} or {passphrase_file()}) does not open the "
                    f"existing repository {self.base / 'repo'}; {cipher} left as it was. Set "
                    f"the repository's passphrase, or move {self.base} aside to start a new one"
                ) from None
        write_private(cipher, f"# written by hrp_harness.ha.backup from ${PASSPHRASE_ENV} or "
                              f"{passphrase_file()}\n[global]\nrepo1-cipher-pass={secret}\n", server=True)
        chown_for_server(self.config)

    def exists(self) -> bool:
        """Whether the stanza was created in the repository."""
        return (self.base / "repo" / "backup" / self.stanza / "backup.info").exists()

    def archive_settings(self, data_dir: Path) -> dict[str, str]:
        """archive_mode/archive_command (conf/replication-primary.conf) rendered for one instance."""
        settings = fragment_values(CONF / "replication-primary.conf", self.placeholders(data_dir))
        return {k: settings[k] for k in ("archive_mode", "archive_command")}

    def placeholders(self, data_dir: Path) -> dict[str, str]:
        return {"PGBACKREST_CONFIG_PATH": str(self.base), "STANZA": self.stanza,
                "PGDATA": str(Path(data_dir).resolve())}

    # -- commands ------------------------------------------------------------------------------
    def run(self, command: str, *options: str, env: dict | None = None, check: bool = True,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """pgbackrest COMMAND as the server user; prefix wraps it (the retention test runs expire
        under `faketime +31 days`); env adds variables (PGBACKREST_* override the config)."""
        env = {**os.environ, **env} if env else None
        proc = run_as_server([*prefix, "pgbackrest", f"--config-path={self.base}", f"--stanza={self.stanza}",
                              *options, command], capture_output=True, text=True, errors="replace", env=env)
        if check and proc.returncode != 0:
            output = proc.stderr.strip() or proc.stdout.strip()
            hint = ""
            if any(sign in output for sign in ("CryptoError", "cipher", "unable to load info file")):
                hint = (f" (wrong passphrase? the repository's is in ${PASSPHRASE_ENV} or "
                        f"{passphrase_file()})")
            raise BackupError(f"pgbackrest {command} {' '.join(options)} failed "
                              f"(exit {proc.returncode}): {output}{hint}")
        return proc

    def stanza_create(self) -> None:
        self.run("stanza-create")

    def check(self) -> None:
        """pgbackrest check: forces a WAL switch and waits until that segment is archived."""
        self.run("check")

    def backup(self, backup_type: str = "full") -> dict:
        """Take a backup (full, diff or incr); returns its entry from `info`."""
        if backup_type not in BACKUP_TYPES:
            raise BackupError(f"backup type {backup_type!r}: expected one of {', '.join(BACKUP_TYPES)}")
        self.run("backup", f"--type={backup_type}")
        return self.info()["backup"][-1]

    def expire(self, *options: str) -> None:
        """Apply the configured retention (pgbackrest expire; backup runs it too)."""
        self.run("expire", *options)

    def info(self, env: dict | None = None) -> dict:
        """The stanza's entry of `pgbackrest info --output=json`."""
        proc = self.run("info", "--output=json", env=env)
        stanzas = json.loads(proc.stdout, strict=False)  # error texts may quote raw bytes
        if not stanzas:
            raise BackupError(f"stanza {self.stanza} not found in {self.base / 'repo'}")
        status = stanzas[0]["status"]
        if status["code"] not in (0, 2, 6):  # ok, no valid backups yet, backup in progress
            raise BackupError(f"repository {self.base / 'repo'}, stanza {self.stanza}: "
                              f"{status['message']} (wrong passphrase, or no stanza-create yet?)")
        return stanzas[0]

    def restore(self, to: Path, target_time: str | None = None, set_label: str | None = None,
                env: dict | None = None) -> Path:
        """Restore into the empty (or missing) directory `to`.

        With target_time ('YYYY-MM-DD HH:MM:SS[+TZ]') it is a point-in-time recovery: pgBackRest writes
        recovery.signal and restore_command / recovery_target_time / recovery_target_action=promote
        into postgresql.auto.conf (PostgreSQL 15 refuses recovery.conf). Without it, recovery
        replays the archive to its end. archive_mode is set off in the copy ([global:restore]).
        """
        to = Path(to).resolve()
        check_restore_target(to)
        make_server_dir(to, 0o700)
        options = [f"--pg1-path={to}"]
        if target_time:
            options += ["--type=time", f"--target={target_time}", "--target-action=promote"]
        if set_label:
            options.append(f"--set={set_label}")
        self.run("restore", *options, env=env)
        return to


# -- the embedded cluster (hrp_harness.platform.cluster.Cluster) ----------------------------------------
def cluster_repository(cluster: Cluster, base: Path | None = None) -> Repository:
    """The stanza of one Cluster (the embedded one by default: STATE/pg, repository STATE/backup)."""
    return Repository([PgInstance(cluster.datadir, cluster.port, cluster.socket_dir)], base=base)


def enable_archiving(cluster: Cluster, repo: Repository) -> None:
    """Render the repository config, turn WAL archiving to it on (ALTER SYSTEM: these name this
    instance's paths; restart if archive_mode changed) and create the stanza if missing."""
    repo.write_config()
    cluster.alter_system(repo.archive_settings(cluster.datadir))
    if not repo.exists():
        repo.stanza_create()


def embedded(base: Path | None = None, need_running: bool = True) -> tuple[Cluster, Repository]:
    """The embedded cluster and its repository (STATE/backup). It is never started here: a task
    that needs the server (need_running) fails on a stopped one, saying so; the others use the
    repository alone. On a running cluster archiving into the repository is switched on once."""
    from hrp_harness.platform.deploy import embedded_cluster

    cluster = embedded_cluster()
    if not cluster.initialized:
        raise BackupError(f"no embedded cluster in {cluster.base}: `invoke deploy` first")
    repo = cluster_repository(cluster, base)
    if cluster.running:
        enable_archiving(cluster, repo)
    elif need_running:
        raise BackupError(f"the embedded cluster ({cluster.datadir}) is stopped: `invoke start` first "
                          "(this task does not start it for you)")
    else:
        repo.write_config()
    return cluster, repo


# -- restored copies -----------------------------------------------------------------------------
def check_restore_target(path: Path) -> None:
    """A restore goes into a new or empty directory; anything else is refused before anything is
    touched (no directory created, no owner or mode changed)."""
    if path.exists() and not path.is_dir():
        raise BackupError(f"restore target {path} exists and is not a directory; pick a new directory")
    if path.is_dir() and any(path.iterdir()):
        raise BackupError(f"restore target {path} is not empty; pick a new directory")


def start_copy(base: Path, port: int | None = None, timeout: float = 120) -> Cluster:
    """Start a restored data directory base/data as a Cluster on a free port with our conf/
    (instance.conf rewritten: port, sockets in base/run, hba); wait until recovery has finished.
    synchronous_standby_names is cleared: a copy of a Patroni primary would wait for standby1.
    pg_cron is not loaded: a copy runs no maintenance job (one would write its findings into the
    copy, which backup.verify compares with the source)."""
    from hrp_harness.ops.maintenance import preload_without_cron

    copy = Cluster(Path(base), port=port or free_port(), shared_buffers_mb=128,
                   extra_conf={"synchronous_standby_names": "''",
                               "shared_preload_libraries": preload_without_cron()})
    make_server_dir(copy.socket_dir, 0o700)
    copy.install_conf()
    try:
        copy.start(timeout=int(timeout))
    except HarnessError as exc:
        raise BackupError(f"the restored copy did not start: {_fatal_line(copy)}\n{exc}\n--- "
                          f"{_server_log_tail(copy)}") from None

    def recovered() -> bool:
        try:
            with psycopg.connect(copy.dsn(), connect_timeout=5) as conn:
                return not conn.execute("select pg_is_in_recovery()").fetchone()[0]
        except psycopg.OperationalError:
            if not copy.running:  # recovery ended the server: say why now, not at the deadline
                raise BackupError(f"the restored copy in {copy.datadir} stopped during recovery: "
                                  f"{_fatal_line(copy)}\n--- {_server_log_tail(copy)}") from None
            return False
    wait_until(recovered, timeout, "the restored copy's recovery", error=BackupError,
               message=f"restored copy in {copy.datadir} still in recovery after {timeout:.0f} s; "
                       f"see {copy.logfile}")
    return copy


def _fatal_line(cluster: Cluster) -> str:
    """The server's own last FATAL or PANIC line (DATADIR/log, else the pg_ctl log)."""
    logs = sorted((cluster.datadir / "log").glob("*.log"), key=lambda p: p.stat().st_mtime)
    for log in [*reversed(logs), cluster.logfile]:
        try:
            found = [line for line in log.read_text(errors="replace").splitlines()
                     if "FATAL:" in line or "PANIC:" in line]
        except OSError:
            continue
        if found:
            return found[-1].strip()
    return "no FATAL line in the server log"


def _server_log_tail(cluster: Cluster, lines: int = 8) -> str:
    """The end of the newest log in DATADIR/log (logging_collector), where recovery errors go."""
    logs = sorted((cluster.datadir / "log").glob("*.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return "no server log"
    text = logs[-1].read_text(errors="replace").splitlines()[-lines:]
    hint = ""
    if any("recovery ended before configured recovery target" in line for line in text):
        hint = ("\nthe archive ends before the target time: on a running source, `pgbackrest check`"
                " (done by `invoke restore`) archives the current WAL; otherwise pick an earlier time")
    return f"last lines of {logs[-1]} ---\n" + "\n".join(text) + hint


def restore_copy(repo: Repository, to: Path, target_time: str | None = None, start: bool = False,
                 source_dsn: str | None = None, echo=print) -> Cluster | None:
    """`invoke restore`: when the source runs, commit an empty transaction there and archive the
    current WAL, so that a target in the last minutes is covered (recovery to a time stops at
    the first commit after it; an idle source has none), then restore into TO/data and
    optionally start the copy."""
    base = Path(to).resolve()
    check_restore_target(base)  # before anything is touched
    try:
        if not source_dsn:
            raise BackupError("the source is not running")
        with psycopg.connect(source_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute("select pg_current_xact_id()")  # a commit record, no data change
        repo.check()
    except (BackupError, psycopg.OperationalError) as exc:
        echo(f"note: could not archive the current WAL ({str(exc).splitlines()[0]}); restoring from "
             "what the archive holds")
    make_server_dir(base, 0o700)
    repo.restore(base / "data", target_time=target_time)
    echo(f"restored into {base / 'data'}" + (f" (recovery target {target_time})" if target_time else ""))
    return start_copy(base) if start else None


def fingerprints(dsn: str) -> dict[tuple[str, str], tuple[int, str]]:
    """(schema, table) -> (row count, md5 of the rows) for every table of the dsn's database
    (hrp_maintenance.table_fingerprints(), functions/maintenance_table_fingerprints.sql)."""
    with psycopg.connect(dsn) as conn:
        function = FINGERPRINTS.as_string(conn) + "()"
        if conn.execute("select to_regprocedure(%s)", (function,)).fetchone()[0] is None:
            raise BackupError(f"database {conn.info.dbname!r} has no {function}: "
                              "run `invoke deploy` (or `invoke apply`) on it first")
        rows = conn.execute(sql.SQL("select table_schema, table_name, row_count, rows_md5 "
                                    "from {}()").format(FINGERPRINTS)).fetchall()
    return {(schema, table): (count, digest) for schema, table, count, digest in rows}


def compare(source: dict, copy: dict) -> list[str]:
    """Differences between two fingerprint maps, one line per table; empty when identical."""
    lines = []
    for key in sorted(set(source) | set(copy)):
        name = ".".join(key)
        if key not in copy:
            lines.append(f"{name}: missing from the restored copy")
        elif key not in source:
            lines.append(f"{name}: only in the restored copy")
        elif source[key] != copy[key]:
            lines.append(f"{name}: source {source[key][0]} rows md5 {source[key][1]}, "
                         f"copy {copy[key][0]} rows md5 {copy[key][1]}")
    return lines


def verify(repo: Repository, source_dsn: str, databases: list[str], scratch: Path | None = None,
           keep: bool = False) -> dict:
    """The spec's weekly recovery test as one call: make the source's last commits reach the
    archive (pgbackrest check), restore the latest backup plus the archive into a scratch
    directory, start it, compare per-table row counts and checksums of each database with the
    source, stop and delete the copy. Raises BackupError listing every differing table.

    The source should be quiet while it runs: a commit after the WAL switch is not in the copy."""
    scratch = make_server_dir(Path(scratch or tempfile.mkdtemp(prefix="hrp-verify-",
                                                               dir=repo.base.parent)), 0o700)
    started = time.monotonic()
    repo.check()
    backups = repo.info()["backup"]
    if not backups:
        raise BackupError(f"no backup in {repo.base / 'repo'} to verify yet: run `invoke backup "
                          "--type full` first")
    latest = backups[-1]["label"]
    repo.restore(scratch / "data")
    copy = start_copy(scratch)
    try:
        report = {"backup": latest, "databases": {}, "differences": []}
        for dbname in databases:
            source = fingerprints(make_conninfo(source_dsn, dbname=dbname))
            restored = fingerprints(copy.dsn(dbname))
            report["databases"][dbname] = {"tables": len(source),
                                           "rows": sum(count for count, _ in source.values())}
            report["differences"] += [f"{dbname}: {line}" for line in compare(source, restored)]
    finally:
        if keep:
            copy.stop()
        else:
            copy.destroy()
    report["verify_s"] = round(time.monotonic() - started, 1)
    if report["differences"]:
        raise BackupError("restore verification failed, the restored copy differs:\n  "
                          + "\n  ".join(report["differences"]))
    return report
