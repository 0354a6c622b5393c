"""invoke apply: versioned files once, repeatable files on change, refusals, dry runs, rollback."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from hrp_harness import HarnessError
from hrp_harness.platform.apply import apply, read_plan
from hrp_harness.platform.paths import PLAN, REPO


def ledger(dsn: str) -> dict[str, tuple[str, int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select file_path, sha256, apply_count from hrp_deploy.ledger").fetchall()
    return {path: (sha, count) for path, sha, count in rows}


def quiet(*_args):
    pass


@pytest.mark.cluster
def test_first_apply_runs_every_file_in_plan_order_and_records_it(empty_db):
    lines = []
    steps = apply(empty_db, echo=lines.append)
    assert [s.entry.path for s in steps] == [e.path for e in read_plan()]
    recorded = ledger(empty_db)
    assert set(recorded) == {e.path for e in read_plan()}
    assert all(recorded[e.path][0] == e.checksum for e in read_plan())
    assert lines[-1] == f"apply: {len(steps)} file(s) applied"


@pytest.mark.cluster
def test_second_apply_applies_nothing(schema_db):
    before = ledger(schema_db)
    lines = []
    assert apply(schema_db, echo=lines.append) == []
    assert lines == ["apply: nothing to do, every file of deploy.plan is applied and unchanged"]
    assert ledger(schema_db) == before


@pytest.mark.cluster
def test_changed_versioned_file_is_refused_naming_it(schema_db):
    with psycopg.connect(schema_db) as conn:
        conn.execute("update hrp_deploy.ledger set sha256 = repeat('0', 64)"
                     " where file_path = 'schema/0003_horses.sql'")
    with pytest.raises(HarnessError, match=r"changed after they were applied.*schema/0003_horses\.sql"):
        apply(schema_db, echo=quiet)


@pytest.mark.cluster
def test_changed_repeatable_file_is_reapplied(schema_db):
    with psycopg.connect(schema_db) as conn:
        conn.execute("update hrp_deploy.ledger set sha256 = repeat('0', 64)"
                     " where file_path = 'views/race_statistics.sql'")
        conn.execute("drop view public.race_statistics")
    steps = apply(schema_db, echo=quiet)
    # roles/grants.sql (hrp:rerun-after-any-change) follows any applied file
    assert [(s.entry.path, s.reason) for s in steps] == [("views/race_statistics.sql", "changed"),
                                                        ("roles/grants.sql", "after changes")]
    assert ledger(schema_db)["views/race_statistics.sql"][1] == 2
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select to_regclass('public.race_statistics')").fetchone()[0] is not None
        # re-created by the superuser, handed back to hrp_owner by the grants file that followed
        owner = conn.execute("select relowner::regrole::text from pg_class"
                             " where oid = 'public.race_statistics'::regclass").fetchone()[0]
        assert owner == "hrp_owner"


@pytest.mark.cluster
def test_dry_run_lists_and_changes_nothing(empty_db):
    lines = []
    steps = apply(empty_db, dry_run=True, echo=lines.append)
    assert len(steps) == len(read_plan())
    assert lines[0] == "would apply versioned  schema/0000_deploy_ledger.sql (new)"
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select to_regclass('hrp_deploy.ledger')").fetchone()[0] is None


@pytest.fixture
def scratch_plan(tmp_path: Path) -> Path:
    """A copy of the project's plan and files in a scratch dir, to break on purpose."""
    for entry in read_plan():
        target = tmp_path / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(entry.file, target)
    shutil.copy(PLAN, tmp_path / PLAN.name)
    return tmp_path / PLAN.name


@pytest.mark.cluster
def test_failing_file_rolls_back_alone_and_names_file_and_line(empty_db, scratch_plan):
    broken = scratch_plan.parent / "schema" / "0004_predictions.sql"
    broken.write_text(broken.read_text() + "\nselect 1 / 0;\n")
    with pytest.raises(HarnessError) as caught:
        apply(empty_db, echo=quiet, plan=scratch_plan)
    message = str(caught.value)
    assert message.startswith("apply failed in schema/0004_predictions.sql")
    assert "0004_predictions.sql:" in message and "division by zero" in message
    recorded = ledger(empty_db)
    assert "schema/0003_horses.sql" in recorded          # committed before the failure
    assert "schema/0004_predictions.sql" not in recorded  # its transaction rolled back
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select to_regclass('public.predictions')").fetchone()[0] is None
    # fixed, the next apply resumes where it stopped
    shutil.copy(REPO / "schema" / "0004_predictions.sql", broken)
    steps = apply(empty_db, echo=quiet, plan=scratch_plan)
    assert steps[0].entry.path == "schema/0004_predictions.sql"


@pytest.mark.cluster
def test_no_transaction_file_runs_outside_a_transaction(empty_db, scratch_plan):
    concurrently = scratch_plan.parent / "schema" / "0099_concurrent_index.sql"
    concurrently.write_text(
        "-- hrp:no-transaction\n"
        "create index concurrently if not exists index_races_on_race_name"
        " on public.races (race_name);\n")
    with scratch_plan.open("a") as plan:
        plan.write("versioned   schema/0099_concurrent_index.sql\n")
    apply(empty_db, echo=quiet, plan=scratch_plan)
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select to_regclass('public.index_races_on_race_name')").fetchone()[0]
    assert "schema/0099_concurrent_index.sql" in ledger(empty_db)


@pytest.mark.unit
@pytest.mark.parametrize("line, error", [
    ("migrate schema/0001_enums.sql", "expected 'versioned PATH' or 'repeatable PATH'"),
    ("versioned schema/nope.sql", "schema/nope.sql does not exist"),
    ("versioned schema/0001_enums.sql", "schema/0001_enums.sql is listed twice"),
])
def test_bad_plan_lines_are_refused_with_their_line_number(scratch_plan, line, error):
    with scratch_plan.open("a") as plan:
        plan.write(line + "\n")
    number = len(scratch_plan.read_text().splitlines())
    with pytest.raises(HarnessError, match=rf"deploy\.plan:{number}: .*{error}"):
        read_plan(scratch_plan)


@pytest.mark.unit
def test_wrong_target_is_a_clear_error():
    with pytest.raises(HarnessError, match="cannot connect to the target database"):
        apply("host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2", echo=quiet)
