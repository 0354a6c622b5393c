"""Routine operations never lose data (issue 9), on real clusters, each on a loaded database holding
rows the app wrote: a re-deploy keeps every row, a load refuses to overwrite what the app wrote
(unless told), a live database refuses every load, unique values moving between rows sync, every
bad input is one clear line before anything changes, and the exit status says what happened."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from helpers import as_app, table_contents
from hrp_harness import HarnessError, migration
from hrp_harness.migration import sample
from hrp_harness.platform.deploy import deploy, deploy_and_load
from hrp_harness.platform.paths import REPO

SMALL = sample.Size(races=40, horses=300, predictions=2_000, users=20, credentials=4)


def quiet(*_args):
    pass


def load(path, dsn, **kw):
    return migration.load(path, dsn, quiet=True, report_path=Path(str(path) + ".report.json"), **kw)




def runs(dsn: str) -> list:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select run_id, status from hrp_migration.runs order by run_id").fetchall()


def cli(*args: str, state: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if state is not None:
        env["HRP_STATE_DIR"] = str(state)
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def loaded(schema_db, tmp_path):
    """(dsn, source): a database loaded from a small sample, then written by the app: a race
    inserted, a horse changed, a prediction deleted."""
    source = sample.generate(tmp_path / "app.sqlite", SMALL, seed=21)
    load(source, schema_db)
    as_app(schema_db,
           "insert into public.races (race_name, race_date) values ('Written By The App', '2026-12-01')",
           "update public.horses set jockey = 'App Jockey' where id = 7",
           "delete from public.predictions where id = 11")
    return schema_db, source


# -- deploy never touches rows of a database that holds data -----------------------------------------

@pytest.mark.cluster
def test_redeploy_keeps_every_row_of_a_loaded_database_the_app_wrote_to(pg_cluster):
    dsn = pg_cluster.dsn("hrp_redeploy_target")
    try:
        lines = []
        deploy_and_load(dsn, echo=lines.append)  # a new database: the sample goes in
        assert not any("data left alone" in line for line in lines)
        as_app(dsn, "insert into public.races (race_name, race_date) values ('App Race', '2026-12-01')",
               "update public.horses set trainer = 'App Trainer' where id = 3")
        before = table_contents(dsn)
        lines.clear()
        deploy_and_load(dsn, echo=lines.append)
        assert table_contents(dsn) == before
        assert any(line.startswith("data left alone: the database holds ") and "loaded by migration run 1"
                   in line for line in lines)
        assert [r for r in runs(dsn)] == [(1, "committed")]
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
            admin.execute("drop database if exists hrp_redeploy_target with (force)")


@pytest.mark.cluster
def test_deploy_leaves_rows_no_load_wrote_alone(pg_cluster, schema_db):
    as_app(schema_db, "insert into public.users (username, email, password_hash)"
                      " values ('app_user', 'app@example.com', 'h')")
    before = table_contents(schema_db)
    lines = []
    deploy_and_load(schema_db, echo=lines.append)
    assert table_contents(schema_db) == before
    assert any("data left alone: the database holds 1 rows in its five tables, written by no load" in line
               for line in lines)


# -- a load never silently overwrites the app's writes ----------------------------------------------

@pytest.mark.cluster
@pytest.mark.parametrize("incremental", [True, False], ids=["incremental", "full"])
def test_load_refuses_to_overwrite_what_the_app_wrote(loaded, incremental):
    dsn, source = loaded
    before = table_contents(dsn)
    with pytest.raises(HarnessError, match=r"the target changed since load run 1 \(the app wrote to it\?\): "
                                           r"horses: 0 inserted, 1 changed, 0 deleted; predictions: 0 inserted, "
                                           r"0 changed, 1 deleted; races: 1 inserted, 0 changed, 0 deleted\. "
                                           r"A load would overwrite or delete these rows; refused\n"
                                           r"hint: .*--discard-target-changes"):
        load(source, dsn, incremental=incremental)
    assert table_contents(dsn) == before
    assert runs(dsn) == [(1, "committed")]  # refused before any work


@pytest.mark.cluster
def test_discard_target_changes_overwrites_them_with_the_source(loaded):
    dsn, source = loaded
    report = load(source, dsn, incremental=True, discard_target_changes=True)
    assert report["target"].startswith("target changed since load run 1, changes discarded: horses: 0 "
                                       "inserted, 1 changed, 0 deleted")
    t = report["tables"]
    assert (t["races"]["deleted_rows"], t["horses"]["updated_rows"], t["predictions"]["inserted_rows"]) == (1, 1, 1)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from races where race_name = 'Written By The App'").fetchone()[0] == 0
    # and the next load sees the target as this one left it
    assert load(source, dsn, incremental=True)["target"] == f"target unchanged since load run {report['run_id']}"


@pytest.mark.cluster
def test_final_load_and_cutover_make_every_later_load_refuse(schema_db, tmp_path):
    source = sample.generate(tmp_path / "app.sqlite", SMALL, seed=22)
    final = load(source, schema_db, final=True)
    assert final["final"] is True
    for kwargs in ({}, {"incremental": True}, {"discard_target_changes": True}):
        with pytest.raises(HarnessError, match=rf"the database is live: marked at .* after load run "
                                               rf"{final['run_id']} .*every load is refused"):
            load(source, schema_db, **kwargs)
    with psycopg.connect(schema_db, autocommit=True) as conn:
        conn.execute("delete from hrp_migration.cutover")
    done = cli("cutover", "--dsn", schema_db)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"the database is live after load run {final['run_id']}: every later load is refused"
    with pytest.raises(HarnessError, match="the database is live"):
        load(source, schema_db, incremental=True)


# -- unique values that move between rows -------------------------------------------------------------

#: (table, key columns, ids): the ids' keys are rotated among them in the source (a swap for two)
MOVES = {
    "horse names swapped": ("horses", ("horse_name",), (1, 2)),
    "usernames swapped": ("users", ("username",), (1, 2)),
    "emails in a cycle of three": ("users", ("email",), (1, 2, 3)),
    "service names swapped": ("api_credentials", ("service_name",), (1, 2)),
    "prediction keys swapped": ("predictions", ("race_id", "horse_id", "algorithm_version"), (1, 2)),
}


def rotate_keys(con: sqlite3.Connection, table: str, cols: tuple, ids: tuple) -> str:
    """Rotates the keys of `ids` in the SQLite source as the app would (through placeholders: SQLite
    checks UNIQUE row by row too); returns the probe query of those rows."""
    probe = f"select id, {', '.join(cols)} from {table} where id in ({', '.join(map(str, ids))}) order by id"
    keys = [row[1:] for row in con.execute(probe)]
    for row_id in ids:
        con.execute(f"update {table} set {cols[-1]} = 'tmp-' || id where id = ?", (row_id,))
    for row_id, key in zip(ids, keys[1:] + keys[:1]):
        con.execute(f"update {table} set {', '.join(c + ' = ?' for c in cols)} where id = ?", (*key, row_id))
    return probe


@pytest.mark.cluster
@pytest.mark.parametrize("change", MOVES, ids=list(MOVES))
def test_unique_values_moving_between_rows_sync_in_one_incremental_load(schema_db, tmp_path, change):
    source = sample.generate(tmp_path / "app.sqlite", SMALL, seed=23)
    load(source, schema_db)
    con = sqlite3.connect(source, isolation_level=None)
    table, cols, ids = MOVES[change]
    before = con.execute(f"select id, {', '.join(cols)} from {table} where id in {ids!r} order by id").fetchall()
    probe = rotate_keys(con, table, cols, ids)
    after = con.execute(probe).fetchall()
    con.close()
    assert after != before and sorted(v[1:] for v in after) == sorted(v[1:] for v in before)
    report = load(source, schema_db, incremental=True)
    assert report["quarantined_total"] == 0
    assert report["tables"][table]["updated_rows"] == len(ids)
    with psycopg.connect(schema_db) as conn:
        assert [tuple(map(str, row)) for row in conn.execute(probe)] == [tuple(map(str, row)) for row in after]
        # no parent was deleted (deleting one would cascade to its predictions)
        assert conn.execute("select count(*) from predictions").fetchone()[0] == 2_000
        assert conn.execute("select count(*) from horses").fetchone()[0] == 300
    assert sum(t["deleted_rows"] for t in report["tables"].values()) == 0


# -- every input checked before anything is created or changed ------------------------------------------

@pytest.mark.cluster
@pytest.mark.parametrize("args, message", [
    (["--sqlite", "/nonexistent/app.sqlite"], "error: --sqlite /nonexistent/app.sqlite: no such file"),
    (["--sqlite", "/tmp"], "error: --sqlite /tmp: is a directory, not a SQLite file"),
    (["--sqlite", "{source}", "--max-quarantine", "abc"],
     "error: --max-quarantine must be a non-negative integer, got 'abc'"),
    (["--sqlite", "{source}", "--max-quarantine", "-1"],
     "error: --max-quarantine must be a non-negative integer, got '-1'"),
    (["--sqlite", "{source}", "--report", "/proc/x/r.json"],
     "error: --report /proc/x/r.json: directory /proc/x does not exist"),
    (["--sqlite", "{source}", "--report", "/proc/self/r.json"], "error: --report /proc/self/r.json: "),
    (["--sqlite", "{source}", "--source-timezone", "Mars/Olympus"],
     "error: --source-timezone 'Mars/Olympus' is not a time zone PostgreSQL knows"),
])
def test_bad_load_input_is_one_line_and_changes_nothing(loaded, tmp_path, args, message):
    dsn, source = loaded
    before = table_contents(dsn)
    done = cli("load", *[a.format(source=source) for a in args], "--dsn", dsn)
    assert done.returncode == 1
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert table_contents(dsn) == before and runs(dsn) == [(1, "committed")]


@pytest.mark.cluster
@pytest.mark.parametrize("args, message", [
    (["--sqlite", "/nonexistent/app.sqlite"], "error: --sqlite /nonexistent/app.sqlite: no such file"),
    (["--source-timezone", "Mars/Olympus"], "error: --source-timezone 'Mars/Olympus' is not a time zone"),
    (["--dsn", "postgresql://postgres@127.0.0.1:1/q'x"], "error: --dsn: database name \"q'x\" refused before"),
])
def test_bad_deploy_input_is_one_line_before_create_database(pg_cluster, args, message):
    dsn = ["--dsn", pg_cluster.dsn("hrp_never_created")] if "--dsn" not in args else []
    done = cli("deploy", *dsn, *args)
    assert done.returncode == 1
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        assert conn.execute("select count(*) from pg_database where datname = 'hrp_never_created'").fetchone()[0] == 0


@pytest.mark.cluster
@pytest.mark.parametrize("name", ["q'x", "x" * 64, "line\nbreak"], ids=["quote", "64 bytes", "newline"])
def test_a_database_name_a_tool_cannot_take_is_refused_before_create_database(pg_cluster, name):
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        before = conn.execute("select datname from pg_database order by 1").fetchall()
    with pytest.raises(HarnessError, match=r"--dsn: database name .* refused before anything was created"):
        deploy(pg_cluster.dsn(name), echo=quiet)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        assert conn.execute("select datname from pg_database order by 1").fetchall() == before


@pytest.mark.cluster
@pytest.mark.parametrize("name", ["a;b", "a b", "a$$b", 'hrp "db"; drop database postgres; --'])
def test_odd_database_names_deploy_and_load(pg_cluster, schema_template, tmp_path, name):
    source = sample.generate(tmp_path / "app.sqlite", SMALL, seed=24)
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name),
                                                                      sql.Identifier(schema_template)))
    try:
        report = migration.load(source, pg_cluster.dsn(name), quiet=True)
        assert {t: v["migrated_rows"] for t, v in report["tables"].items()}["predictions"] == 2_000
        assert Path(report["report_file"]).parent == REPO / "reports"
        assert "/" not in Path(report["report_file"]).name[len("migration-"):]
        Path(report["report_file"]).unlink()
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


@pytest.mark.cluster
def test_a_source_path_with_spaces_and_quotes_loads(schema_db, tmp_path):
    folder = tmp_path / "app data (copy)"
    folder.mkdir()
    source = sample.generate(folder / "it's the app's; file.sqlite", SMALL, seed=25)
    report = load(source, schema_db)
    assert report["tables"]["predictions"]["migrated_rows"] == 2_000
    assert report["source"] == str(source)


# -- the exit status never lies ------------------------------------------------------------------------

@pytest.mark.cluster
def test_a_failure_after_the_commit_says_the_load_is_committed(schema_db, tmp_path, monkeypatch):
    source = sample.generate(tmp_path / "app.sqlite", SMALL, seed=26)

    def full_disk(self, run_id):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(migration.ReportFile, "publish", full_disk)
    with pytest.raises(migration.CommittedError, match=r"load run 1 IS committed, but a step after the commit "
                                                     r"failed: \[Errno 28\] No space left on device") as raised:
        load(source, schema_db)
    assert raised.value.exit_status == 3
    assert runs(schema_db) == [(1, "committed")]
    assert not list(tmp_path.glob(".hrp-report-*"))  # its temporary file went


@pytest.mark.unit
@pytest.mark.parametrize("raised, status, line", [
    ("HarnessError('a user error')", 1, "error: a user error"),
    ("CommittedError('load run 7 IS committed, but x failed')", 3, "error: load run 7 IS committed"),
    ("RuntimeError('boom')", 1, "error: unexpected RuntimeError: boom (a bug in the harness; the traceback is in "),
])
def test_task_errors_are_one_line_with_their_exit_status(tmp_path, raised, status, line):
    code = ("import tasks\nfrom hrp_harness import HarnessError\nfrom hrp_harness.migration import CommittedError\n"
            f"raise {raised}\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HRP_STATE_DIR": str(tmp_path)})
    assert done.returncode == status
    assert done.stderr.startswith(line) and len(done.stderr.strip().splitlines()) == 1
    if "unexpected" in line:
        log = Path(done.stderr.strip().rsplit(" ", 1)[1].rstrip(")"))
        assert log.parent == tmp_path / "logs" and "RuntimeError: boom" in log.read_text()


# -- what a failed load leaves -----------------------------------------------------------------------------

@pytest.mark.cluster
def test_a_failed_load_leaves_no_copy_of_the_source_and_prunes_old_work_dirs(schema_db, tmp_path, monkeypatch):
    monkeypatch.setenv("HRP_STATE_DIR", str(tmp_path / "state"))
    workroot = tmp_path / "state" / "loads"
    workroot.mkdir(parents=True)
    for n in range(8):  # work directories of earlier failed loads, oldest first
        old = workroot / f"hrp-pgloader-old{n}"
        old.mkdir(exist_ok=True)
        os.utime(old, (1_000_000 + n, 1_000_000 + n))
    source = sample.generate(tmp_path / "app.sqlite", SMALL, seed=27)
    con = sqlite3.connect(source)
    con.execute("update races set race_type = 'chariot' where id = 1")  # quarantines 1 + its predictions
    con.commit()
    con.close()
    with pytest.raises(HarnessError, match="quarantine limit exceeded"):
        load(source, schema_db, max_quarantine=0)
    with psycopg.connect(schema_db) as conn:
        staged = conn.execute(
            "select c.relname, c.reltuples from pg_class as c where c.relnamespace = 'hrp_migration_stage'::regnamespace"
            " and c.relkind = 'r'").fetchall()
        assert staged
        for (table,) in conn.execute("select c.relname from pg_class as c"
                                     " where c.relnamespace = 'hrp_migration_stage'::regnamespace and c.relkind = 'r'"):
            assert conn.execute(sql.SQL("select count(*) from {}").format(
                sql.Identifier("hrp_migration_stage", table))).fetchone()[0] == 0, table
        assert conn.execute("select count(*) from pg_inherits"
                            " where inhparent = 'hrp_migration.row_fingerprints'::regclass").fetchone()[0] == 0
    kept = sorted(d.name for d in workroot.iterdir() if d.name.startswith("hrp-pgloader-old"))
    assert kept == [f"hrp-pgloader-old{n}" for n in range(3, 8)]
