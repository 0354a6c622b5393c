"""`invoke load`: the loss-free SQLite -> PostgreSQL migration, one module per phase (as
pgBackRest's cmdBackup reads as its steps). Orchestration only: the data work is SQL (SQLite
queries; PostgreSQL functions in functions/migration_*.sql).

  0. inputs        every option checked before anything is created or changed (inputs.py)
  1. source        the file's tables and columns; the spec's shape, or a mapping file (source.py);
                   the mapping resolved against the source in the target (mapping.resolve)
  2. preflight     BLOBs, NUL bytes, invalid UTF-8 (pgloader would cut or drop them silently), kept
                   out of pgloader in a working copy; on big files in the background (preflight.py)
  3. staging       pgloader into hrp_migration_stage, every source table, reconciled (staging.py)
  4. mapping       staged text -> typed work tables by the target catalog's rules (mapping.py)
  5. transaction   ONE transaction: guard, quarantine, writes, extras, checksums (transaction.py)
  6. report        the JSON file written before the commit, the table printed after (report.py)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from hrp_harness import HarnessError
from hrp_harness.platform.inputs import database_name, non_negative_int, sqlite_source
from hrp_harness.platform.paths import state_dir
from hrp_harness.migration.calls import call, db_error
from hrp_harness.migration.mapping import TABLES, Plan, finish_mapping, map_predictions, resolve, source_sides
from hrp_harness.migration.preflight import SCAN_BESIDE_PGLOADER_BYTES, BackgroundScan, Preflight, preflight
from hrp_harness.migration.report import ReportFile, print_report
from hrp_harness.migration.source import Source, check_spec_shape, read_mapping, read_source
from hrp_harness.migration.staging import BATCH_ROWS, Restage, file_sha256, stage
from hrp_harness.migration.transaction import (CommittedError, CommitUnknownError, clear_after_failure, guard, mark_live,
                          record_failure, target_state, transform)

__all__ = ["load", "mark_live", "CommittedError", "CommitUnknownError", "TABLES", "ReportFile"]

# pg_advisory_lock key private to the loader: one load at a time per database.
LOAD_LOCK_KEY = int.from_bytes(__import__("hashlib").sha256(b"hrp_load").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class LoadOptions:
    """What the user asked of one load, checked (load() checks every field before anything)."""

    source: Path
    dsn: str
    dbname: str
    incremental: bool = False
    max_quarantine: int | None = None
    source_timezone: str = "UTC"
    mapping: Path | None = None
    discard_target_changes: bool = False
    final: bool = False


def load(sqlite_path: str | Path, dsn: str, incremental: bool = False, max_quarantine: int | str | None = None,
         source_timezone: str = "UTC", report_path: str | Path | None = None, mapping: str | Path | None = None,
         quiet: bool = False, discard_target_changes: bool = False, final: bool = False) -> dict:
    """The whole load; returns the report (also written as JSON). Raises HarnessError on failure
    (CommittedError when the load committed and a later step failed). Every input is checked first."""
    # 0. inputs: each one before anything is created or changed
    path = sqlite_source(sqlite_path)
    limit = non_negative_int(max_quarantine, "--max-quarantine")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise HarnessError(f"--dsn is not a valid PostgreSQL URL or conninfo: {exc}") from None
    dbname = database_name(params.get("dbname") or "")
    mapping_doc, mapping_file = read_mapping(mapping)
    options = LoadOptions(path, dsn, dbname, incremental, limit, source_timezone,
                          Path(mapping) if mapping is not None else None, discard_target_changes, final)
    # 1. source: its tables and columns, the spec's shape unless a mapping file says otherwise
    source = read_source(path)
    if mapping is None:
        check_spec_shape(source)
    report_file = ReportFile(report_path, dbname)
    try:
        return _load(options, source, mapping_doc, mapping_file, report_file, quiet)
    finally:
        report_file.discard()  # nothing once published


def _load(options: LoadOptions, source: Source, mapping_doc: dict, mapping_file: Path, report_file: ReportFile,
          quiet: bool) -> dict:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # a terminal gets its own width; logs and pipes a wide table instead of rich's 80 columns
    console = Console(stderr=True, quiet=quiet, width=None if os.isatty(2) else 160)
    started = time.monotonic()
    # pgloader's command files and logs, the preflight's working copies: kept when a load fails
    # (the error names them; the newest few are kept), removed after a committed one
    workroot = state_dir() / "loads"
    workroot.mkdir(parents=True, exist_ok=True, mode=0o700)
    _prune_workdirs(workroot)
    report: dict = {"source": str(source.path), "mode": "incremental" if options.incremental else "full",
                    "source_timezone": options.source_timezone, "max_quarantine": options.max_quarantine,
                    "mapping_file": str(mapping_file)}
    try:
        conn = psycopg.connect(options.dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the target database: {str(exc).strip()}") from None
    pre = scan = digest = None
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
            conn.execute("select now() at time zone %s", (options.source_timezone,))
        except psycopg.Error:
            raise HarnessError(f"--source-timezone {options.source_timezone!r} is not a time zone PostgreSQL "
                               "knows (see pg_timezone_names)") from None
        empty, loaded = target_state(conn)
        if options.incremental and not loaded:
            raise HarnessError("--incremental needs a target loaded before by `invoke load` (no committed run "
                               "in hrp_migration.runs); run a full load first")
        # never over what the app wrote: a live database, rows no load wrote, or changes since the
        # last load stop it here (and again, under lock, inside its transaction)
        report["target"] = guard(conn, options.discard_target_changes)
        # 1. the mapping against the source: what goes where, or every problem named
        progress("mapping against the source")
        plan = resolve(conn, source, mapping_doc)
        report["mapping"] = plan.doc
        # statistics of the predictions work table only serve the merge path's joins with the target
        analyze = options.incremental or not empty
        try:
            # 2. preflight: small files whole now (milliseconds, and no second pgloader pass when it
            # finds rows); big files: the counts now, the content scan in the background from the
            # start, on CPU the load leaves idle; the commit waits for its verdict (rows found: the
            # transaction rolls back, staging starts again from a working copy without them)
            progress("preflight")
            big = source.size >= SCAN_BESIDE_PGLOADER_BYTES
            quick = pre = preflight(source.path, workroot, scan=not big)
            if quick.load_path == source.path and big:
                scan = BackgroundScan(source.path, workroot)
                scan.start()

            def verdict():
                found = scan.result()
                if found.total_rejects:
                    raise Restage(found)
                return found

            hasher = ThreadPoolExecutor(1)
            # the source's digest is computed beside pgloader (hashlib releases the GIL)
            digest = hasher.submit(file_sha256, source.path)
            logdir = Path(tempfile.mkdtemp(prefix="hrp-pgloader-", dir=workroot))
            try:
                try:
                    _attempt(conn, options, source, plan, report, report_file, progress, quick, logdir, analyze,
                             empty, digest, verdict if scan else None, restaged=False, started=started)
                    pre = scan.result() if scan else quick
                except Restage as again:
                    pre = again.pre
                    progress("pgloader into hrp_migration_stage (without the preflight's rejects)")
                    _attempt(conn, options, source, plan, report, report_file, progress, pre, logdir / "restage",
                             analyze, empty, digest, None, restaged=True, started=started)
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
            record_failure(conn, report, str(exc))
            raise
        finally:
            if not committed:
                clear_after_failure(conn)
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


def _attempt(conn, options: LoadOptions, source: Source, plan: Plan, report: dict, report_file: ReportFile,
             progress, pre: Preflight, logdir: Path, analyze: bool, empty: bool, digest, verdict, restaged: bool,
             started: float) -> None:
    """Phases 3 to 6 from `pre`: stage, map, and the one transaction, committed. `verdict`: the
    pending content scan's, awaited before the commit (Restage, the transaction rolled back, when it
    finds rows), and on a staging count mismatch. Everything that can fail runs before the commit,
    the report file included; a failure after it raises CommittedError."""
    dsn, timezone = options.dsn, options.source_timezone
    timers = {t: 0.0 for t in TABLES}
    t0 = time.monotonic()
    try:
        # 3. staging: pgloader, every source table, reconciled with the source's counts
        progress("pgloader into hrp_migration_stage")
        tables = {t: [c.name for c in cols] for t, cols in source.tables.items()}
        staged = stage(dsn, pre, tables, plan.source_of("predictions"), logdir, plan.batch_rows(BATCH_ROWS),
                       confirm=verdict)
        report["staging"] = {"seconds": round(staged.seconds, 3), "tables": staged.per_table,
                             "logs": str(logdir)}
        # 4. mapping: predictions in parts now, the rest beside the transaction
        map_predictions(dsn, timezone, timers, progress)
    except psycopg.Error as exc:
        raise HarnessError(f"mapping the staged rows failed (the target is unchanged): {db_error(exc)}") from None
    report["sha256"] = digest.result()
    run_args = {"mode": report["mode"], "source": report["source"], "sha256": report["sha256"],
                "timezone": timezone, "max_quarantine": options.max_quarantine,
                "discard_target_changes": options.discard_target_changes,
                "bulk": empty and report["mode"] == "full"}
    report["path"] = "bulk (empty target)" if run_args["bulk"] else "merge"
    generation = call(conn, "new_fingerprint_generation")
    conn.autocommit = False
    side_pool = ThreadPoolExecutor(2)
    committed = None
    try:
        # beside the transaction: the rest of the mapping (small tables, orphans, duplicates), then
        # the source sides of the validation and the rows' fingerprints
        mapped = side_pool.submit(finish_mapping, dsn, timezone, analyze)
        sources = side_pool.submit(source_sides, dsn, generation, mapped)
        # 5. the transaction
        began = time.monotonic()
        out = transform(conn, run_args, progress, timers, sources, mapped)
        run = out["run_id"]
        report.update(run_id=run, target=out["target"], tables=out["tables"], transaction_steps=out["steps"],
                      unmapped_tables=out["unmapped"], extra_columns=out["extras"])
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
        # 6. report: recorded with the run, and written in full, before the commit
        progress("commit")
        call(conn, "finish_run", run, Jsonb(report), out["generation"], options.final)
        report_file.write(report)
        try:
            conn.commit()
        except psycopg.OperationalError as exc:
            raise CommitUnknownError(
                f"the connection broke during the COMMIT of load run {run}: whether it committed is "
                f"unknown ({str(exc).strip()}); look: select status from hrp_migration.runs where run_id = {run}"
            ) from None
        committed = run
    except psycopg.Error as exc:
        conn.rollback()
        raise HarnessError(f"load rolled back, the target is unchanged: {db_error(exc)}") from None
    except BaseException:  # Restage, a failed content scan, an interrupt: nothing is committed
        if committed is None:
            conn.rollback()
        raise
    finally:
        side_pool.shutdown(wait=True)
        if not conn.closed:
            conn.autocommit = True  # the next attempt, or the failure's bookkeeping
    try:
        call(conn, "clear_stage")  # the copies of the source rows go
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
