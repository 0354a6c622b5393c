"""`invoke bench.partitioning [--size production|10x]`: is `predictions` better partitioned? Measured
side by side in one run on a throwaway cluster (not a test), three shapes of the table
(data/bench/partitioning_variants.sql): the spec's table, monthly range partitions of created_at
(pg_partman), range partitions of race_id.

Phases, each one named call:
  fill      synthetic rows made in PostgreSQL (data/bench/predictions_fill.sql): 1x = the spec's
            production size (10,000 races, 50,000 horses, 500,000 predictions over 24 months),
            10x = ten times each
  load      each variant loaded from the same rows in one INSERT ... SELECT with its keys and
            indexes in place, then its first VACUUM (ANALYZE)
  queries   the spec's views for one race / one trainer, the app's hot queries, time-range
            queries (data/bench/partitioning_queries.sql, prepared statements): p50 / p95 ms over
            the same random parameters on every variant, variants interleaved
  writes    single-row inserts (a commit each) and upserts on the spec's unique key
  vacuum    2 % of the last month's rows updated, then VACUUM of the table (and, partitioned by
            month, of the last month's partition alone: what autovacuum would do)
Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from statistics import median, quantiles

import psycopg
from psycopg import sql

from hrp_harness import HarnessError
from hrp_harness.platform.apply import apply
from hrp_harness.platform.cluster import Cluster
from hrp_harness.platform.paths import REPO
from hrp_harness.platform.psql import run_file
from hrp_harness.platform.server_user import make_server_dir

BENCH = REPO / "data" / "bench"
FILL_SQL = BENCH / "predictions_fill.sql"
VARIANTS_SQL = BENCH / "partitioning_variants.sql"
QUERIES_SQL = BENCH / "partitioning_queries.sql"
VARIANTS = ("bench_plain", "bench_by_month", "bench_by_race")
LABELS = {"bench_plain": "not partitioned (spec)", "bench_by_month": "by month of created_at",
          "bench_by_race": "by race_id range"}
MONTHS = 24
LAST_DAY = date(2026, 11, 30)  # the generator's last race date


@dataclass(frozen=True)
class Size:
    races: int
    horses: int
    predictions: int


SIZES = {"production": Size(10_000, 50_000, 500_000), "10x": Size(100_000, 500_000, 5_000_000)}

#: (query, executions per variant). Each query runs with the same random parameters everywhere.
QUERIES = (("point_by_id", 400), ("race_predictions", 300), ("race_statistics", 300),
           ("trainer_summary", 40), ("horse_predictions", 300), ("day_predictions", 100),
           ("month_high_confidence", 20))
INSERTS = 1000
UPSERTS = 500


@dataclass
class Variant:
    schema: str
    load_s: float = 0.0
    first_vacuum_s: float = 0.0
    bytes: int = 0
    partitions: int = 0
    queries: dict[str, dict[str, float]] = field(default_factory=dict)
    inserts_per_s: float = 0.0
    upserts_per_s: float | None = None
    upsert_error: str | None = None
    vacuum_s: float = 0.0
    vacuum_hot_partition_s: float | None = None


def _statements(path: Path) -> list[str]:
    """The statements of a SQL file (each ends with `;` at the end of a line; no DO blocks)."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("--"))
    return [s.strip() for s in re.split(r";\s*\n", text) if s.strip()]


def _connect(cluster: Cluster, schema: str) -> psycopg.Connection:
    # EXECUTE takes no bind parameters: the client puts the values in (ClientCursor)
    conn = psycopg.connect(cluster.dsn("bench"), autocommit=True, cursor_factory=psycopg.ClientCursor)
    conn.execute(sql.SQL("set search_path = {}, public").format(sql.Identifier(schema)))
    return conn


def _params(name: str, size: Size, rng: random.Random) -> tuple:
    start = LAST_DAY - timedelta(days=MONTHS * 30)
    if name == "point_by_id":
        return (rng.randint(1, size.predictions),)
    if name in ("race_predictions", "race_statistics"):
        return (rng.randint(1, size.races),)
    if name == "trainer_summary":
        return (f"Trainer {rng.randrange(500)}",)
    if name == "horse_predictions":
        return (rng.randint(1, size.horses),)
    if name == "day_predictions":
        day = start + timedelta(days=rng.randrange(MONTHS * 30))
        return (datetime(day.year, day.month, day.day, tzinfo=timezone.utc),)
    if name == "month_high_confidence":
        month = start + timedelta(days=31 * rng.randrange(MONTHS - 1) + 31)
        return (datetime(month.year, month.month, 1, tzinfo=timezone.utc),)
    raise HarnessError(f"no parameters for {name}")


def fill(cluster: Cluster, size: Size) -> float:
    """The synthetic rows into public (races, horses, predictions); seconds."""
    started = time.monotonic()
    run_file(cluster.dsn("bench"), FILL_SQL, variables={
        "races": str(size.races), "horses": str(size.horses), "predictions": str(size.predictions),
        "months": str(MONTHS)})
    return time.monotonic() - started


def create_variants(cluster: Cluster, size: Size) -> None:
    first = LAST_DAY - timedelta(days=MONTHS * 30)
    run_file(cluster.dsn("bench"), VARIANTS_SQL, variables={
        "start_month": f"{first:%Y-%m}-01", "race_step": str(max(1, size.races // MONTHS)),
        "races": str(size.races)})


def load(cluster: Cluster, variants: dict[str, Variant]) -> None:
    """Each variant from public.predictions in one statement (keys and indexes in place), then its
    first VACUUM (ANALYZE); public.predictions emptied after (its rows are in every variant).
    The spec's table is loaded last: whatever the first load pays for (WAL segments the server
    creates, caches) weighs against partitioning, not for it."""
    for schema, variant in reversed(variants.items()):
        with _connect(cluster, schema) as conn:
            started = time.monotonic()
            conn.execute("insert into predictions select * from public.predictions")
            variant.load_s = time.monotonic() - started
            started = time.monotonic()
            conn.execute("vacuum (analyze) predictions")
            variant.first_vacuum_s = time.monotonic() - started
            size_bytes, variant.partitions = conn.execute(
                # pg_partition_tree has no row for a table that is not partitioned
                "select coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size("
                "'predictions')), greatest(count(*) filter (where isleaf), 1)"
                " from pg_partition_tree('predictions')").fetchone()
            variant.bytes = int(size_bytes)
    with psycopg.connect(cluster.dsn("bench"), autocommit=True) as conn:
        conn.execute("truncate public.predictions")
        conn.execute("checkpoint")
    os.sync()


def _timings_ms(samples: list[float]) -> dict[str, float]:
    cuts = quantiles(samples, n=20, method="inclusive")
    return {"p50_ms": round(median(samples) * 1000, 3), "p95_ms": round(cuts[18] * 1000, 3)}


def queries(cluster: Cluster, size: Size, variants: dict[str, Variant], seed: int) -> None:
    """Every query on every variant: prepared once per session, warmed up, then timed with the same
    parameters everywhere; variants take turns in blocks of 20 executions."""
    conns = {schema: _connect(cluster, schema) for schema in variants}
    try:
        for conn in conns.values():
            for statement in _statements(QUERIES_SQL):
                if not statement.startswith("prepare upsert_prediction"):
                    conn.execute(statement)
        for name, count in QUERIES:
            rng = random.Random(f"{seed}-{name}")
            params = [_params(name, size, rng) for _ in range(count)]
            samples: dict[str, list[float]] = {schema: [] for schema in variants}
            for schema, conn in conns.items():  # warm-up: caches and plans (generic after 5 runs)
                for p in params[:6]:
                    conn.execute(f"execute {name}(%s)", p).fetchall()
            for block in range(0, count, 20):
                for schema, conn in conns.items():
                    for p in params[block:block + 20]:
                        started = time.perf_counter()
                        conn.execute(f"execute {name}(%s)", p).fetchall()
                        samples[schema].append(time.perf_counter() - started)
            for schema, variant in variants.items():
                variant.queries[name] = _timings_ms(samples[schema])
    finally:
        for conn in conns.values():
            conn.close()


def writes(cluster: Cluster, size: Size, variants: dict[str, Variant], seed: int) -> None:
    """Single-row inserts, a commit each, created_at now (the newest partition); then upserts on
    the spec's unique key of existing predictions (ON CONFLICT ... DO UPDATE), where the variant
    has that key."""
    [insert_sql] = [s for s in _statements(QUERIES_SQL) if s.startswith("prepare insert_prediction")]
    [upsert_sql] = [s for s in _statements(QUERIES_SQL) if s.startswith("prepare upsert_prediction")]
    per_race = size.predictions // size.races
    for schema, variant in variants.items():
        rng = random.Random(f"{seed}-writes")
        with _connect(cluster, schema) as conn:
            conn.execute(insert_sql)
            started = time.perf_counter()
            for n in range(INSERTS):
                conn.execute("execute insert_prediction(%s, %s, %s)",
                             (rng.randint(1, size.races), rng.randint(1, size.horses), f"bench-{n}"))
            variant.inserts_per_s = round(INSERTS / (time.perf_counter() - started))
            conn.execute(upsert_sql)
            started = time.perf_counter()
            try:  # the planner looks for the key ON CONFLICT names at the first EXECUTE
                for _ in range(UPSERTS):
                    race, k = rng.randint(1, size.races), rng.randrange(per_race)
                    horse = 1 + (race * 7919 + k * 104729) % size.horses  # as predictions_fill.sql
                    conn.execute("execute upsert_prediction(%s, %s, %s)",
                                 (race, horse, f"v{1 + race % 3}.0"))
            except psycopg.Error as exc:
                variant.upsert_error = exc.diag.message_primary
                continue
            variant.upserts_per_s = round(UPSERTS / (time.perf_counter() - started))


def vacuum(cluster: Cluster, variants: dict[str, Variant]) -> None:
    """2 % of the last month's predictions updated (the app re-scoring recent ones), then VACUUM of
    the table; partitioned by month also of that month's partition alone."""
    last_month = datetime(LAST_DAY.year, LAST_DAY.month, 1, tzinfo=timezone.utc)
    for schema, variant in variants.items():
        with _connect(cluster, schema) as conn:
            conn.execute("update predictions set confidence = confidence"
                         " where created_at >= %s and id %% 50 = 0", (last_month,))
            conn.execute("checkpoint")
            started = time.monotonic()
            conn.execute("vacuum predictions")
            variant.vacuum_s = time.monotonic() - started
            if schema == "bench_by_month":
                conn.execute("update predictions set confidence = confidence"
                             " where created_at >= %s and id %% 50 = 1", (last_month,))
                hot = conn.execute("select tableoid::regclass::text from predictions"
                                   " where created_at >= %s limit 1", (last_month,)).fetchone()[0]
                started = time.monotonic()
                conn.execute(sql.SQL("vacuum {}").format(sql.SQL(hot)))  # regclass text: quoted
                variant.vacuum_hot_partition_s = time.monotonic() - started


def _table(variants: dict[str, Variant], size_name: str, size: Size, fill_s: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if os.isatty(1) else 160, record=True)
    table = Table(title=f"predictions partitioned or not: {size_name} size ({size.predictions:,} predictions, "
                        f"{size.races:,} races, {size.horses:,} horses over {MONTHS} months; fill {fill_s:.0f} s)",
                  title_justify="left")
    table.add_column("measure")
    for schema in variants:
        table.add_column(LABELS[schema], justify="right")
    rows = [("partitions", lambda v: f"{v.partitions}"),
            ("size (table + indexes) MB", lambda v: f"{v.bytes / 2**20:,.0f}"),
            ("load: INSERT ... SELECT s", lambda v: f"{v.load_s:.1f}"),
            ("first VACUUM (ANALYZE) s", lambda v: f"{v.first_vacuum_s:.1f}")]
    for name, _ in QUERIES:
        rows.append((f"{name} p50 / p95 ms",
                     lambda v, n=name: f"{v.queries[n]['p50_ms']:.2f} / {v.queries[n]['p95_ms']:.2f}"))
    rows += [("inserts / s (a commit each)", lambda v: f"{v.inserts_per_s:,.0f}"),
             ("upserts on the spec's key / s",
              lambda v: f"{v.upserts_per_s:,.0f}" if v.upserts_per_s else "impossible"),
             ("VACUUM after 2 % of the last month updated s",
              lambda v: f"{v.vacuum_s:.2f}" + (f" ({v.vacuum_hot_partition_s:.2f} that month's "
                                               "partition alone)" if v.vacuum_hot_partition_s else ""))]
    for label, cell in rows:
        table.add_row(label, *(cell(v) for v in variants.values()))
    console.print(table)
    for v in variants.values():
        if v.upsert_error:
            console.print(f"{LABELS[v.schema]}: ON CONFLICT (race_id, horse_id, algorithm_version): "
                          f"{v.upsert_error}")


def run(size: str = "production", seed: int = 1, echo=print) -> dict:
    if size not in SIZES:
        raise HarnessError(f"--size {size!r}: expected one of {', '.join(SIZES)}")
    chosen = SIZES[size]
    base = make_server_dir(Path(tempfile.mkdtemp(prefix="hrp-bench-partitioning-", dir="/var/tmp")), 0o700)
    cluster = Cluster(base / "pg", shared_buffers_mb=1024)
    try:
        echo(f"bench.partitioning: {size} size, throwaway cluster in {base} (shared_buffers 1 GB)")
        cluster.init().start()
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("create database bench")
        apply(cluster.dsn("bench"), echo=lambda *_: None)
        echo("bench.partitioning: fill")
        fill_s = fill(cluster, chosen)
        create_variants(cluster, chosen)
        variants = {schema: Variant(schema) for schema in VARIANTS}
        echo("bench.partitioning: load")
        load(cluster, variants)
        echo("bench.partitioning: queries")
        queries(cluster, chosen, variants, seed)
        echo("bench.partitioning: writes")
        writes(cluster, chosen, variants, seed)
        echo("bench.partitioning: vacuum")
        vacuum(cluster, variants)
        _table(variants, size, chosen, fill_s)
        result = {"size": size, "predictions": chosen.predictions, "races": chosen.races,
                  "horses": chosen.horses, "months": MONTHS, "seed": seed, "fill_s": round(fill_s, 1),
                  "variants": {schema: {k: (round(v, 3) if isinstance(v, float) else v)
                                        for k, v in asdict(variant).items() if k != "schema"}
                               for schema, variant in variants.items()}}
        print(json.dumps(result))
        return result
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
