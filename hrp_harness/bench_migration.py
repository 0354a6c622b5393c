"""`invoke bench.migration`: the migration's speed, measured side by side in one run (not a test).

On a throwaway cluster (the project's conf/, sized like any other), with the production-size sample,
after one unmeasured warm-up load, and with VACUUM (ANALYZE), CHECKPOINT and sync before each phase:
  full      `invoke load` end to end into an empty deployed database (preflight, pgloader staging,
            the one-transaction SQL transform with keys, checksums, accounting)
  pgloader  pgloader alone into migration_stage, two ways: the loader's own staging step (two
            processes, the spec's batch size per table, reconciled) and one process for all tables
            (batch rows 5000); pgloader_s is the faster of the two
  copy      the floor: sqlite3 CSV export + COPY of the same rows into unlogged text tables
Peak memory is the largest summed RSS of this process and its children (pgloader, sqlite3) sampled
every 20 ms during the phase (the server's own memory is not counted). The last line printed is one
JSON object with full_s, pgloader_s, copy_s, rows (and more).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from . import HarnessError, migrate, sample
from .apply import apply
from .cluster import Cluster
from .server_user import make_server_dir

TARGET_RATIO = 3.0
TARGET_SECONDS = 10.0


class PeakRss:
    """Largest summed RSS of this process tree while the context is open (sampled)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)


def _copy_floor(source: Path, dsn: str, workdir: Path) -> float:
    """sqlite3 CSV export + COPY (psycopg, streamed in 1 MB blocks) of every table; seconds."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema if not exists bench_copy")
        for table in migrate.TABLES:
            conn.execute(sql.SQL("drop table if exists bench_copy.{t}; "
                                 "create unlogged table bench_copy.{t} (like migration_stage.{t})")
                         .format(t=sql.Identifier(table)))
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in migrate.TABLES:
            csv_path = workdir / f"{table}.csv"
            with csv_path.open("wb") as out:
                subprocess.run(["sqlite3", "-csv", str(source), f"select * from {table}"], stdout=out, check=True)
            with conn.cursor() as cur, cur.copy(sql.SQL("copy bench_copy.{} from stdin (format csv)")
                                                .format(sql.Identifier(table))) as copy, csv_path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    copy.write(block)
    return time.monotonic() - started


def _pgloader_single(source: Path, dsn: str, logdir: Path, rows: int) -> float:
    """Reference: ONE pgloader process for every table (`like '%'`, batch rows 5000) into staging;
    seconds. Checked like the loader's staging: staged rows must equal the source's."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in migrate.TABLES:
            conn.execute(sql.SQL("truncate migration_stage.{}").format(sql.Identifier(table)))
    url, env = migrate.pgloader_target(dsn)
    logdir.mkdir(parents=True, exist_ok=True)
    load = logdir / "all-tables.load"
    load.write_text(migrate.render_pgloader(source, url, "%", 5000))
    started = time.monotonic()
    with (logdir / "all-tables.out").open("w") as out:
        subprocess.run(["pgloader", str(load)], env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        staged = sum(conn.execute(sql.SQL("select count(*) from migration_stage.{}").format(
            sql.Identifier(t))).fetchone()[0] for t in migrate.TABLES)
    if staged != rows:
        raise HarnessError(f"reference pgloader run staged {staged} rows of {rows} (see {logdir})")
    return seconds


def _settle(cluster: Cluster, dbname: str) -> None:
    """Before each measured phase, so that none pays for the work an earlier one left behind:
    VACUUM (ANALYZE) of the database (else autovacuum comes for the rows just loaded during the next
    phase), CHECKPOINT (the buffers it dirtied), and sync (the files the OS still has to write, such
    as the freshly generated sample)."""
    with psycopg.connect(cluster.dsn(dbname), autocommit=True) as conn:
        conn.execute("vacuum (analyze)")
        conn.execute("checkpoint")
    os.sync()


def run(size: str = "production", seed: int = 1, echo=print) -> dict:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    base = make_server_dir(Path(tempfile.mkdtemp(prefix="hrp-bench-")), 0o700)
    cluster = Cluster(base / "pg")
    try:
        echo(f"bench.migration: {size} sample (seed {seed}), throwaway cluster in {base}")
        source = sample.generate(base / f"sample-{size}.sqlite", size, seed)
        cluster.init().start()
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("create database bench_template")
        apply(cluster.dsn("bench_template"), echo=lambda *_: None)
        # warm-up, not measured: one full load into a scratch database, so that the measured runs
        # find the server as a running one is (WAL segments to recycle instead of zero-filling
        # new ones, warm caches) and every phase below starts from the same state
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("create database bench_warmup template bench_template")
        echo("bench.migration: warm-up load (not measured)")
        migrate.load(source, cluster.dsn("bench_warmup"), quiet=True, report_path=base / "warmup-report.json")
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("drop database bench_warmup")
            admin.execute("create database bench template bench_template")
        dsn = cluster.dsn("bench")
        _settle(cluster, "bench")

        with PeakRss() as full_mem:
            t0 = time.monotonic()
            report = migrate.load(source, dsn, quiet=True, report_path=base / "full-report.json")
            full_s = time.monotonic() - t0
        rows = sum(t["source_rows"] for t in report["tables"].values())

        pre = migrate.preflight(source, base)
        _settle(cluster, "bench")
        with PeakRss() as pgl_mem:
            t0 = time.monotonic()
            migrate.stage(dsn, pre, base / "pgloader-only")
            staging_s = time.monotonic() - t0
        _settle(cluster, "bench")
        with PeakRss() as single_mem:
            single_s = _pgloader_single(source, dsn, base / "pgloader-single", rows)
        # the target compares with the FASTER way to run pgloader alone, so that a slower staging
        # configuration can never make the ratio look better
        pgloader_s = min(staging_s, single_s)

        _settle(cluster, "bench")
        with PeakRss() as copy_mem:
            copy_s = _copy_floor(source, dsn, base)

        table = Table(title=f"SQLite -> PostgreSQL, {rows:,} rows ({size} sample), one run on this machine",
                      title_justify="left")
        for col in ("phase", "seconds", "rows/s", "peak RSS MB", "x copy", "x pgloader"):
            table.add_column(col, justify="right" if col != "phase" else "left")
        for name, secs, mem in (("full migration (invoke load)", full_s, full_mem.mb),
                                ("pgloader alone: the loader's staging (2 processes)", staging_s, pgl_mem.mb),
                                ("pgloader alone: 1 process, all tables", single_s, single_mem.mb),
                                ("plain COPY floor (CSV export + COPY)", copy_s, copy_mem.mb)):
            table.add_row(name, f"{secs:.2f}", f"{rows / secs:,.0f}", f"{mem}", f"{secs / copy_s:.2f}",
                          f"{secs / pgloader_s:.2f}")
        console.print(table)
        console.print(f"full migration phases: preflight {report['preflight']['seconds']} s, "
                      f"staging {report['staging']['seconds']} s, transform {report['transform_seconds']} s "
                      f"(quarantined {report['quarantined_total']}, checksums "
                      f"{'all match' if all(t['checksum_match'] for t in report['tables'].values()) else 'MISMATCH'})")
        met = full_s <= TARGET_RATIO * pgloader_s and full_s < TARGET_SECONDS
        console.print(f"target full_s <= {TARGET_RATIO} x pgloader_s and < {TARGET_SECONDS} s: "
                      f"{'met' if met else 'NOT met'} ({full_s / pgloader_s:.2f} x)")
        result = {"full_s": round(full_s, 3), "pgloader_s": round(pgloader_s, 3), "copy_s": round(copy_s, 3),
                  "rows": rows, "full_over_pgloader": round(full_s / pgloader_s, 3), "target_met": met,
                  "preflight_s": report["preflight"]["seconds"], "staging_s": report["staging"]["seconds"],
                  "transform_s": report["transform_seconds"],
                  "pgloader_staging_s": round(staging_s, 3), "pgloader_single_s": round(single_s, 3),
                  "peak_rss_mb": {"full": full_mem.mb, "pgloader": pgl_mem.mb, "pgloader_single": single_mem.mb,
                                  "copy": copy_mem.mb},
                  "size": size, "seed": seed}
        print(json.dumps(result))
        return result
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)

