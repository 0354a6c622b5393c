"""The benchmarks' queries (data/bench/app_queries.sql) on a loaded database: each has a SQLite and a
PostgreSQL text that return the same rows, no plan scans predictions sequentially, and the pgbench
scripts generated from them run. (Speed itself is the benchmarks' to print, never a test's.)"""

from __future__ import annotations

import datetime
import os
import subprocess
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import text

from helpers import janitor
from hrp_harness import migration
from hrp_harness.migration import sample
from hrp_harness.bench.app_engine import postgres_engine, sqlite_engine
from hrp_harness.bench.load import KEYS_SQL, app_mix, pgbench_scripts
from hrp_harness.bench.queries import READS, WRITE, check_plans, draw_params, read_queries
from hrp_harness.platform.paths import pgbin


@pytest.fixture(scope="module")
def loaded(pg_cluster, schema_template, tmp_path_factory):
    """The test-size sample as a SQLite file and loaded into a clone of the schema (ANALYZEd)."""
    source = sample.generate(tmp_path_factory.mktemp("bench") / "sample.sqlite", "test", 1)
    database = janitor(pg_cluster, "hrp_bench_queries", schema_template)
    database.init()
    dsn = pg_cluster.dsn("hrp_bench_queries")
    try:
        migration.load(source, dsn, quiet=True, report_path=source.with_suffix(".json"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("vacuum (analyze)")
        yield source, dsn
    finally:
        database.drop()


@pytest.mark.unit
def test_every_query_has_both_texts():
    queries = read_queries()
    assert set(queries) == {*READS, WRITE}
    for name, texts in queries.items():
        assert set(texts) == {"postgres", "sqlite"} and all(texts.values()), name
        assert "--" not in texts["postgres"] and not texts["postgres"].endswith(";")


@pytest.mark.cluster
def test_no_plan_scans_predictions_sequentially(loaded):
    _, dsn = loaded
    engine = postgres_engine(dsn)
    try:
        plans = check_plans(engine, read_queries(), draw_params(loaded[0], 1, count=5))
    finally:
        engine.dispose()
    assert [c.query for c in plans] == list(READS)
    for check in plans:
        assert check.ok, f"{check.query}: {check.summary}"
        if "predictions" in read_queries()[check.query]["postgres"]:
            assert any("on predictions using" in s for s in check.scans), check.summary


@pytest.mark.cluster
@pytest.mark.parametrize("name", READS)
def test_sqlite_and_postgres_return_the_same_rows(loaded, name):
    source, dsn = loaded
    queries, params = read_queries(), draw_params(source, 3, count=3)

    def normal(rows):
        def value(v):  # the types SQLite hands back as text or float
            if isinstance(v, (float, Decimal)):
                return round(float(v), 4)
            if isinstance(v, datetime.datetime):
                return v.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            if isinstance(v, datetime.date):
                return v.isoformat()
            return v
        return sorted(tuple(value(v) for v in row) for row in rows)

    pg, lite = postgres_engine(dsn), sqlite_engine(source)
    try:
        for p in params[name]:
            with pg.connect() as a, lite.connect() as b:
                got_pg = a.execute(text(queries[name]["postgres"]), p).fetchall()
                got_lite = b.execute(text(queries[name]["sqlite"]), p).fetchall()
            if name == "horse_search":  # LIMIT without ORDER BY: which 20 is the engine's choice
                assert len(got_pg) == len(got_lite)
            elif name != "upcoming_races":
                assert normal(got_pg) == normal(got_lite), p
            else:
                assert [r[0] for r in got_pg] == [r[0] for r in got_lite], p
    finally:
        pg.dispose()
        lite.dispose()


@pytest.mark.cluster
def test_pgbench_scripts_run(loaded, tmp_path):
    _, dsn = loaded
    scripts = pgbench_scripts(tmp_path / "scripts")
    assert set(scripts) == {*READS, WRITE}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(KEYS_SQL.read_text())
        cur = conn.execute("select * from bench.ranges")
        ranges = {d.name: v for d, v in zip(cur.description, cur.fetchone()) if d.name != "first_day"}
    argv = [pgbin("pgbench"), "--no-vacuum", "--protocol", "prepared", "--client", "2",
            "--transactions", "20", *(f"--define={k}={v}" for k, v in ranges.items())]
    for name, weight in app_mix() + [("trainer_join", 1)]:
        argv += ["--file", f"{scripts[name]}@{weight}"]
    done = subprocess.run([*argv, dsn], capture_output=True, text=True, env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert "number of failed transactions: 0" in done.stdout
    assert "aborted" not in done.stderr
