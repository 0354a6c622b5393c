"""Phase 5 of a load: the ONE transaction (functions/migration_load.sql, migration_keys.sql,
migration_validate.sql, migration_guard.sql): the run record, the target's guard under lock, the
quarantine, the writes (bulk path into an empty target: keys dropped and rebuilt; merge path:
delete gone rows, update changed ones, insert new ones), the source's extra columns and unmapped
tables, checksums, sequences, accounting; commit or roll back as a whole. And what surrounds it:
the target's state and guard before any work, the failure's record, the cutover mark."""

from __future__ import annotations

import time

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hrp_harness import HarnessError
from hrp_harness.migration.calls import call, db_error
from hrp_harness.migration.mapping import TABLES


class CommittedError(HarnessError):
    """A step after the commit failed: the load IS committed (exit status 3, README)."""

    exit_status = 3


class CommitUnknownError(HarnessError):
    """The connection broke during COMMIT: whether the load committed is unknown (exit status 4)."""

    exit_status = 4


def target_state(conn) -> tuple[bool, bool]:
    """(every spec table empty, a committed load exists); refuses a database without the schema."""
    missing = [t for t in TABLES if conn.execute("select to_regclass(%s)", (f"public.{t}",)).fetchone()[0] is None]
    if missing or conn.execute("select to_regclass('hrp_migration.column_map')").fetchone()[0] is None:
        raise HarnessError("the target database lacks the schema (missing: "
                           f"{', '.join(missing) or 'hrp_migration.column_map'}); run `invoke deploy` first")
    empty = all(conn.execute(sql.SQL("select not exists (select from public.{})").format(
        sql.Identifier(t))).fetchone()[0] for t in TABLES)
    loaded = conn.execute("select exists (select from hrp_migration.runs where status = 'committed')").fetchone()[0]
    return empty, loaded


def guard(conn, discard_target_changes: bool) -> str:
    """The target checked before any work (hrp_migration.guard_target in a short transaction of its
    own: the refusal comes before pgloader runs); the load's transaction checks again under lock."""
    try:
        with conn.transaction():
            return call(conn, "guard_target", discard_target_changes)
    except psycopg.Error as exc:
        raise HarnessError(db_error(exc)) from None


def transform(conn, run_args: dict, progress, timer: dict, sources, mapped=None) -> dict:
    """The target-writing steps in the caller's open transaction. `sources`: a future of
    mapping.source_sides(). `mapped`: a future of mapping.finish_mapping() (every work table
    complete); the bulk path inserts predictions and builds their keys and indexes meanwhile."""
    results: dict[str, dict] = {}
    counts = {t: {"inserted": 0, "updated": 0, "deleted": 0} for t in TABLES}
    run = call(conn, "begin_run", run_args["mode"], run_args["source"], run_args["sha256"],
               run_args["timezone"], run_args["max_quarantine"])
    # first: the five tables locked against writes until the commit, and checked again as the
    # load's preliminary check saw them (the app may have written since)
    target = call(conn, "guard_target", run_args["discard_target_changes"])
    conn.execute("set local jit = off")
    # a killed loader's backend notices within a second and rolls the load back
    conn.execute("set local client_connection_check_interval = '1s'")
    conn.execute("set local work_mem = '256MB'")

    steps: dict[str, float] = {}

    def step(label, function, *args, table=None):
        progress(label)
        began = time.monotonic()
        out = call(conn, function, *args)
        steps[label] = round(time.monotonic() - began, 3)
        if table:
            timer[table] += time.monotonic() - began
        return out

    def write(label, table, how):
        """apply_table, its counts added to the table's."""
        for key, value in step(label, "apply_table", table, how, table=table).items():
            counts[table][key] += value

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
    if run_args["bulk"]:
        # the two big tables only: the small ones' indexes cost less to maintain than to rebuild
        step("drop keys and indexes of horses, predictions (bulk load)", "drop_keys", ["horses", "predictions"])
        # while the rest of the mapping runs beside: the predictions that pass their own rules go
        # in and get their keys and indexes; those it then quarantines (orphans, duplicates) leave
        # again before the foreign keys
        write("insert predictions", "predictions", "insert")
        # not its UNIQUE constraint yet: duplicates still to be marked are in the table
        step("rebuild primary key and indexes of predictions", "restore_keys", ["predictions"], False,
             table="predictions")
        quarantined = wait_mapped()
        for table in TABLES:
            step(f"quarantine {table}", "sync_quarantine", run, table, table=table)
        for table in small:
            write(f"insert {table}", table, "insert")
        step("rebuild keys and indexes of horses", "restore_keys", ["horses"], table="horses")
        if quarantined:
            counts["predictions"]["inserted"] -= step(
                "remove quarantined predictions", "remove_quarantined", "predictions", table="predictions")
        step("rebuild unique key of predictions, foreign keys", "restore_keys")
    else:
        wait_mapped()  # deletes go children first
        for table in TABLES:
            step(f"quarantine {table}", "sync_quarantine", run, table, table=table)
        for table in reversed(TABLES):
            write(f"delete gone rows of {table}", table, "delete")
        for table in TABLES:
            write(f"update/insert {table}", table, "upsert")
    # nothing of the source is dropped: its columns no target takes, its tables no target takes
    extras = {table: step(f"extra columns of {table}", "sync_extras", table, table=table) for table in TABLES}
    unmapped = step("copy the unmapped tables", "copy_unmapped")
    for table in unmapped:
        step(f"quarantine {table}", "sync_quarantine", run, table)
    for table in TABLES:
        began = time.monotonic()
        side = Jsonb(sources.result()["tables"][table])
        steps[f"wait for source side of {table}"] = round(time.monotonic() - began, 3)
        results[table] = step(f"validate {table}", "finish_table", run, table, round(timer[table], 3), side,
                              Jsonb(counts[table]), table=table)
    return {"run_id": run, "tables": results, "steps": steps, "target": target,
            "generation": sources.result()["generation"],
            "extras": {t: n for t, n in extras.items() if n}, "unmapped": unmapped}


def record_failure(conn, report: dict, message: str) -> None:
    """A failed load leaves a 'failed' run row (outside the rolled-back transaction), if it can."""
    try:
        conn.autocommit = True
        conn.execute(
            "insert into hrp_migration.runs (mode, source_path, source_sha256, source_timezone, max_quarantine,"
            " finished_at, status, report) values (%s, %s, %s, %s, %s, clock_timestamp(), 'failed', %s)",
            (report["mode"], report["source"], report.get("sha256"), report["source_timezone"],
             report.get("max_quarantine"), Jsonb({**report, "error": message})))
    except psycopg.Error:
        pass


def clear_after_failure(conn) -> None:
    """A failed load leaves no copy of the source in the staging and work tables (personal data,
    secrets), nor fingerprints no run adopted; best effort (the connection may be gone)."""
    try:
        if not conn.closed:
            conn.rollback()
            conn.autocommit = True
            call(conn, "clear_stage")
    except psycopg.Error:
        pass


def mark_live(dsn: str) -> int:
    """`invoke cutover`: the database goes live after its last committed load (hrp_migration.cutover);
    every later load is refused. Returns that load's run id."""
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the target database: {str(exc).strip()}") from None
    with conn:
        if conn.execute("select to_regclass('hrp_migration.cutover')").fetchone()[0] is None:
            raise HarnessError("the target database lacks hrp_migration.cutover; run `invoke deploy` first")
        try:
            return call(conn, "mark_live")
        except psycopg.Error as exc:
            raise HarnessError(db_error(exc)) from None
