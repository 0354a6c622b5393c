"""`invoke load`: the loss-free SQLite -> PostgreSQL migration (issue 3). Orchestration only.

Phases (the data work is SQL: SQLite queries here, PostgreSQL functions in functions/migration_*.sql):
  1. source schema check   the SQLite file's tables/columns against data/sqlite/schema.sql
  2. preflight             SQL over the SQLite file: BLOBs, NUL bytes, invalid UTF-8 (pgloader 3.6
                           silently cuts a value at a NUL, drops the rest of a table at invalid
                           UTF-8); such rows are kept out of pgloader in a working copy and staged
                           as escaped JSON for the quarantine. Files of 8 MB and more: this content
                           scan runs beside steps 3-5 (a process on idle CPU) and the commit waits
                           for its verdict (rows found: roll back, stage again)
  3. staging               pgloader, one command file per table (the spec's batch size each) in two
                           processes, into migration_stage.* (UNLOGGED, all text); exit status never
                           trusted: staged count(*) must equal the source's count(*) per table
  4. mapping               staged text -> typed work tables (rules per column, orphans, duplicates):
                           predictions in two parts on two connections, then the small tables,
                           orphans and duplicates on a third beside step 5; the target is not written
  5. transaction           ONE transaction: quarantine, insert/merge, keys, checksums, sequences,
                           accounting; commit or roll back as a whole
  6. report                rich table per source table + JSON file
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from . import HarnessError
from .inputs import database_name, non_negative_int, sqlite_source, writable_file
from .paths import REPO, state_dir

SQLITE_SCHEMA = REPO / "data" / "sqlite" / "schema.sql"
PGLOADER_TEMPLATE = REPO / "data" / "migration" / "pgloader.load.template"

#: Source tables in dependency order (parents first) with the spec's batch sizes ("Migration Batch
#: Sizes" table); the pgloader batch size of each table's load.
TABLES = ("races", "horses", "users", "api_credentials", "predictions")
BATCH_ROWS = {"races": 1000, "horses": 2000, "predictions": 5000, "users": 500, "api_credentials": 10}
REJECTS = "hrp_preflight_rejects"
#: Source files at least this big get their content scan in the background, beside the load.
SCAN_BESIDE_PGLOADER_BYTES = 8 * 2**20
# pg_advisory_lock key private to the loader: one load at a time per database.
LOAD_LOCK_KEY = int.from_bytes(hashlib.sha256(b"hrp_load").digest()[:8], "big", signed=True)


def sqlite_ident(name: str) -> str:
    """SQLite identifier quoting (the names come from the checked schema, quoted anyway)."""
    return '"' + name.replace('"', '""') + '"'


# -- 1. source schema check ------------------------------------------------------------------

def expected_schema() -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, declared type)] of the spec's SQLite schema."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(SQLITE_SCHEMA.read_text())
        return _schema_of(con)
    finally:
        con.close()


def _schema_of(con: sqlite3.Connection) -> dict[str, list[tuple[str, str]]]:
    tables = [name for (name,) in con.execute(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite\\_%' escape '\\' "
        "order by name")]
    return {t: [(row[1], row[2].upper()) for row in con.execute(f"pragma table_info({sqlite_ident(t)})")]
            for t in tables}


def check_source_schema(con: sqlite3.Connection, source: Path) -> None:
    """Refuse a source whose tables or columns differ from the spec's: nothing is dropped silently."""
    want = expected_schema()
    have = _schema_of(con)
    problems = []
    for table in sorted(set(have) - set(want)):
        problems.append(f"table {table!r} is not in the spec's schema; the mapping does not know it")
    for table in sorted(set(want) - set(have)):
        problems.append(f"table {table!r} is missing")
    for table in sorted(set(want) & set(have)):
        want_cols = {name.lower(): kind for name, kind in want[table]}
        have_cols = {name.lower(): kind for name, kind in have[table]}
        for col in have_cols.keys() - want_cols.keys():
            problems.append(f"column {table}.{col} is not known to the mapping "
                            f"(declared {have_cols[col] or 'without type'})")
        for col in want_cols.keys() - have_cols.keys():
            problems.append(f"expected column {table}.{col} ({want_cols[col]}) is missing")
        for col in want_cols.keys() & have_cols.keys():
            if want_cols[col] != have_cols[col]:
                problems.append(f"column {table}.{col} is declared {have_cols[col]!r}, "
                                f"the spec's schema says {want_cols[col]!r}")
    if problems:
        raise HarnessError(
            f"source schema check failed for {source} (compared with {SQLITE_SCHEMA.relative_to(REPO)}):\n  "
            + "\n  ".join(problems) + "\nnothing was loaded")


# -- 2. preflight ----------------------------------------------------------------------------

def _utf8_ok(value) -> int:
    """SQLite UDF for the drill-down only: SQLite has no UTF-8 validator of its own."""
    if value is None:
        return 1
    try:
        bytes(value).decode("utf-8")
        return 1
    except UnicodeDecodeError:
        return 0


@dataclass
class Preflight:
    source_counts: dict[str, int]
    rejects: dict[str, int]  # table -> rows kept out of pgloader
    load_path: Path  # the file pgloader reads: the source itself, or a working copy
    workdir: Path | None = None
    seconds: float = 0.0

    @property
    def total_rejects(self) -> int:
        return sum(self.rejects.values())


def _escaped(col: str) -> str:
    """SQL: a column value as JSON for source_row; bytes JSON cannot hold become {$hex, $type}."""
    c = "s." + sqlite_ident(col)
    return (f"case when typeof({c}) = 'blob' or (typeof({c}) = 'text' and (instr(cast({c} as blob), x'00') > 0 "
            f"or not hrp_utf8_ok(cast({c} as blob)))) then json_object('$hex', hex({c}), '$type', typeof({c})) "
            f"when typeof({c}) = 'real' then printf('%!.17g', {c}) else cast({c} as text) end")


def preflight(source: Path, workroot: Path, scan: bool = True) -> Preflight:
    """Counts, schema check, and (scan) the rows pgloader cannot carry (SQL queries, no row loops).
    scan=False stops after the fast checks (the loader runs the content scan in the background)."""
    started = time.monotonic()
    if not source.is_file():
        raise HarnessError(f"--sqlite {source}: no such file")
    try:
        con = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        con.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise HarnessError(f"--sqlite {source}: not a readable SQLite database ({exc})") from None
    try:
        encoding = con.execute("pragma encoding").fetchone()[0]
        if encoding != "UTF-8":
            raise HarnessError(f"{source}: database encoding is {encoding}; the loader reads UTF-8 files only "
                               f"(convert with: sqlite3 {source} .dump | sqlite3 -cmd 'pragma encoding=\"UTF-8\"' new.db)")
        check_source_schema(con, source)
        con.create_function("hrp_utf8_ok", 1, _utf8_ok, deterministic=True)
        schema = expected_schema()
        counts = {t: con.execute(f"select count(*) from {sqlite_ident(t)}").fetchone()[0] for t in TABLES}
        if not scan:
            return Preflight(counts, {t: 0 for t in TABLES}, source, None, time.monotonic() - started)
        bad: list[tuple[str, str]] = []  # (table, SQL selecting id, reason)
        for table in TABLES:
            cols = [name for name, _ in schema[table] if name != "id"]
            t = sqlite_ident(table)
            # pass 1: the storage classes of each column. typeof() names sort blob < integer <
            # null < real < text, so min() is 'blob' iff the column holds a BLOB and max() is
            # 'text' iff it holds text
            classes = con.execute("select " + ", ".join(
                f"min(typeof({sqlite_ident(c)})), max(typeof({sqlite_ident(c)}))" for c in cols)
                + f" from {t}").fetchone()
            blob_cols = [c for i, c in enumerate(cols) if classes[2 * i] == "blob"]
            text_cols = [c for i, c in enumerate(cols) if classes[2 * i + 1] == "text"]
            # pass 2, over the columns holding text only: every value joined by newlines (a
            # separator that cannot complete a broken UTF-8 sequence) for one NUL search and one
            # UTF-8 decode. Numbers a column also holds are ASCII; its BLOBs may raise a false
            # alarm, which the drill-down queries (text values only) settle
            has_nul = utf8_bad = False
            if text_cols:
                blobs = con.execute("select " + ", ".join(
                    f"cast(group_concat({sqlite_ident(c)}, x'0a') as blob)" for c in text_cols)
                    + f" from {t}").fetchone()
                for value in blobs:
                    value = bytes(value or b"")
                    has_nul = has_nul or b"\x00" in value
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        utf8_bad = True
            for col in blob_cols:
                bad.append((table, f"select id, '{col}: BLOB value (no BLOB columns in the target)' "
                                   f"from {t} where typeof({sqlite_ident(col)}) = 'blob'"))
            for col in text_cols:
                c = sqlite_ident(col)
                if has_nul:
                    bad.append((table, f"select id, '{col}: NUL byte in text' from {t} "
                                       f"where typeof({c}) = 'text' and instr(cast({c} as blob), x'00') > 0"))
                if utf8_bad:
                    bad.append((table, f"select id, '{col}: invalid UTF-8' from {t} where typeof({c}) = 'text' "
                                       f"and instr(cast({c} as blob), x'00') = 0 and not hrp_utf8_ok(cast({c} as blob))"))
        if not bad:
            return Preflight(counts, {t: 0 for t in TABLES}, source, None, time.monotonic() - started)
        # a working copy without the unloadable rows, plus the table of them (escaped) for pgloader
        workdir = Path(tempfile.mkdtemp(prefix="hrp-load-", dir=workroot))
        work = workdir / "source-without-rejects.sqlite"
        dest = sqlite3.connect(work)
        con.backup(dest)
        dest.close()
    finally:
        con.close()
    wcon = sqlite3.connect(work, isolation_level=None)
    try:
        wcon.create_function("hrp_utf8_ok", 1, _utf8_ok, deterministic=True)
        wcon.execute("begin")
        wcon.execute("create temp table hrp_bad (tbl text, id integer, reason text)")
        for table, select in bad:
            wcon.execute(f"insert into hrp_bad select '{table}', * from ({select})")
        wcon.execute(f"create table {REJECTS} (source_table text, source_id integer, reason text, source_row text)")
        rejects = {}
        for table in TABLES:
            t = sqlite_ident(table)
            cols = [name for name, _ in schema[table]]
            obj = ", ".join(f"'{col}', {_escaped(col)}" for col in cols)
            wcon.execute(
                f"insert into {REJECTS} select '{table}', b.id, b.reason, json_object({obj}) "
                f"from (select id, group_concat(reason, '; ') as reason from hrp_bad where tbl = '{table}' "
                f"group by id) as b join {t} as s on s.id = b.id")
            wcon.execute(f"delete from {t} where id in (select id from hrp_bad where tbl = '{table}')")
            rejects[table] = wcon.execute(
                f"select count(*) from {REJECTS} where source_table = '{table}'").fetchone()[0]
        wcon.execute("commit")
    finally:
        wcon.close()
    return Preflight(counts, rejects, work, workdir, time.monotonic() - started)


# -- 3. staging with pgloader ----------------------------------------------------------------

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


def render_pgloader(source: Path, target_url: str, table: str, batch_rows: int) -> str:
    text = PGLOADER_TEMPLATE.read_text()
    values = {"SOURCE": str(source), "TARGET": target_url, "TABLE": table, "BATCH_ROWS": str(batch_rows)}
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise HarnessError(f"{PGLOADER_TEMPLATE}: unknown template variable left: {text[text.index('{{'):][:30]}")
    return text


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


class BackgroundScan:
    """The preflight's content scan of a big file as a process of its own, at the lowest CPU
    priority in a session of its own (hrp_harness/preflight_scan.py says why): it takes only CPU
    the load leaves idle. result() waits for it."""

    def __init__(self, source: Path, workroot: Path):
        self.source = source
        # a directory of its own for the working copy it may make: stop() removes it whatever
        # became of the process
        self.dir = Path(tempfile.mkdtemp(prefix="hrp-scan-", dir=workroot))
        self.proc: subprocess.Popen | None = None
        self._found: Preflight | None = None

    def start(self) -> None:
        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hrp_harness.preflight_scan", str(self.source), str(self.dir)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True, preexec_fn=_die_with_parent)

    def result(self) -> Preflight:
        if self._found is None:
            self.start()
            out, err = self.proc.communicate()
            if self.proc.returncode != 0:
                raise HarnessError(f"the preflight content scan of {self.source} failed "
                                   f"(exit {self.proc.returncode}): {err.strip()}")
            found = json.loads(out)
            self._found = Preflight(found["source_counts"], found["rejects"], Path(found["load_path"]),
                                    Path(found["workdir"]) if found["workdir"] else None, found["seconds"])
        return self._found

    def stop(self) -> None:
        """Ends the process if it still runs, and removes the working copy it made, if any."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)


def stage(dsn: str, pre: Preflight, logdir: Path, confirm=None) -> Staging:
    """pgloader into migration_stage (truncated first): predictions, and the small tables, side by side;
    then the reconciliation of every table. On a mismatch, `confirm()` (a pending content scan's
    verdict) first: rows it finds raise Restage."""
    started = time.monotonic()
    if shutil.which("pgloader") is None:
        raise HarnessError("pgloader not found: install the Debian package pgloader (./hrp setup does)")
    tables = list(TABLES) + ([REJECTS] if pre.total_rejects else [])
    url, env = pgloader_target(dsn)
    logdir.mkdir(parents=True, exist_ok=True)
    # two pgloader processes side by side: predictions, and the small tables one command file each
    # (pgloader runs several command files in one process: each table keeps its own batch size
    # and the ~0.3 s start is paid once)
    lanes = [[t for t in tables if t != "predictions"], ["predictions"]]
    result = Staging(0.0, {}, logdir)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # one statement: the server drops the old files' buffers in one pass over shared_buffers
        conn.execute(psycopg.sql.SQL("truncate {}").format(psycopg.sql.SQL(", ").join(
            psycopg.sql.Identifier("migration_stage", table) for table in [*TABLES, REJECTS])))
        procs = []
        for lane in lanes:
            loads = []
            for table in lane:
                load = logdir / f"{table}.load"
                load.write_text(render_pgloader(pgloader_source(pre.load_path, logdir), url, table,
                                                BATCH_ROWS.get(table, 500)))
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
                _reconcile(conn, pre, tables, logdir, result)
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


def _die_with_parent() -> None:
    """In the pgloader child before exec: SIGKILL it when the loader dies (prctl PDEATHSIG), so a
    killed load never leaves a pgloader writing into the staging tables of the next one."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def _reconcile(conn, pre: Preflight, tables: list[str], logdir: Path, result: Staging) -> None:
    """Staged rows vs the source's count(*) (less the preflight's rejects), per table."""
    mismatches = []
    for table in tables:
        staged = conn.execute(psycopg.sql.SQL("select count(*) from migration_stage.{}").format(
            psycopg.sql.Identifier(table))).fetchone()[0]
        want = pre.total_rejects if table == REJECTS else pre.source_counts[table] - pre.rejects[table]
        name = table if table == "predictions" else "small-tables"
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


# -- 4. transform, in one transaction --------------------------------------------------------

def _call(conn, function: str, *args):
    """select migration.<function>(args) — function names are constants of this module."""
    query = psycopg.sql.SQL("select migration.{}({})").format(
        psycopg.sql.Identifier(function),
        psycopg.sql.SQL(", ").join(psycopg.sql.Placeholder() * len(args)))
    from decimal import Decimal

    from psycopg.types.numeric import Int8

    args = tuple(Int8(a) if isinstance(a, int) and not isinstance(a, bool)
                 else Decimal(str(a)) if isinstance(a, float) else a for a in args)
    return conn.execute(query, args).fetchone()[0]


def _target_state(conn) -> tuple[bool, bool]:
    """(every spec table empty, a committed load exists)."""
    missing = [t for t in TABLES if conn.execute("select to_regclass(%s)", (f"public.{t}",)).fetchone()[0] is None]
    if missing or conn.execute("select to_regclass('migration.runs')").fetchone()[0] is None:
        raise HarnessError("the target database lacks the schema (missing: "
                           f"{', '.join(missing) or 'migration.runs'}); run `invoke deploy` first")
    empty = all(conn.execute(psycopg.sql.SQL("select not exists (select from public.{})").format(
        psycopg.sql.Identifier(t))).fetchone()[0] for t in TABLES)
    loaded = conn.execute("select exists (select from migration.runs where status = 'committed')").fetchone()[0]
    return empty, loaded


def _map_conn(dsn: str, timezone: str):
    """A connection for the mapping phase: the source time zone declared, no parallel workers
    (the loader runs its own connections side by side on this 2-core budget)."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("select set_config('hrp.source_timezone', %s, false)", (timezone,))
    conn.execute("set jit = off")
    conn.execute("set max_parallel_workers_per_gather = 0")
    return conn


def map_predictions(dsn: str, timezone: str, timers: dict, progress, parts: int = 2) -> None:
    """The predictions work table, mapped in `parts` parts (ranges of the staged table's blocks) on
    as many connections at once: the rules of each row (orphans and duplicates are marked by
    finish_mapping)."""
    from concurrent.futures import ThreadPoolExecutor

    progress(f"map predictions ({parts} connections)")
    began = time.monotonic()
    with _map_conn(dsn, timezone) as conn:
        _call(conn, "map_begin", "predictions")

    def part(number):
        with _map_conn(dsn, timezone) as conn:
            _call(conn, "map_rows", "predictions", number, parts)

    with ThreadPoolExecutor(parts) as pool:
        list(pool.map(part, range(parts)))
    timers["predictions"] += time.monotonic() - began


def finish_mapping(dsn: str, timezone: str, analyze: bool) -> dict:
    """The rest of the mapping, on a connection of its own while the load's transaction starts
    (it reads and writes the work tables only): the small tables' work tables and their
    duplicates, then the orphans and the duplicates of predictions (in that order: a duplicate
    group keeps a row that migrates), and the predictions work table's completion (map_end).
    Returns {"finished": monotonic time, "quarantined_predictions": orphans + duplicates marked,
    "seconds": per table}."""
    seconds = {t: 0.0 for t in TABLES}
    with _map_conn(dsn, timezone) as conn:
        for table in TABLES:
            if table == "predictions":
                continue
            began = time.monotonic()
            # analyzed always: the orphan marking joins the parents' work tables (estimates without
            # statistics make the planner sort both sides for merge joins, a third slower)
            _call(conn, "map_table", table)
            _call(conn, "mark_duplicates", table)
            seconds[table] += time.monotonic() - began
        began = time.monotonic()
        marked = _call(conn, "mark_orphans") + _call(conn, "mark_duplicates", "predictions")
        _call(conn, "map_end", "predictions", analyze)
        seconds["predictions"] += time.monotonic() - began
    return {"finished": time.monotonic(), "quarantined_predictions": marked, "seconds": seconds}


def source_sides(dsn: str, generation: int, mapped=None) -> dict:
    """Per table, the source side of its validation (checksum, counts, reasons, normalisations) from
    the work tables, on a connection of its own: runs while the load's transaction writes the target
    (it reads the work tables only, which that transaction does not write). The migrating rows'
    fingerprints go into `generation` of migration.row_fingerprints on the way (committed here; the
    load's transaction adopts them at its commit; the generation's partition is made before that
    transaction begins, which reads the table and would block its creation). `mapped`: a future of
    finish_mapping(), awaited first. Returns {"generation": ..., "tables": {table: side}}."""
    if mapped is not None:
        mapped.result()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set jit = off")
        conn.execute("set max_parallel_workers_per_gather = 0")
        return {"generation": generation,
                "tables": {table: _call(conn, "source_side", table, generation) for table in TABLES}}


def transform(conn, run_args: dict, progress, timer: dict, sources, mapped=None) -> dict:
    """The target-writing steps (functions/migration_*.sql) in the caller's open transaction.
    `sources`: a future of source_sides(). `mapped`: a future of finish_mapping() (every work
    table complete); the bulk path inserts predictions and builds their keys and indexes meanwhile."""
    results: dict[str, dict] = {}
    run = _call(conn, "begin_run", run_args["mode"], run_args["source"], run_args["sha256"],
                run_args["timezone"], run_args["max_quarantine"])
    # first: the five tables locked against writes until the commit, and checked again as the
    # load's preliminary check saw them (the app may have written since)
    target = _call(conn, "guard_target", run_args["discard_target_changes"])
    conn.execute("set local jit = off")
    # a killed loader's backend notices within a second and rolls the load back
    conn.execute("set local client_connection_check_interval = '1s'")
    conn.execute("set local work_mem = '256MB'")

    steps: dict[str, float] = {}

    def step(label, function, *args, table=None):
        progress(label)
        began = time.monotonic()
        out = _call(conn, function, *args)
        steps[label] = round(time.monotonic() - began, 3)
        if table:
            timer[table] += time.monotonic() - began
        return out

    def wait_mapped() -> int:
        """Orphans and duplicates of predictions marked (0 without `mapped`)."""
        if mapped is None:
            return 0
        progress("map the small tables, orphans and duplicates")
        began = time.monotonic()
        done = mapped.result()
        steps["wait for the work tables"] = round(time.monotonic() - began, 3)
        for table, seconds in done["seconds"].items():
            timer[table] += seconds
        return done["quarantined_predictions"]

    small = [t for t in TABLES if t != "predictions"]
    if run_args["fast_path"]:
        # the two big tables only: the small ones' indexes cost less to maintain than to rebuild
        step("drop keys and indexes of horses, predictions (bulk load)", "drop_keys", ["horses", "predictions"])
        # while the rest of the mapping runs beside: the predictions that pass their own rules go
        # in and get their keys and indexes; those it then quarantines (orphans, duplicates) leave
        # again before the foreign keys
        step("insert predictions", "apply_table", "predictions", "insert", table="predictions")
        # not its UNIQUE constraint yet: duplicates still to be marked are in the table
        step("rebuild primary key and indexes of predictions", "restore_keys", ["predictions"], False,
             table="predictions")
        quarantined = wait_mapped()
        for table in TABLES:
            step(f"quarantine {table}", "sync_quarantine", run, table, table=table)
        for table in small:
            step(f"insert {table}", "apply_table", table, "insert", table=table)
        step("rebuild keys and indexes of horses", "restore_keys", ["horses"], table="horses")
        if quarantined:
            step("remove quarantined predictions", "remove_quarantined", "predictions", table="predictions")
        step("rebuild unique key of predictions, foreign keys", "restore_keys")
    else:
        wait_mapped()  # deletes go children first
        for table in TABLES:
            step(f"quarantine {table}", "sync_quarantine", run, table, table=table)
        for table in reversed(TABLES):
            step(f"delete gone rows of {table}", "apply_table", table, "delete", table=table)
        for table in TABLES:
            step(f"update/insert {table}", "apply_table", table, "upsert", table=table)
    for table in TABLES:
        began = time.monotonic()
        side = psycopg.types.json.Jsonb(sources.result()["tables"][table])
        steps[f"wait for source side of {table}"] = round(time.monotonic() - began, 3)
        results[table] = step(f"validate {table}", "finish_table", run, table, round(timer[table], 3), side,
                              table=table)
    return {"run_id": run, "tables": results, "steps": steps, "target": target,
            "generation": sources.result()["generation"]}


@dataclass(frozen=True)
class LoadOptions:
    """What the user asked of one load, checked (load() checks every field before anything)."""

    source: Path
    dsn: str
    dbname: str
    incremental: bool = False
    max_quarantine: int | None = None
    source_timezone: str = "UTC"
    discard_target_changes: bool = False
    final: bool = False


class CommittedError(HarnessError):
    """A step after the commit failed: the load IS committed (exit status 3, README)."""

    exit_status = 3


class CommitUnknownError(HarnessError):
    """The connection broke during COMMIT: whether the load committed is unknown (exit status 4)."""

    exit_status = 4


class ReportFile:
    """The run's JSON report. A temporary file in the report's directory is made before the load
    starts, so a path that cannot be written fails before anything changes; the report is written
    into it in full before the commit, and renamed to its name after the commit (a rename within a
    directory)."""

    def __init__(self, path: str | Path | None, dbname: str):
        if path is None:
            self.directory = REPO / "reports"
            self.fixed = None
            # a database name may hold any character but a quote: the file name keeps the plain ones
            self.stem = "migration-" + (re.sub(r"[^A-Za-z0-9_.-]", "_", dbname).lstrip(".") or "db")
            try:
                self.directory.mkdir(exist_ok=True)
            except OSError as exc:
                raise HarnessError(f"cannot create the report directory {self.directory}: {exc.strerror}; "
                                   "name a report file with --report") from None
        else:
            self.fixed = writable_file(path, "--report")
            self.directory = self.fixed.parent
        try:
            handle, name = tempfile.mkstemp(prefix=".hrp-report-", suffix=".tmp", dir=self.directory)
        except OSError as exc:
            where = path if path is not None else self.directory
            raise HarnessError(f"--report {where}: cannot write in {self.directory} "
                               f"({exc.strerror})") from None
        os.close(handle)
        self.temp: Path | None = Path(name)

    def final(self, run_id: int) -> Path:
        return self.fixed or self.directory / f"{self.stem}-run-{run_id}.json"

    def write(self, report: dict) -> None:
        try:
            with self.temp.open("w") as out:
                out.write(json.dumps(report, indent=2, default=str) + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise HarnessError(f"writing the report {self.temp} failed ({exc.strerror}); "
                               "the load was not committed") from None

    def publish(self, run_id: int) -> Path:
        final = self.final(run_id)
        os.replace(self.temp, final)
        self.temp = None
        return final

    def discard(self) -> None:
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None


def _db_error(exc: psycopg.Error) -> str:
    """A server error as one message: its primary text, where, and its hint."""
    diag = exc.diag
    text = (diag.message_primary if diag else None) or str(exc).strip()
    # where: for a server-side failure; the loader's own refusals (RAISE, P0001) say it in the text
    if diag and diag.context and diag.sqlstate != "P0001":
        text += f" ({diag.context.strip().splitlines()[0]})"
    if diag and diag.message_hint:
        text += f"\nhint: {diag.message_hint}"
    return text


def _guard(conn, discard_target_changes: bool) -> str:
    """The target checked before any work (migration.guard_target in a short transaction of its
    own: the refusal comes before pgloader runs); the load's transaction checks again under lock."""
    try:
        with conn.transaction():
            return _call(conn, "guard_target", discard_target_changes)
    except psycopg.Error as exc:
        raise HarnessError(_db_error(exc)) from None


def _attempt(conn, options: LoadOptions, report: dict, report_file: ReportFile, progress, pre: Preflight,
             logdir: Path, analyze: bool, empty: bool, digest, verdict, restaged: bool, started: float) -> None:
    """Stage (from `pre`), map, and the one transaction, committed. `verdict`: the pending content
    scan's, awaited before the commit (Restage, the transaction rolled back, when it finds rows),
    and on a staging count mismatch. Everything that can fail runs before the commit, the report
    file included; a failure after it raises CommittedError."""
    from concurrent.futures import ThreadPoolExecutor

    dsn, timezone = options.dsn, options.source_timezone
    timers = {t: 0.0 for t in TABLES}
    progress("pgloader into migration_stage")
    t0 = time.monotonic()
    try:
        staged = stage(dsn, pre, logdir, confirm=verdict)
        report["staging"] = {"seconds": round(staged.seconds, 3), "tables": staged.per_table,
                             "logs": str(logdir)}
        map_predictions(dsn, timezone, timers, progress)
    except psycopg.Error as exc:
        raise HarnessError(f"mapping the staged rows failed (the target is unchanged): "
                           f"{str(exc).strip()}") from None
    report["sha256"] = digest.result()
    run_args = {"mode": report["mode"], "source": report["source"], "sha256": report["sha256"],
                "timezone": timezone, "max_quarantine": options.max_quarantine,
                "discard_target_changes": options.discard_target_changes,
                "fast_path": empty and report["mode"] == "full"}
    report["path"] = "bulk (empty target)" if run_args["fast_path"] else "merge"
    generation = _call(conn, "new_fingerprint_generation")
    conn.autocommit = False
    # beside the transaction: the rest of the mapping (small tables, orphans, duplicates), then
    # the source sides of the validation
    side_pool = ThreadPoolExecutor(2)
    committed = None
    try:
        mapped = side_pool.submit(finish_mapping, dsn, timezone, analyze)
        sources = side_pool.submit(source_sides, dsn, generation, mapped)
        began = time.monotonic()
        out = transform(conn, run_args, progress, timers, sources, mapped)
        run = out["run_id"]
        report["run_id"] = run
        report["target"] = out["target"]
        report["tables"] = out["tables"]
        report["transaction_steps"] = out["steps"]
        # mapping and transaction overlap (the rest of the mapping runs beside the transaction)
        report["mapping_seconds"] = round(mapped.result()["finished"] - t0 - staged.seconds, 3)
        report["transaction_seconds"] = round(time.monotonic() - began, 3)
        report["transform_seconds"] = round(time.monotonic() - t0 - staged.seconds, 3)
        if verdict is not None:
            progress("wait for the preflight scan")
            found = verdict()
        else:
            found = pre
        report["preflight"] = {"seconds": round(found.seconds, 3), "rejected_rows": found.rejects,
                               "restaged": restaged}
        report["seconds"] = round(time.monotonic() - started, 3)
        report["quarantined_total"] = sum(t["quarantined_rows"] for t in out["tables"].values())
        report["status"] = "committed"
        report["final"] = options.final
        report["staging"].pop("logs", None)  # removed with the commit
        report["report_file"] = str(report_file.final(run))
        progress("commit")
        _call(conn, "finish_run", run, psycopg.types.json.Jsonb(report), out["generation"], options.final)
        report_file.write(report)
        try:
            conn.commit()
        except psycopg.OperationalError as exc:
            raise CommitUnknownError(
                f"the connection broke during the COMMIT of load run {run}: whether it committed is "
                f"unknown ({str(exc).strip()}); look: select status from migration.runs where run_id = {run}"
            ) from None
        committed = run
    except psycopg.Error as exc:
        conn.rollback()
        raise HarnessError(f"load rolled back, the target is unchanged: {_db_error(exc)}") from None
    except BaseException:  # Restage, a failed content scan, an interrupt: nothing is committed
        if committed is None:
            conn.rollback()
        raise
    finally:
        side_pool.shutdown(wait=True)
        if not conn.closed:
            conn.autocommit = True  # the next attempt, or the failure's bookkeeping
    try:
        _call(conn, "clear_stage")  # the copies of the source rows go
        report_file.publish(committed)
    except (OSError, psycopg.Error) as exc:
        raise CommittedError(f"load run {committed} IS committed, but a step after the commit failed: "
                             f"{str(exc).strip()}") from None


def _prune_workdirs(workroot: Path, keep: int = 5) -> None:
    """Work directories of earlier failed loads (pgloader logs, working copies): the newest kept."""
    old = sorted((d for d in workroot.iterdir() if d.is_dir() and d.name.startswith("hrp-")),
                 key=lambda d: d.stat().st_mtime, reverse=True)
    for stale in old[keep:]:
        shutil.rmtree(stale, ignore_errors=True)


def load(sqlite_path: str | Path, dsn: str, incremental: bool = False, max_quarantine: int | str | None = None,
         source_timezone: str = "UTC", report_path: str | Path | None = None, echo=print,
         quiet: bool = False, discard_target_changes: bool = False, final: bool = False) -> dict:
    """The whole load; returns the report (also written as JSON). Raises HarnessError on failure
    (CommittedError when the load committed and a later step failed). Every input is checked first."""
    source = sqlite_source(sqlite_path)
    limit = non_negative_int(max_quarantine, "--max-quarantine")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise HarnessError(f"--dsn is not a valid PostgreSQL URL or conninfo: {exc}") from None
    dbname = database_name(params.get("dbname") or "")
    options = LoadOptions(source, dsn, dbname, incremental, limit, source_timezone, discard_target_changes, final)
    report_file = ReportFile(report_path, dbname)
    try:
        return _load(options, report_file, quiet)
    finally:
        report_file.discard()  # nothing once published


def _load(options: LoadOptions, report_file: ReportFile, quiet: bool) -> dict:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # a terminal gets its own width; logs and pipes a wide table instead of rich's 80 columns
    console = Console(stderr=True, quiet=quiet, width=None if os.isatty(2) else 160)
    source, source_timezone = options.source, options.source_timezone
    started = time.monotonic()
    # pgloader's command files and logs, the preflight's working copies: kept when a load fails
    # (the error names them; the newest few are kept), removed after a committed one
    workroot = state_dir() / "loads"
    workroot.mkdir(parents=True, exist_ok=True, mode=0o700)
    _prune_workdirs(workroot)
    report: dict = {"source": str(source), "mode": "incremental" if options.incremental else "full",
                    "source_timezone": source_timezone, "max_quarantine": options.max_quarantine}
    try:
        conn = psycopg.connect(options.dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the target database: {str(exc).strip()}") from None
    pre = None
    scan = None
    digest = None
    committed = False
    # the spinner only on a terminal (in a log or a pipe it would leave stray blank lines)
    with conn, Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("preflight", total=None)

        def progress(label):
            bar.update(task, description=label)

        # one load at a time per database (session lock, released when the connection closes)
        if not conn.execute("select pg_try_advisory_lock(%s)", (LOAD_LOCK_KEY,)).fetchone()[0]:
            raise HarnessError("another load is running against this database")
        try:
            conn.execute("select now() at time zone %s", (source_timezone,))
        except psycopg.Error:
            raise HarnessError(f"--source-timezone {source_timezone!r} is not a time zone PostgreSQL "
                               "knows (see pg_timezone_names)") from None
        empty, loaded = _target_state(conn)
        if options.incremental and not loaded:
            raise HarnessError("--incremental needs a target loaded before by `invoke load` (no committed run "
                               "in migration.runs); run a full load first")
        # never over what the app wrote: a live database, rows no load wrote, or changes since the
        # last load stop it here (and again, under lock, inside its transaction)
        report["target"] = _guard(conn, options.discard_target_changes)
        # statistics of the predictions work table only serve the merge path's joins with the target
        analyze = options.incremental or not empty
        try:
            progress("source schema check")
            # small files: the full preflight first (milliseconds, and no second pgloader pass when
            # it finds rows); big files: the fast checks now, the content scan in the background
            big = source.stat().st_size >= SCAN_BESIDE_PGLOADER_BYTES
            quick = preflight(source, workroot, scan=not big)
            pre = quick
            # big files: the content scan (BLOBs, NULs, UTF-8) of the original file runs in the
            # background from the start, on CPU the load leaves idle; the commit waits for its
            # verdict. If it finds rows pgloader cannot carry, the transaction rolls back and
            # staging starts again from a working copy without them
            from concurrent.futures import ThreadPoolExecutor

            if quick.load_path == source and big:
                scan = BackgroundScan(source, workroot)
                scan.start()

            def verdict():
                found = scan.result()
                if found.total_rejects:
                    raise Restage(found)
                return found

            hasher = ThreadPoolExecutor(1)
            # the source's digest is computed beside pgloader (hashlib releases the GIL)
            digest = hasher.submit(file_sha256, source)
            logdir = Path(tempfile.mkdtemp(prefix="hrp-pgloader-", dir=workroot))
            try:
                try:
                    _attempt(conn, options, report, report_file, progress, quick, logdir, analyze, empty,
                             digest, verdict if scan else None, restaged=False, started=started)
                    pre = scan.result() if scan else quick
                except Restage as again:
                    pre = again.pre
                    progress("pgloader into migration_stage (without the preflight's rejects)")
                    _attempt(conn, options, report, report_file, progress, pre, logdir / "restage", analyze,
                             empty, digest, None, restaged=True, started=started)
                committed = True
            finally:
                hasher.shutdown(wait=True)
            shutil.rmtree(logdir, ignore_errors=True)  # kept only when a load fails
        except HarnessError as exc:
            if isinstance(exc, CommittedError):
                committed = True
                raise
            if digest is not None and digest.done() and digest.exception() is None:
                report.setdefault("sha256", digest.result())
            _record_failure(conn, report, str(exc))
            raise
        finally:
            if not committed:
                _clear_after_failure(conn)
            if pre is not None and pre.workdir is not None:
                shutil.rmtree(pre.workdir, ignore_errors=True)
            if scan is not None:
                scan.stop()
    report["seconds"] = round(time.monotonic() - started, 3)
    if not quiet:
        try:
            print_report(report, console)
        except OSError as exc:
            raise CommittedError(f"load run {report['run_id']} IS committed (report "
                                 f"{report['report_file']}), but printing its table failed: {exc}") from None
    return report


def _clear_after_failure(conn) -> None:
    """A failed load leaves no copy of the source in the staging and work tables (personal data,
    secrets), nor fingerprints no run adopted; best effort (the connection may be gone)."""
    try:
        if not conn.closed:
            conn.rollback()
            conn.autocommit = True
            _call(conn, "clear_stage")
    except psycopg.Error:
        pass


def _record_failure(conn, report: dict, message: str) -> None:
    """A failed load leaves a 'failed' run row (outside the rolled-back transaction), if it can."""
    try:
        conn.autocommit = True
        conn.execute(
            "insert into migration.runs (mode, source_path, source_sha256, source_timezone, max_quarantine,"
            " finished_at, status, report) values (%s, %s, %s, %s, %s, clock_timestamp(), 'failed', %s)",
            (report["mode"], report["source"], report.get("sha256"), report["source_timezone"],
             report.get("max_quarantine"), psycopg.types.json.Jsonb({**report, "error": message})))
    except psycopg.Error:
        pass


def print_report(report: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"migration run {report['run_id']} ({report['mode']}, {report['path']}) — "
                        f"{report['seconds']} s", title_justify="left")
    for col in ("table", "source", "migrated", "quarantined", "quarantined by reason", "normalised by rule",
                "ins/upd/del", "checksum", "s"):
        table.add_column(col, overflow="fold")
    for name, row in report["tables"].items():
        reasons = "\n".join(f"{n} {r}" for r, n in sorted(row["quarantined_by_reason"].items())) or "-"
        norms = "\n".join(f"{n} {r}" for r, n in sorted(row["normalised_by_rule"].items())) or "-"
        table.add_row(name, str(row["source_rows"]), str(row["migrated_rows"]),
                      f"[bold red]{row['quarantined_rows']}[/]" if row["quarantined_rows"] else "0",
                      reasons, norms, f"{row['inserted_rows']}/{row['updated_rows']}/{row['deleted_rows']}",
                      "match" if row["checksum_match"] else "[bold red]MISMATCH[/]", str(row["seconds"]))
    console.print(table)
    if report["quarantined_total"]:
        console.print(f"[bold red]{report['quarantined_total']} source rows are in migration.quarantine[/] "
                      f"(select source_table, source_id, reason, source_row from migration.quarantine)")
    console.print(f"report: {report['report_file']}")


def mark_live(dsn: str) -> int:
    """`invoke cutover`: the database goes live after its last committed load (migration.cutover);
    every later load is refused. Returns that load's run id."""
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the target database: {str(exc).strip()}") from None
    with conn:
        if conn.execute("select to_regclass('migration.cutover')").fetchone()[0] is None:
            raise HarnessError("the target database lacks migration.cutover; run `invoke deploy` first")
        try:
            return _call(conn, "mark_live")
        except psycopg.Error as exc:
            raise HarnessError(_db_error(exc)) from None
