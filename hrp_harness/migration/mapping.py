"""Phase 4 of a load, and its resolution before staging: the mapping.

resolve(): the mapping file against the source (hrp_migration.set_mapping: refuses it naming every
problem, else records which source table and column feeds each target column). Then, once the
source is staged, the staged text is mapped into typed work tables (hrp_migration_work.<table>) by the
rules of the target catalog (functions/migration_map.sql): predictions in parts on two connections
(ranges of the staged table's blocks), then, on a third connection beside the load's transaction,
the small tables and their duplicates, the orphans of predictions, and their duplicates."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from hrp_harness import HarnessError
from hrp_harness.migration.calls import call, db_error
from hrp_harness.migration.source import Source

#: The spec's tables a load writes, parents first (hrp_migration.target_tables()).
TABLES = ("races", "horses", "users", "api_credentials", "predictions")


@dataclass(frozen=True)
class Plan:
    """What goes where (hrp_migration.set_mapping's answer): per target table its source table and
    columns, the source tables no target takes."""

    doc: dict

    def source_of(self, table: str) -> str:
        return self.doc["tables"][table]["source"]

    @property
    def unmapped_tables(self) -> list[str]:
        return list(self.doc["unmapped_tables"])

    def batch_rows(self, spec_batches: dict[str, int]) -> dict[str, int]:
        """Source table -> the spec's batch size of the target table it feeds."""
        return {self.source_of(t): rows for t, rows in spec_batches.items()}


def resolve(conn, source: Source, mapping: dict) -> Plan:
    """The mapping file's document against the source's tables and columns (in the target
    database: hrp_migration.set_mapping, committed for the load's other connections)."""
    try:
        doc = call(conn, "set_mapping", Jsonb(source.as_json()), Jsonb(mapping))
    except psycopg.Error as exc:
        raise HarnessError(f"{db_error(exc)}\nnothing was loaded") from None
    return Plan(doc)


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
    progress(f"map predictions ({parts} connections)")
    began = time.monotonic()
    with _map_conn(dsn, timezone) as conn:
        call(conn, "build_mapped_views")  # all five, before the transaction (see the SQL)
        call(conn, "map_begin", "predictions")

    def part(number):
        with _map_conn(dsn, timezone) as conn:
            call(conn, "map_rows", "predictions", number, parts)

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
            call(conn, "map_table", table)
            call(conn, "mark_duplicates", table)
            seconds[table] += time.monotonic() - began
        began = time.monotonic()
        marked = call(conn, "mark_orphans", "predictions") + call(conn, "mark_duplicates", "predictions")
        call(conn, "map_end", "predictions", analyze)
        seconds["predictions"] += time.monotonic() - began
    return {"finished": time.monotonic(), "quarantined_predictions": marked, "seconds": seconds}


def source_sides(dsn: str, generation: int, mapped=None) -> dict:
    """Per table, the source side of its validation (checksum, counts, reasons, normalisations) from
    the work tables, on a connection of its own: runs while the load's transaction writes the target
    (it reads the work tables only, which that transaction does not write). The migrating rows'
    fingerprints go into `generation` of hrp_migration.row_fingerprints on the way (committed here; the
    load's transaction adopts them at its commit; the generation's partition is made before that
    transaction begins, which reads the table and would block its creation). `mapped`: a future of
    finish_mapping(), awaited first. Returns {"generation": ..., "tables": {table: side}}."""
    if mapped is not None:
        mapped.result()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set jit = off")
        conn.execute("set max_parallel_workers_per_gather = 0")
        return {"generation": generation,
                "tables": {table: call(conn, "source_side", table, generation) for table in TABLES}}
