"""Phase 3 of a load: staging with pgloader. One pgloader command file per source table (the spec's
batch size of the target table it feeds), in two processes side by side (the big table, and the
others), into hrp_migration_stage.<source table> (UNLOGGED, all text, made by hrp_migration.prepare_stage).
pgloader's exit status is never trusted: the staged count(*) must equal the source's count(*) (less
the preflight's rejects) per table."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from hrp_harness import HarnessError
from hrp_harness.platform.conf import render
from hrp_harness.platform.inputs import database_name
from hrp_harness.platform.paths import REPO
from hrp_harness.migration.preflight import Preflight, _die_with_parent
from hrp_harness.migration.source import REJECTS

#: The schema of the all-text staging tables (schema/0010_migration.sql, renamed by schema/0031).
STAGE_SCHEMA = "hrp_migration_stage"
PGLOADER_TEMPLATE = REPO / "data" / "migration" / "pgloader.load.template"
#: The spec's "Migration Batch Sizes", by target table; a source table no target takes: 1,000.
BATCH_ROWS = {"races": 1000, "horses": 2000, "predictions": 5000, "users": 500, "api_credentials": 10}
#: What pgloader 3.6's command language takes unquoted, in names and file names.
PLAIN = re.compile(r"[A-Za-z0-9_./-]+")


def pgloader_target(dsn: str) -> tuple[str, dict[str, str]]:
    """pgloader's target URL and environment. pgloader's command language has no quoting for user
    and host names and does not decode URL escapes, but it reads PGHOST, PGPORT, PGUSER and
    PGPASSWORD like libpq: those go through the environment, whatever they hold. The database name
    must be in the URL: in single quotes unless plain (any name inputs.database_name accepts)."""
    params = conninfo_to_dict(dsn)
    dbname = database_name(params.get("dbname") or "")
    if not PLAIN.fullmatch(dbname):
        dbname = f"'{dbname}'"
    env = dict(os.environ)
    for variable in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE"):
        env.pop(variable, None)
    host = params.get("host") or "localhost"
    env["PGHOST"] = host
    env["PGPORT"] = params.get("port") or "5432"
    env["PGUSER"] = params.get("user") or os.environ.get("PGUSER") or "postgres"
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]
    query = ""
    if not host.startswith("/"):
        # pgloader knows disable/allow/prefer/require; with require it verifies the server's
        # certificate chain against OpenSSL's CA file, which SSL_CERT_FILE points at sslrootcert
        mode = params.get("sslmode", "prefer")
        query = "?sslmode=" + ("require" if mode in ("require", "verify-ca", "verify-full") else
                               mode if mode in ("disable", "allow", "prefer") else "prefer")
        if params.get("sslrootcert"):
            env["SSL_CERT_FILE"] = params["sslrootcert"]
    return f"postgresql:///{dbname}{query}", env


def pgloader_source(source: Path, workdir: Path) -> Path:
    """The path pgloader reads the SQLite file by: the file's own when its command language takes it
    unquoted, else a symbolic link under a plain name in the work directory (pgloader 3.6 has no
    quoting for file names: a space or an apostrophe would make it parse another path)."""
    if PLAIN.fullmatch(str(source)):
        return source
    link = workdir / "source.sqlite"
    if not (link.is_symlink() and link.resolve() == source.resolve()):
        link.unlink(missing_ok=True)
        link.symlink_to(source.resolve())
    if not PLAIN.fullmatch(str(link)):
        raise HarnessError(f"pgloader cannot read its work directory {workdir} by name: move the state "
                           "directory (HRP_STATE_DIR) to a path of letters, digits, '_', '.', '-', '/'")
    return link


def _like(pattern: str, name: str) -> bool:
    """SQLite's LIKE of a plain name ('_' is any one character, ASCII letters in any case), as
    pgloader's `including only table names like` applies it."""
    return re.fullmatch("".join("." if ch == "_" else re.escape(ch) for ch in pattern), name,
                        re.IGNORECASE | re.DOTALL) is not None


def render_pgloader(source: Path, target_url: str, table: str, columns: list[tuple[str, str]], batch_rows: int,
                    others: list[str] = ()) -> str:
    """One command file: the tables LIKE `table` of `source` (one table's name, or '%' for all), every
    column of `columns` ((table, column) pairs) cast to text as it is. `others`: the source's other
    tables (those LIKE '<table>' would also take are excluded)."""
    excluded = [t for t in others if t != table and _like(table, t)] if table != "%" else []
    if any(_like(t, table) for t in excluded):
        raise HarnessError(f"pgloader cannot tell source tables {table} and {', '.join(excluded)} apart "
                           "(its LIKE takes '_' for any character): rename one in a copy of the file")
    casts = ",\n     ".join(f"column {t}.{col} to text drop typemod drop default using float-to-string"
                            for t, col in columns)
    values = {"SOURCE": str(source), "TARGET": target_url, "TABLE": table, "BATCH_ROWS": str(batch_rows),
              "CASTS": casts,
              "EXCLUDING": ("excluding table names like " + ", ".join(f"'{t}'" for t in excluded)
                            if excluded else "")}
    return render(PGLOADER_TEMPLATE, values)


@dataclass
class Staging:
    seconds: float
    per_table: dict[str, dict] = field(default_factory=dict)
    logdir: Path | None = None


class Restage(Exception):
    """The content scan, run beside the load, found rows pgloader cannot carry: stage again from
    the working copy without them (the transaction, if begun, rolled back)."""

    def __init__(self, pre: Preflight):
        super().__init__("restage")
        self.pre = pre


def stage(dsn: str, pre: Preflight, tables: dict[str, list[str]], big: str, logdir: Path,
          batch_rows: dict[str, int], confirm=None) -> Staging:
    """pgloader into hrp_migration_stage (re-created empty for these tables first): the big table, and
    the others, side by side; then the reconciliation of every table. `tables`: source table ->
    columns; `batch_rows`: source table -> pgloader batch size. On a mismatch, `confirm()` (a
    pending content scan's verdict) first: rows it finds raise Restage."""
    started = time.monotonic()
    if shutil.which("pgloader") is None:
        raise HarnessError("pgloader not found: install the Debian package pgloader (./hrp setup does)")
    if pre.total_rejects:
        tables = {**tables, REJECTS: ["source_table", "source_id", "reason", "source_row"]}
    url, env = pgloader_target(dsn)
    logdir.mkdir(parents=True, exist_ok=True)
    source = pgloader_source(pre.load_path, logdir)
    # two pgloader processes side by side: the big table, and the others one command file each
    # (pgloader runs several command files in one process: each table keeps its own batch size
    # and the ~0.3 s start is paid once)
    lanes = [[t for t in tables if t != big], [big]]
    result = Staging(0.0, {}, logdir)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select hrp_migration.prepare_stage()")
        procs = []
        for lane in lanes:
            loads = []
            for table in lane:
                load = logdir / f"{table}.load"
                load.write_text(render_pgloader(source, url, table, [(table, c) for c in tables[table]],
                                                batch_rows.get(table, 1000), list(tables)))
                loads.append(str(load))
            name = lane[0] if len(lane) == 1 else "small-tables"
            # --summary is rewritten by each command file: it ends up naming the lane's last table
            argv = ["pgloader", "--summary", str(logdir / f"{name}.summary.csv"),
                    "--logfile", str(logdir / f"{name}.pgloader.log"), *loads]
            with (logdir / f"{name}.out").open("w") as out:
                # its exit status means nothing (0 even on errors): the counts decide
                procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              preexec_fn=_die_with_parent))
        try:
            for proc in procs:
                proc.wait(timeout=3600)
            try:
                _reconcile(conn, pre, list(tables), big, logdir, result)
            except HarnessError:
                if confirm is not None:
                    confirm()  # rows the pending content scan finds explain a mismatch: Restage
                raise
        except BaseException:
            for proc in procs:
                proc.kill()
                proc.wait()
            raise
    result.seconds = time.monotonic() - started
    return result


def _reconcile(conn, pre: Preflight, tables: list[str], big: str, logdir: Path, result: Staging) -> None:
    """Staged rows vs the source's count(*) (less the preflight's rejects), per table."""
    mismatches = []
    for table in tables:
        staged = conn.execute(sql.SQL("select count(*) from {}").format(
            sql.Identifier(STAGE_SCHEMA, table))).fetchone()[0]
        want = pre.total_rejects if table == REJECTS else pre.source_counts[table] - pre.rejects[table]
        name = table if table == big else "small-tables"
        summary = _summary(logdir / f"{name}.summary.csv", table)
        result.per_table[table] = {"staged": staged, "expected": want, **summary}
        if staged != want:
            mismatches.append(
                f"{table}: staged {staged} rows, source has {want}"
                f" (pgloader summary: read {summary.get('read')}, imported {summary.get('imported')}, "
                f"errors {summary.get('errors')}; log {logdir / (name + '.pgloader.log')}, "
                f"{logdir / (name + '.out')})")
    if mismatches:
        raise HarnessError("staging does not reconcile with the source (pgloader's exit status is not "
                           "trusted; the target is unchanged):\n  " + "\n  ".join(mismatches))


def _summary(path: Path, table: str) -> dict:
    """The table's line of a pgloader --summary CSV: name;read;imported;errors;bytes;time."""
    try:
        with path.open() as fh:
            for row in csv.reader(fh, delimiter=";"):
                if row and row[0] == table:
                    return {"read": int(row[1]), "imported": int(row[2]), "errors": int(row[3]),
                            "pgloader_time": row[5] if len(row) > 5 else None}
    except (FileNotFoundError, ValueError, IndexError):
        pass
    return {}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
