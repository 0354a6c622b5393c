"""The schema renames of schema/0031 (migration* -> hrp_migration*, maintenance -> hrp_maintenance)
on a database that main's code deployed and loaded: the upgrade path. main's tree (the commit
before the rename) deploys a new database and loads a real-shape file into it, the app writes,
then this tree deploys over it: every row is kept, the load's records (runs and their reports,
the mapping, quarantine, extras, unmapped tables, row fingerprints) are readable under the new
names, pg_cron's jobs call the renamed functions, and loads go on (the guard compares with the
fingerprints main's load left)."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hrp_harness import HarnessError, migration
from hrp_harness.migration import sample
from hrp_harness.platform.deploy import deploy_and_load
from hrp_harness.ops.maintenance import CRON_SYNC_SQL
from hrp_harness.platform.paths import REPO
from hrp_harness.platform.psql import run_file

#: main as released before schema/0031 (the merge of branch perf): the tree that deploys first.
pytestmark = pytest.mark.cluster

MAIN_BEFORE_RENAME = "e7ecd6056f1b39ed73aef26bd018de6a3e94bdce"
RENAMED = {"migration": "hrp_migration", "migration_stage": "hrp_migration_stage",
           "migration_work": "hrp_migration_work", "migration_unmapped": "hrp_migration_unmapped",
           "maintenance": "hrp_maintenance"}
RENAME_FILE = REPO / "schema" / "0031_schema_names_hrp_prefix.sql"
SMALL = sample.Size(races=40, horses=300, predictions=2_000, users=20, credentials=4)
APP_MAPPING = "data/mappings/hrp-app-2025.toml"  # relative: each tree loads with its own copy
DBNAME = "hrp_upgrade_target"

#: What main's code runs, in main's tree: `invoke deploy --dsn`, then a load of the app's shape.
MAIN_DEPLOY_AND_LOAD = """
import sys
from pathlib import Path
from hrp_harness import migration
from hrp_harness.deploy import deploy  # main's flat layout of that commit
dsn, source, mapping = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
deploy(dsn, echo=lambda *_: None)
migration.load(source, dsn, quiet=True, mapping=mapping, report_path=Path(str(source) + ".main.json"))
"""


def main_tree(into: Path) -> Path:
    """main's files at MAIN_BEFORE_RENAME (git archive), or a skip when this clone lacks it."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", MAIN_BEFORE_RENAME],
                             capture_output=True, timeout=120)
    if archive.returncode != 0:
        pytest.skip(f"main before the rename ({MAIN_BEFORE_RENAME[:10]}) is not in this clone: "
                    f"{archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into)
    return into


def tables(dsn: str, schemas: list[str]) -> dict[tuple[str, str], tuple[int, str]]:
    """(schema, table) -> (row count, md5 of the rows as text in text order) of every table of the
    schemas, the schema named by its new name."""
    with psycopg.connect(dsn) as conn:
        names = conn.execute("select schemaname, tablename from pg_tables where schemaname = any(%s)"
                             " order by 1, 2", (schemas,)).fetchall()
        return {(RENAMED.get(schema, schema), table): conn.execute(
            sql.SQL("select count(*), md5(coalesce(string_agg(t::text, E'\\n' order by t::text), ''))"
                    " from {} as t").format(sql.Identifier(schema, table))).fetchone()
            for schema, table in names}


def cron_jobs(dsn: str) -> dict[str, tuple[int, str, bool]]:
    """jobname -> (jobid, command, active) of the target database's pg_cron jobs."""
    with psycopg.connect(make_conninfo(dsn, dbname="postgres")) as conn:
        return {name: (jobid, command, active) for name, jobid, command, active in conn.execute(
            "select jobname, jobid, command, active from cron.job where database = %s", (DBNAME,))}


@pytest.fixture
def main_loaded(pg_cluster, tmp_path):
    """(dsn, source): a new database deployed by main's code and loaded by it from a file of the
    app's real shape (its mapping: extras, an unmapped table, quarantined rows), then written by
    the app (a race inserted, a horse changed). Dropped after, its pg_cron jobs removed."""
    dsn = pg_cluster.dsn(DBNAME)
    tree = main_tree(tmp_path / "main")
    source = sample.generate(tmp_path / "app.sqlite", SMALL, seed=35, shape="app")
    try:
        done = subprocess.run([sys.executable, "-c", MAIN_DEPLOY_AND_LOAD, dsn, str(source), APP_MAPPING],
                              cwd=tree, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        with psycopg.connect(dsn) as conn:
            conn.execute("set role hrp_app")
            conn.execute("insert into public.races (race_name, race_date) values ('Written By The App', "
                         "'2026-12-01')")
            conn.execute("update public.horses set jockey = 'App Jockey' where id = 7")
        yield dsn, source
    finally:
        run_file(make_conninfo(dsn, dbname="postgres"), CRON_SYNC_SQL,
                 variables={"database": DBNAME, "jobs": "[]"})
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DBNAME)))


def test_deploying_over_mains_loaded_database_renames_the_schemas_and_keeps_every_row(main_loaded):
    dsn, source = main_loaded
    old = list(RENAMED)
    before = tables(dsn, ["public", *old])
    jobs_before = cron_jobs(dsn)
    with psycopg.connect(dsn) as conn:
        schedule_before = conn.execute("select job_name, schedule, description from maintenance.schedule"
                                       " order by 1").fetchall()
        report_before = conn.execute("select report from migration.runs where run_id = 1").fetchone()[0]
    assert {command for _, command, _ in jobs_before.values()} == {
        "select maintenance.daily_vacuum_analyze()", "select maintenance.weekly_report()",
        "select maintenance.monthly_capacity()"}
    assert any(table == "row_fingerprints" for _, table in before)

    lines = []
    deploy_and_load(dsn, echo=lines.append)  # this tree: the pending files, then the data left alone

    assert any(line.startswith("data left alone: the database holds ") and "loaded by migration run 1"
               in line for line in lines)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select array_agg(nspname order by nspname) from pg_namespace"
                            " where nspname = any(%s)", (old,)).fetchone()[0] is None
        assert conn.execute("select count(*) from pg_namespace where nspname = any(%s)",
                            (list(RENAMED.values()),)).fetchone()[0] == 5
    # every row of every table of public and of the renamed schemas, unchanged
    schedule_key = ("hrp_maintenance", "schedule")
    after = tables(dsn, ["public", *RENAMED.values()])
    assert {k: v for k, v in after.items() if k != schedule_key} == \
        {k: v for k, v in before.items() if k != schedule_key}
    with psycopg.connect(dsn) as conn:
        # the schedule: its rows kept, the commands calling the renamed functions
        assert conn.execute("select job_name, schedule, description from hrp_maintenance.schedule"
                            " order by 1").fetchall() == schedule_before
        assert conn.execute("select bool_and(command = 'select hrp_maintenance.' || job_name || '()')"
                            " from hrp_maintenance.schedule").fetchone()[0] is True
        # the load's records, readable under the new names
        assert conn.execute("select run_id, status from hrp_migration.runs").fetchall() == [(1, "committed")]
        assert conn.execute("select report from hrp_migration.runs where run_id = 1").fetchone()[0] == \
            report_before
        assert conn.execute("select mapping -> 'unmapped_tables' from hrp_migration.runs").fetchone()[0] == \
            ["race_horses"]
        assert conn.execute("select count(*) from hrp_migration.column_map").fetchone()[0] > 0
        assert conn.execute("select count(*) from hrp_migration_unmapped.race_horses").fetchone()[0] > 0
        assert conn.execute("select count(*) from hrp_migration.row_fingerprints").fetchone()[0] == sum(
            count for (schema, table), (count, _) in before.items()
            if schema == "public" and table in migration.TABLES) - 1  # the race the app inserted
        # pg_cron's jobs: the same jobs (ids, paused or not), now calling hrp_maintenance
        jobs_after = cron_jobs(dsn)
        assert {name: (jobid, active) for name, (jobid, _, active) in jobs_after.items()} == \
            {name: (jobid, active) for name, (jobid, _, active) in jobs_before.items()}
        assert {command for _, command, _ in jobs_after.values()} == {
            "select hrp_maintenance.daily_vacuum_analyze()", "select hrp_maintenance.weekly_report()",
            "select hrp_maintenance.monthly_capacity()"}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _, command, _ in jobs_after.values():
            conn.execute(command)  # what pg_cron will run: each job works in the renamed schema
        assert conn.execute("select count(*) from hrp_maintenance.runs where finished_at is not null"
                            ).fetchone()[0] == 3

    # loads go on: the guard reads main's row fingerprints and names exactly what the app wrote
    mapping = REPO / APP_MAPPING
    with pytest.raises(HarnessError, match=r"the target changed since load run 1 \(the app wrote to it\?\): "
                                           r"horses: 0 inserted, 1 changed, 0 deleted; .*races: 1 inserted, "
                                           r"0 changed, 0 deleted\."):
        migration.load(source, dsn, quiet=True, mapping=mapping, incremental=True,
                       report_path=Path(str(source) + ".refused.json"))
    src = sqlite3.connect(source)
    src.execute("update races set weather = 'Changed At The Source' where id = 2")
    src.commit()
    src.close()
    report = migration.load(source, dsn, quiet=True, mapping=mapping, incremental=True,
                            discard_target_changes=True, report_path=Path(str(source) + ".2.json"))
    assert report["target"].startswith("target changed since load run 1, changes discarded")
    races = report["tables"]["races"]
    assert (races["inserted_rows"], races["updated_rows"], races["deleted_rows"]) == (0, 1, 1)
    assert report["tables"]["horses"]["updated_rows"] == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select weather_conditions from public.races where id = 2").fetchone()[0] == \
            "Changed At The Source"
        assert conn.execute("select run_id, status from hrp_migration.runs order by 1").fetchall() == \
            [(1, "committed"), (2, "committed")]
    again = migration.load(source, dsn, quiet=True, mapping=mapping, incremental=True,
                           report_path=Path(str(source) + ".3.json"))
    assert again["target"] == f"target unchanged since load run {report['run_id']}"


def test_the_rename_refuses_when_an_old_and_its_new_name_both_exist(schema_db):
    """A schema under the old name beside its renamed one (someone re-created it): the file
    stops, naming both, and changes nothing."""
    with psycopg.connect(schema_db, autocommit=True) as conn:
        conn.execute("create schema maintenance")
    with pytest.raises(HarnessError, match=r"schemas maintenance and hrp_maintenance both exist: refusing "
                                           r"to rename one onto the other"):
        run_file(schema_db, RENAME_FILE)
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select count(*) from pg_namespace where nspname in"
                            " ('maintenance', 'hrp_maintenance')").fetchone()[0] == 2
