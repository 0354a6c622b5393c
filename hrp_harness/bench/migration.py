"""`invoke bench.migration`: the migration's speed, measured side by side in one run (not a test).

On a throwaway cluster (the project's conf/, sized like any other), with the production-size sample,
after one unmeasured warm-up load, in `repeat` rounds (default 3) of the four phases, interleaved,
each phase after VACUUM (ANALYZE), CHECKPOINT and sync; every figure is the median of its rounds:
  full      `invoke load` end to end into an empty deployed database (preflight, pgloader staging,
            mapping, the one transaction with keys, checksums, accounting)
  pgloader  pgloader alone into hrp_migration_stage, two ways: the loader's own staging step (two
            processes, the spec's batch size per table, reconciled) and one process for all tables
            (batch rows 5000); pgloader_s is the faster of the two
  copy      the floor: sqlite3 CSV export + COPY of the same rows into unlogged text tables
Each measured phase runs in a process of its own (as `invoke load` does); peak memory is the largest
summed RSS of that process and its children (pgloader, the content scan, sqlite3) sampled every
20 ms (neither the benchmark's own memory nor the server's is counted). The last line printed is one
JSON object with full_s, pgloader_s, copy_s, rows (and more, with every round's figures).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty

import psutil
import psycopg
from psycopg import sql

from hrp_harness import HarnessError, migration
from hrp_harness.migration import sample
from hrp_harness.migration import staging
from hrp_harness.migration.preflight import preflight
from hrp_harness.migration.source import read_source
from hrp_harness.platform.apply import apply
from hrp_harness.platform.cluster import Cluster
from hrp_harness.platform.server_user import make_server_dir

TARGET_RATIO = 3.0
TARGET_SECONDS = 10.0
#: at 10x production size (5.6 M rows): at most this many times the production-size load's time,
#: in the same run, with the loader's peak memory (this process and pgloader) below this
TARGET_10X_RATIO = 11.0
TARGET_10X_PEAK_MB = 1024.0


class PeakRss:
    """Largest summed RSS of a process tree (ROOT and its children) while the context is open
    (sampled)."""

    def __init__(self, root: int, interval: float = 0.02):
        self.root = root
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self):
        try:
            top = psutil.Process(self.root)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in tree:
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


def _child_main(queue, action, args, kwargs) -> None:
    """In the phase's own process: run it, send back its seconds (timed here, after the imports)
    and its result, or the error's text."""
    started = time.monotonic()
    try:
        result = action(*args, **kwargs)
        queue.put(("ok", time.monotonic() - started, result))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        queue.put(("error", 0.0, f"{type(exc).__name__}: {str(exc).strip()}"))


def in_own_process(action, *args, **kwargs) -> tuple[float, object, float]:
    """Run action(*args, **kwargs) in a fresh interpreter, as `invoke load` runs in a process of its
    own: its seconds (timed inside it), its result, and the peak summed RSS in MB of that process
    and its children (pgloader, the content scan). The benchmark's own memory (the samples it
    generated, earlier phases' leftovers) is not the phase's, and is not counted."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_main, args=(queue, action, args, kwargs))
    child.start()
    with PeakRss(child.pid) as mem:
        while True:
            try:
                status, seconds, result = queue.get(timeout=1)
                break
            except Empty:
                if not child.is_alive():
                    raise HarnessError(f"bench.migration: the phase's process died (exit {child.exitcode})") from None
    child.join()
    if status == "error":
        raise HarnessError(f"bench.migration: {result}")
    return seconds, result, mem.mb


def _copy_floor(source: Path, dsn: str, workdir: Path) -> float:
    """sqlite3 CSV export + COPY (psycopg, streamed in 1 MB blocks) of every table; seconds."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema if not exists bench_copy")
        for table in migration.TABLES:
            conn.execute(sql.SQL("drop table if exists bench_copy.{t}; "
                                 "create unlogged table bench_copy.{t} (like {staged})")
                         .format(t=sql.Identifier(table),
                                 staged=sql.Identifier(staging.STAGE_SCHEMA, table)))
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in migration.TABLES:
            csv_path = workdir / f"{table}.csv"
            with csv_path.open("wb") as out:
                subprocess.run(["sqlite3", "-csv", str(source), f"select * from {table}"], stdout=out, check=True)
            with conn.cursor() as cur, cur.copy(sql.SQL("copy bench_copy.{} from stdin (format csv)")
                                                .format(sql.Identifier(table))) as copy, csv_path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    copy.write(block)
    return time.monotonic() - started


def _pgloader_single(source: Path, dsn: str, logdir: Path, rows: int, timeout: float) -> float | None:
    """Reference: ONE pgloader process for every table (`like '%'`, batch rows 5000) into staging;
    seconds, or None when it has not ended after `timeout` seconds (it is killed). Checked like the
    loader's staging: staged rows must equal the source's."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in migration.TABLES:
            conn.execute(sql.SQL("truncate {}").format(sql.Identifier(staging.STAGE_SCHEMA, table)))
    url, env = staging.pgloader_target(dsn)
    logdir.mkdir(parents=True, exist_ok=True)
    load = logdir / "all-tables.load"
    columns = [(t, c.name) for t, cols in read_source(source).tables.items() for c in cols]
    load.write_text(staging.render_pgloader(source, url, "%", columns, 5000))
    started = time.monotonic()
    with (logdir / "all-tables.out").open("w") as out:
        try:
            subprocess.run(["pgloader", str(load)], env=env, stdout=out, stderr=subprocess.STDOUT,
                           timeout=timeout)
        except subprocess.TimeoutExpired:
            # seen at 10x: one pgloader for every table of a 400 MB file stalled without a
            # connection or CPU; a reference that never ends is no reference
            return None
    seconds = time.monotonic() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        staged = sum(conn.execute(sql.SQL("select count(*) from {}").format(
            sql.Identifier(staging.STAGE_SCHEMA, t))).fetchone()[0] for t in migration.TABLES)
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


def run(size: str = "production", seed: int = 1, repeat: int = 3, echo=print) -> dict:
    from statistics import median

    from rich.console import Console
    from rich.table import Table

    if repeat < 1:
        raise HarnessError("--repeat must be at least 1")
    # a terminal gets its own width; logs and pipes a wide table instead of rich's 80 columns
    console = Console(width=None if os.isatty(1) else 160)
    base = make_server_dir(Path(tempfile.mkdtemp(prefix="hrp-bench-")), 0o700)
    cluster = Cluster(base / "pg")
    try:
        echo(f"bench.migration: {size} sample (seed {seed}), {repeat} round(s), throwaway cluster in {base}")
        source = sample.generate(base / f"sample-{size}.sqlite", size, seed)
        # at 10x the production-size load runs in the same rounds: the 10x / 1x ratio of one run
        source_1x = sample.generate(base / "sample-production.sqlite", "production", seed) if size == "10x" else None
        cluster.init().start()
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("create database bench_template")
        apply(cluster.dsn("bench_template"), echo=lambda *_: None)
        # warm-up, not measured: one full load into a scratch database, so that the measured runs
        # find the server as a running one is (WAL segments to recycle instead of zero-filling
        # new ones, warm caches)
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("create database bench_warmup template bench_template")
        echo("bench.migration: warm-up load (not measured)")
        migration.load(source, cluster.dsn("bench_warmup"), quiet=True, report_path=base / "warmup-report.json")
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("drop database bench_warmup")
        pre = preflight(source, base)
        tables = {t: [c.name for c in cols] for t, cols in read_source(source).tables.items()}
        dsn = cluster.dsn("bench")

        # the phases in rounds, interleaved, so that a machine getting busier or quieter meanwhile
        # weighs on all of them alike; each figure is the median of its rounds
        phases = ("full", "staging", "single", "copy") + (("full_1x",) if source_1x else ())
        seconds: dict[str, list[float]] = {p: [] for p in phases}
        peak: dict[str, float] = {p: 0.0 for p in phases}
        reports = []

        def measure(phase: str, action, *args, self_timed: bool = False, **kwargs):
            """One round of a phase, settled first, in a process of its own. self_timed: the
            action returns its own seconds (None: it did not end, the round is not counted)."""
            _settle(cluster, "bench")
            took, result, mb = in_own_process(action, *args, **kwargs)
            if self_timed:
                took = result
            if took is not None:
                seconds[phase].append(took)
            peak[phase] = max(peak[phase], mb)
            return result

        for round_no in range(1, repeat + 1):
            echo(f"bench.migration: round {round_no} of {repeat}")
            with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
                admin.execute("drop database if exists bench")
                admin.execute("create database bench template bench_template")
            reports.append(measure("full", migration.load, source, dsn, quiet=True,
                                   report_path=base / f"full-report-{round_no}.json"))
            if source_1x:
                with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
                    admin.execute("drop database if exists bench_1x")
                    admin.execute("create database bench_1x template bench_template")
                measure("full_1x", migration.load, source_1x, cluster.dsn("bench_1x"), quiet=True,
                        report_path=base / f"full-1x-{round_no}.json")
            rows = sum(t["source_rows"] for t in reports[-1]["tables"].values())
            measure("staging", staging.stage, dsn, pre, tables, "predictions", base / "pgloader-only",
                    staging.BATCH_ROWS)
            # the reference gets three times the loader's own staging time of this round
            measure("single", _pgloader_single, source, dsn, base / "pgloader-single", rows,
                    timeout=max(120.0, 3 * seconds["staging"][-1]), self_timed=True)
            measure("copy", _copy_floor, source, dsn, base, self_timed=True)

        mid = {p: median(seconds[p]) if seconds[p] else None for p in phases}
        full_s, staging_s, single_s, copy_s = mid["full"], mid["staging"], mid["single"], mid["copy"]
        # the target compares with the FASTER way to run pgloader alone, so that a slower staging
        # configuration can never make the ratio look better
        pgloader_s = min(x for x in (staging_s, single_s) if x is not None)
        report = reports[-1]

        table = Table(title=f"SQLite -> PostgreSQL, {rows:,} rows ({size} sample), one run on this machine, "
                            f"median of {repeat} round(s)", title_justify="left")
        for col in ("phase", "seconds", "min-max", "rows/s", "peak RSS MB", "x copy", "x pgloader"):
            table.add_column(col, justify="right" if col != "phase" else "left")
        for name, phase in (("full migration (invoke load)", "full"),
                            *((("full migration of the production size, same run", "full_1x"),)
                              if source_1x else ()),
                            ("pgloader alone: the loader's staging (2 processes)", "staging"),
                            ("pgloader alone: 1 process, all tables", "single"),
                            ("plain COPY floor (CSV export + COPY)", "copy")):
            secs = mid[phase]
            if secs is None:
                table.add_row(name, "did not end", "-", "-", f"{peak[phase]}", "-", "-")
                continue
            table.add_row(name, f"{secs:.2f}", f"{min(seconds[phase]):.2f}-{max(seconds[phase]):.2f}",
                          f"{rows / secs:,.0f}", f"{peak[phase]}", f"{secs / copy_s:.2f}",
                          f"{secs / pgloader_s:.2f}")
        console.print(table)
        console.print(f"full migration phases (last round): preflight {report['preflight']['seconds']} s, "
                      f"staging {report['staging']['seconds']} s, mapping {report['mapping_seconds']} s, "
                      f"transaction {report['transaction_seconds']} s (quarantined {report['quarantined_total']}, "
                      f"checksums {'all match' if all(t['checksum_match'] for t in report['tables'].values()) else 'MISMATCH'})")
        if source_1x:
            ratio_10x = full_s / mid["full_1x"]
            met = ratio_10x <= TARGET_10X_RATIO and peak["full"] < TARGET_10X_PEAK_MB
            console.print(f"target at 10x: full_s <= {TARGET_10X_RATIO} x the production-size load "
                          f"({mid['full_1x']:.2f} s) and peak RSS < {TARGET_10X_PEAK_MB:.0f} MB: "
                          f"{'met' if met else 'NOT met'} ({ratio_10x:.2f} x, {peak['full']} MB)")
        else:
            met = full_s <= TARGET_RATIO * pgloader_s and full_s < TARGET_SECONDS
            console.print(f"target full_s <= {TARGET_RATIO} x pgloader_s and < {TARGET_SECONDS} s: "
                          f"{'met' if met else 'NOT met'} ({full_s / pgloader_s:.2f} x)")
        result = {"full_s": round(full_s, 3), "pgloader_s": round(pgloader_s, 3), "copy_s": round(copy_s, 3),
                  "rows": rows, "full_over_pgloader": round(full_s / pgloader_s, 3), "target_met": met,
                  "repeat": repeat, "rounds_s": {p: [round(x, 3) for x in seconds[p]] for p in phases},
                  "preflight_s": report["preflight"]["seconds"], "staging_s": report["staging"]["seconds"],
                  "mapping_s": report["mapping_seconds"], "transaction_s": report["transaction_seconds"],
                  "transform_s": report["transform_seconds"],
                  "pgloader_staging_s": round(staging_s, 3), "pgloader_single_s": round(single_s, 3) if single_s else None,
                  "peak_rss_mb": {"full": peak["full"], "pgloader": peak["staging"],
                                  "pgloader_single": peak["single"], "copy": peak["copy"]},
                  "size": size, "seed": seed}
        if source_1x:
            result.update(full_1x_s=round(mid["full_1x"], 3), full_over_1x=round(full_s / mid["full_1x"], 3))
        print(json.dumps(result))
        return result
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)

