"""Routine maintenance (issue 15) on real clusters: deploy schedules the jobs in pg_cron, every job
runs on a loaded database with rows the app wrote and changes none of them, pg_repack rebuilds a
table under write load without losing a write (and the longest wait of a write is measured), bad
inputs are one line before anything changes, the systemd units verify. The slow test lets pg_cron
itself run every job and records a failing one in cron.job_run_details."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from helpers import as_app, table_contents
from hrp_harness import HarnessError
from hrp_harness.platform.cluster import free_port
from hrp_harness.ops.maintenance import (CRON_SYNC_SQL, SYSTEMD_DIR, first_sundays, repack, report,
                                     run_job, schedule_jobs, timers, window)
from hrp_harness.platform.paths import REPO
from hrp_harness.platform.psql import run_file

FILL_SQL = REPO / "data" / "bench" / "predictions_fill.sql"
JOBS = ("daily_vacuum_analyze", "weekly_report", "monthly_capacity")


def quiet(*_args):
    pass


def dbname(dsn: str) -> str:
    return conninfo_to_dict(dsn)["dbname"]


def fill(dsn: str, races: int = 200, horses: int = 1000, predictions: int = 10_000) -> None:
    run_file(dsn, FILL_SQL, variables={"races": str(races), "horses": str(horses),
                                       "predictions": str(predictions), "months": "24"})




def cron_jobs(cluster, database: str) -> list[tuple]:
    with psycopg.connect(cluster.dsn("postgres")) as conn:
        return conn.execute("select jobname, schedule, command, database, active from cron.job"
                            " where database = %s order by jobname", (database,)).fetchall()


def unschedule(dsn: str) -> None:
    """Remove every pg_cron job of the database (the sync script with an empty schedule)."""
    run_file(make_conninfo(dsn, dbname="postgres"), CRON_SYNC_SQL,
             variables={"database": dbname(dsn), "jobs": "[]"})


def wait_for_counts(dsn: str, table: str, counter: str = "n_dead_tup", timeout: float = 10) -> int:
    """Statistics reach the shared counters when a backend flushes them (at the latest when it
    exits): wait until the table's counter (a pg_stat_user_tables column) shows rows."""
    query = sql.SQL("select {} from pg_stat_user_tables where relid = %s::regclass").format(
        sql.Identifier(counter))
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            conn.execute("select pg_stat_clear_snapshot()")
            count = conn.execute(query, (table,)).fetchone()[0]
            if count > 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.1)


@pytest.fixture
def loaded(schema_db):
    """A clone with generated rows, then written by the app: a race inserted, a horse changed,
    3,000 predictions deleted (dead tuples); its jobs scheduled in pg_cron (removed after)."""
    fill(schema_db)
    as_app(schema_db,
           "insert into public.races (race_name, race_date) values ('Written By The App', '2026-12-01')",
           "update public.horses set jockey = 'App Jockey' where id = 7",
           "delete from public.predictions where id % 10 < 3")
    schedule_jobs(schema_db, echo=quiet)
    try:
        yield schema_db
    finally:
        unschedule(schema_db)


# -- scheduling -----------------------------------------------------------------------------------

@pytest.mark.cluster
def test_deploy_schedules_every_job_of_the_schedule_in_pg_cron(pg_cluster, app_database):
    with psycopg.connect(app_database) as conn:
        schedule = conn.execute("select job_name || '@hrp_database', schedule, command,"
                                " 'hrp_database', true from hrp_maintenance.schedule order by 1").fetchall()
    assert [row[0] for row in schedule] == [f"{job}@hrp_database" for job in sorted(JOBS)]
    assert cron_jobs(pg_cluster, "hrp_database") == schedule


@pytest.mark.cluster
def test_a_second_sync_keeps_the_jobs_a_paused_job_and_drops_a_job_the_schedule_lost(pg_cluster, schema_db):
    db = dbname(schema_db)
    try:
        first = schedule_jobs(schema_db, echo=quiet)
        with psycopg.connect(pg_cluster.dsn("postgres")) as conn:
            ids = dict(conn.execute("select jobname, jobid from cron.job where database = %s", (db,)))
            conn.execute("select cron.alter_job(%s, active => false)", (ids[f"weekly_report@{db}"],))
        with psycopg.connect(schema_db) as conn:
            conn.execute("delete from hrp_maintenance.schedule where job_name = 'monthly_capacity'")
        lines: list[str] = []
        second = schedule_jobs(schema_db, echo=lines.append)
        with psycopg.connect(pg_cluster.dsn("postgres")) as conn:
            after = dict(conn.execute("select jobname, jobid from cron.job where database = %s", (db,)))
        assert len(first.jobs) == 3
        assert [(name, active) for name, _, active in second.jobs] == [
            (f"daily_vacuum_analyze@{db}", True), (f"weekly_report@{db}", False)]
        assert after == {name: ids[name] for name in after}  # the same jobs, not new ones
        assert "(paused)" in lines[-1]
    finally:
        unschedule(schema_db)
    assert cron_jobs(pg_cluster, db) == []


@pytest.mark.cluster
def test_the_monitoring_role_sees_the_jobs_of_its_database(loaded):
    """What the exporter's hrp_maintenance_job query reads (conf/monitoring/postgres_exporter_queries.yml)."""
    db = dbname(loaded)
    with psycopg.connect(loaded) as conn:
        conn.execute("set role hrp_monitor")
        rows = conn.execute("select jobname, active, runs, failed_runs, last_status"
                            " from hrp_maintenance.cron_job_runs() order by 1").fetchall()
    assert rows == [(f"{job}@{db}", True, 0, 0, None) for job in sorted(JOBS)]


# -- every job on a loaded database --------------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.parametrize("job", JOBS)
def test_each_job_runs_on_a_loaded_database_and_changes_no_row_the_app_wrote(loaded, job):
    before = table_contents(loaded)
    wait_for_counts(loaded, "public.predictions")
    done = run_job(loaded, f"{job}@{dbname(loaded)}")
    assert table_contents(loaded) == before
    assert done.run_id is not None and done.findings
    with psycopg.connect(loaded) as conn:
        finished = conn.execute("select job, finished_at is not null from hrp_maintenance.runs"
                                " where run_id = %s", (done.run_id,)).fetchone()
    assert finished == (job, True)
    kinds = {kind for _, kind, _, _ in done.findings}
    expected = {"daily_vacuum_analyze": {"vacuum_analyze", "disk_usage"},
                "weekly_report": {"unused_index", "slow_statement"},
                "monthly_capacity": {"table_size", "index_size", "disk_usage"}}[job]
    assert expected <= kinds


@pytest.mark.cluster
def test_the_daily_job_vacuums_the_table_the_app_deleted_from(loaded):
    assert wait_for_counts(loaded, "public.predictions") >= 3000
    done = run_job(loaded, "daily_vacuum_analyze")  # the schedule's name works too
    vacuumed = {obj: fig for _, kind, obj, fig in done.findings if kind == "vacuum_analyze"}
    assert vacuumed["predictions"]["done"] is True
    assert vacuumed["predictions"]["dead_tuples"] >= 3000
    with psycopg.connect(loaded, autocommit=True) as conn:
        conn.execute("select pg_stat_clear_snapshot()")
        dead, vacuums = conn.execute("select n_dead_tup, vacuum_count from pg_stat_user_tables"
                                     " where relid = 'public.predictions'::regclass").fetchone()
    assert (dead, vacuums) == (0, 1)


@pytest.mark.cluster
def test_the_daily_job_analyzes_a_partitioned_table_whose_partitions_changed(schema_db):
    with psycopg.connect(schema_db) as conn:
        conn.execute("create table public.hrp_parted (id integer, v integer) partition by range (id)")
        conn.execute("create table public.hrp_parted_1 partition of public.hrp_parted for values from (0) to (1000)")
        conn.execute("create table public.hrp_parted_2 partition of public.hrp_parted for values from (1000) to (2000)")
        conn.execute("insert into public.hrp_parted select g, g from generate_series(0, 1999) as g")
    for partition in ("public.hrp_parted_1", "public.hrp_parted_2"):
        assert wait_for_counts(schema_db, partition, "n_live_tup") == 1000
    done = run_job(schema_db, "daily_vacuum_analyze")
    analyzed = {obj: fig["done"] for _, kind, obj, fig in done.findings if kind == "analyze"}
    assert {k: v for k, v in analyzed.items() if k.startswith("hrp_parted")} == {
        "hrp_parted": True, "hrp_parted_1": True, "hrp_parted_2": True}
    with psycopg.connect(schema_db) as conn:  # the planner now has statistics for the whole table
        assert conn.execute("select count(*) from pg_stats where tablename = 'hrp_parted'"
                            " and inherited").fetchone()[0] == 2


@pytest.mark.cluster
def test_the_weekly_report_resets_the_statements_of_its_database_only(loaded, pg_cluster):
    marker = "select 1 as hrp_weekly_reset_marker"
    for dsn in (loaded, pg_cluster.dsn("postgres")):
        with psycopg.connect(dsn) as conn:
            conn.execute(marker)
    run_job(loaded, "weekly_report")
    with psycopg.connect(loaded) as conn:
        left = dict(conn.execute(
            "select d.datname, count(*) from hrp_monitor.pg_stat_statements as s"
            " join pg_database as d on s.dbid = d.oid where s.query like '%%hrp_weekly_reset_marker%%'"
            " group by 1").fetchall())
    assert left == {"postgres": 1}


@pytest.mark.cluster
def test_report_and_window_show_the_latest_findings_and_the_schedule(loaded):
    run_job(loaded, "monthly_capacity")
    lines = report(loaded)
    assert lines[0].split() == ["job", "run", "time", "kind", "object", "figures"]
    assert any(" table_size " in line and " predictions " in line and "bytes=" in line for line in lines)
    assert report(loaded, "disk_usage")[2].split()[5] == "disk_usage"  # job run date time UTC kind
    with pytest.raises(HarnessError, match="no findings of kind 'slow_statement'"):
        report(loaded, "slow_statement")
    text = "\n".join(window(loaded))
    db = dbname(loaded)
    for job in JOBS:
        assert f"{job}@{db}" in text
    for timer in ("hrp-backup-check.timer", "hrp-recovery-test.timer", "hrp-repack.timer"):
        assert timer in text
    assert "first Sunday of each month, 02:00-06:00 UTC" in text


# -- pg_repack under write load ------------------------------------------------------------------

#: pg_repack's objects: its work tables (repack.log_<oid>, repack.table_<oid>) come and go with a
#: rebuild, and so does the trigger it puts on the table.
REPACK_OBJECTS = ("select (select count(*) from pg_class where relnamespace = 'repack'::regnamespace)"
                  " + (select count(*) from pg_trigger where tgname like 'repack%%')")


class Writers:
    """Two application sessions (SET ROLE hrp_app) writing until stopped: one inserts predictions,
    one updates the confidence of existing ones; every acknowledged commit is remembered, with
    the longest time a write took (statement + commit)."""

    def __init__(self, dsn: str, update_ids: list[int]):
        self.dsn = dsn
        self.update_ids = update_ids
        self.inserted: dict[int, tuple] = {}
        self.updated: dict[int, str] = {}
        self.longest_s = 0.0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._insert), threading.Thread(target=self._update)]

    def _timed(self, conn, query, params):
        started = time.monotonic()
        with conn.transaction():
            row = conn.execute(query, params).fetchone()
        self.longest_s = max(self.longest_s, time.monotonic() - started)
        return row

    def _session(self):
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute("set role hrp_app")
        return conn

    def _insert(self):
        n = 0
        try:
            with self._session() as conn:
                while not self.stop.is_set():
                    n += 1
                    values = (1 + n % 200, 1 + (n * 7) % 1000, f"{n}.000000", f"w-{n}")
                    row = self._timed(conn, "insert into public.predictions (race_id, horse_id,"
                                      " prediction_value, algorithm_version) values (%s, %s, %s, %s)"
                                      " returning id", values)
                    self.inserted[row[0]] = values
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"insert: {exc}")

    def _update(self):
        n = 0
        try:
            with self._session() as conn:
                while not self.stop.is_set():
                    target = self.update_ids[n % len(self.update_ids)]
                    n += 1
                    confidence = f"{(n % 10000) / 10000:.4f}"
                    self._timed(conn, "update public.predictions set confidence = %s where id = %s"
                                " returning id", (confidence, target))
                    self.updated[target] = confidence
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"update: {exc}")

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


@pytest.mark.cluster
def test_repack_under_write_load_loses_no_write_and_measures_the_longest_wait(schema_db, capsys):
    fill(schema_db, races=200, horses=1000, predictions=60_000)
    with psycopg.connect(schema_db) as conn:
        conn.execute("delete from public.predictions where id % 2 = 0")  # half the table is dead
        update_ids = [i for (i,) in conn.execute("select id from public.predictions order by id limit 500")]
        filenode_before = conn.execute("select pg_relation_filenode('public.predictions')").fetchone()[0]
        objects_before = conn.execute(REPACK_OBJECTS).fetchone()[0]
    with Writers(schema_db, update_ids) as writers:
        time.sleep(0.5)
        started = time.monotonic()
        done = repack(schema_db, "public.predictions", echo=quiet)
        repack_s = time.monotonic() - started
        time.sleep(0.5)
    assert writers.errors == []
    assert len(writers.inserted) > 50 and len(writers.updated) > 50
    with psycopg.connect(schema_db) as conn:
        found = dict(((row[0], row[1:]) for row in conn.execute(
            "select id, race_id, horse_id, prediction_value::text, algorithm_version"
            " from public.predictions where id = any(%s)", (list(writers.inserted),))))
        confidences = dict(conn.execute("select id, confidence::text from public.predictions"
                                        " where id = any(%s)", (list(writers.updated),)).fetchall())
        filenode_after = conn.execute("select pg_relation_filenode('public.predictions')").fetchone()[0]
        leftovers = conn.execute(REPACK_OBJECTS).fetchone()[0]
    assert found == {i: v for i, v in writers.inserted.items()}, "an acknowledged insert is missing"
    assert confidences == writers.updated, "an acknowledged update is missing"
    assert filenode_after != filenode_before and leftovers == objects_before
    [table] = done
    assert table.bytes_after < table.bytes_before * 0.8
    with capsys.disabled():
        print(f"\nrepack of predictions ({table.bytes_before / 2**20:.1f} -> {table.bytes_after / 2**20:.1f} MB)"
              f" in {repack_s:.1f} s under write load: {len(writers.inserted)} inserts and "
              f"{sum(1 for _ in writers.updated)} rows updated, none lost; longest write "
              f"{writers.longest_s * 1000:.0f} ms")
    assert writers.longest_s < 10, "a write waited more than 10 s for pg_repack's locks"


@pytest.mark.cluster
def test_repack_without_a_table_rebuilds_only_what_is_bloated(schema_db):
    fill(schema_db, races=200, horses=1000, predictions=30_000)
    with psycopg.connect(schema_db, autocommit=True) as conn:
        conn.execute("delete from public.predictions where id % 4 <> 0")
        conn.execute("vacuum public.predictions")  # free space, not dead tuples: still bloat
    done = repack(schema_db, echo=quiet)
    names = {(d.kind, d.name) for d in done}
    assert ("table", "predictions") in names
    assert not any(name.startswith(("races", "horses")) for _, name in names)
    with psycopg.connect(schema_db) as conn:
        recorded = conn.execute("select f.object from hrp_maintenance.findings as f join hrp_maintenance.runs"
                                " as r using (run_id) where r.job = 'repack' and f.kind = 'repacked'"
                                " order by 1").fetchall()
    assert sorted(name for _, name in names) == [name for (name,) in recorded]
    assert repack(schema_db, echo=quiet) == []  # nothing bloated any more


# -- bad inputs: one line, before anything changes ------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))


def runs(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select count(*) from hrp_maintenance.runs").fetchone()[0]


@pytest.mark.cluster
@pytest.mark.parametrize("args, message", [
    (("maintenance.run", "no_such_job"), "error: unknown maintenance job 'no_such_job' in {db}: the jobs are "
                                         "daily_vacuum_analyze@{db}, monthly_capacity@{db}, weekly_report@{db}"),
    (("maintenance.repack", "--table", "public.no_such_table"),
     "error: --table 'public.no_such_table': no such table in {db}"),
    (("maintenance.repack", "--table", "public.hrp_keyless"),
     "error: --table 'public.hrp_keyless': pg_repack needs a primary key or a unique index on NOT NULL "
     "columns, and hrp_keyless has neither"),
    (("maintenance.report", "--kind", "no_such_kind"), "error: no findings of kind 'no_such_kind' in {db}"),
])
def test_a_bad_input_is_one_line_and_changes_nothing(schema_db, args, message):
    db = dbname(schema_db)
    with psycopg.connect(schema_db) as conn:
        conn.execute("create table public.hrp_keyless (x integer)")
    done = cli(*args, "--dsn", schema_db)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0].startswith(message.format(db=db)), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert runs(schema_db) == 0


@pytest.mark.unit
def test_a_missing_server_is_one_line():
    dsn = f"host=127.0.0.1 port={free_port()} dbname=hrp_database user=postgres sslmode=disable"
    done = cli("maintenance.run", "daily_vacuum_analyze", "--dsn", dsn)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot connect to PostgreSQL at 127.0.0.1:")
    assert len(done.stderr.strip().splitlines()) == 1


# -- the schedule outside pg_cron ------------------------------------------------------------------

@pytest.mark.unit
def test_systemd_units_verify_and_run_existing_tasks(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: `./hrp setup` installs systemd (packages.txt)"
    for unit in SYSTEMD_DIR.iterdir():
        shutil.copy(unit, tmp_path / unit.name)
    units = sorted(str(p) for p in tmp_path.iterdir())
    done = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    listed = subprocess.run([str(REPO / ".venv" / "bin" / "invoke"), "--list"], cwd=REPO,
                            capture_output=True, text=True).stdout.split()
    found = timers()
    assert {t.unit for t in found} == {"hrp-backup-check.timer", "hrp-recovery-test.timer",
                                       "hrp-repack.timer"}
    for timer in found:
        task = timer.command.split('/hrp" ', 1)[1].split()[0]
        assert task in listed, f"{timer.unit} runs {task}, which is no task"
        assert timer.next_elapse().endswith("UTC")
    repack_timer = next(t for t in found if t.unit == "hrp-repack.timer")
    assert repack_timer.on_calendar == "Sun *-*-01..07 02:30:00 UTC"  # inside the spec's window


@pytest.mark.unit
def test_the_monthly_window_is_on_the_first_sunday():
    import datetime as dt

    assert first_sundays(dt.date(2026, 12, 1), 3) == [dt.date(2026, 12, 6), dt.date(2027, 1, 3),
                                                     dt.date(2027, 2, 7)]
    assert first_sundays(dt.date(2026, 11, 1), 1) == [dt.date(2026, 11, 1)]


# -- pg_cron itself runs the jobs (minutes) --------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.slow
def test_pg_cron_runs_every_job_and_a_failing_job_shows_in_job_run_details(pg_cluster, loaded):
    db = dbname(loaded)
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as conn:
        for job in JOBS:
            jobid = conn.execute("select jobid from cron.job where jobname = %s", (f"{job}@{db}",)).fetchone()[0]
            conn.execute("select cron.alter_job(%s, schedule => '* * * * *')", (jobid,))
        conn.execute("select cron.schedule_in_database(%s, '* * * * *', 'select hrp_maintenance.no_such_job()', %s)",
                     (f"broken@{db}", db))
        deadline = time.monotonic() + 150
        while True:
            rows = dict(conn.execute(
                "select j.jobname, (select d.status || ': ' || coalesce(d.return_message, '')"
                " from cron.job_run_details as d where d.jobid = j.jobid and d.status in"
                " ('succeeded', 'failed') order by d.runid limit 1)"
                " from cron.job as j where j.database = %s", (db,)).fetchall())
            if all(rows.values()) or time.monotonic() > deadline:
                break
            time.sleep(2)
    for job in JOBS:
        assert rows[f"{job}@{db}"].startswith("succeeded"), rows
    assert rows[f"broken@{db}"].startswith("failed: ERROR: function hrp_maintenance.no_such_job() does not exist"), rows
    with psycopg.connect(loaded) as conn:
        ran = {job for (job,) in conn.execute("select distinct job from hrp_maintenance.runs")}
        conn.execute("set role hrp_monitor")  # what the exporter counts
        failed = dict(conn.execute("select jobname, failed_runs from hrp_maintenance.cron_job_runs()").fetchall())
    assert ran == set(JOBS)
    assert failed[f"broken@{db}"] >= 1 and all(failed[f"{job}@{db}"] == 0 for job in JOBS)
