"""The pgTAP runners: pytest's (hrp_harness.platform.pgtap) shows have/want; `invoke verify` uses pg_prove."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hrp_harness.platform.paths import REPO
from hrp_harness.platform.pgtap import run_pgtap

FRAME = "begin;\ncreate extension if not exists pgtap;\nselect plan({plan});\n{body}\nselect * from finish();\nrollback;\n"


def write(tmp_path, plan, body):
    path = tmp_path / "probe.sql"
    path.write_text(FRAME.format(plan=plan, body=body))
    return path


@pytest.mark.cluster
def test_failing_assertion_is_reported_with_have_and_want(empty_db, tmp_path):
    path = write(tmp_path, 2, "select is(1, 1, 'one is one');\nselect is(6 * 7, 43, 'the answer');")
    result = run_pgtap(empty_db, path)
    assert not result.ok
    assert [(a.number, a.ok) for a in result.assertions] == [(1, True), (2, False)]
    report = result.report()
    assert "not ok 2 - the answer" in report
    assert "#         have: 42" in report and "#         want: 43" in report


@pytest.mark.cluster
def test_plan_mismatch_fails_even_when_every_assertion_passes(empty_db, tmp_path):
    result = run_pgtap(empty_db, write(tmp_path, 3, "select pass('only one');"))
    assert not result.ok and not result.failures
    assert "planned 3 tests but ran 1" in result.report()


@pytest.mark.cluster
def test_sql_error_fails_with_psql_message(empty_db, tmp_path):
    result = run_pgtap(empty_db, write(tmp_path, 1, "select pass('x');\nselect nope();"))
    assert not result.ok
    assert "psql exited 3" in result.report() and "function nope() does not exist" in result.report()


@pytest.mark.cluster
def test_passing_file_is_ok(empty_db, tmp_path):
    result = run_pgtap(empty_db, write(tmp_path, 1, "select ok(true, 'true is true');"))
    assert result.ok, result.report()


def verify(dsn: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "verify", "--dsn", dsn], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.cluster
def test_invoke_verify_passes_on_a_deployed_database(schema_db):
    done = verify(schema_db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All tests successful." in done.stdout


@pytest.mark.cluster
def test_invoke_verify_fails_on_a_database_without_the_schema(empty_db):
    done = verify(empty_db)
    assert done.returncode != 0
    assert "Result: FAIL" in done.stdout


@pytest.mark.cluster
def test_invoke_verify_on_a_loaded_database_passes_and_leaves_its_data(schema_db, tmp_path):
    """The suite is safe on production: fixtures are rolled back, sequences only move forward."""
    import psycopg
    from psycopg import sql

    from hrp_harness import migration
    from hrp_harness.migration import sample

    source = sample.generate(tmp_path / "app.sqlite",
                             sample.Size(races=50, horses=200, predictions=1_000, users=10, credentials=3))
    migration.load(source, schema_db, quiet=True, report_path=tmp_path / "report.json")
    tables = ("races", "horses", "predictions", "users", "api_credentials")

    def state():
        with psycopg.connect(schema_db) as conn:
            query = sql.SQL("select count(*), max(id), sum(hashtext(t::text)) from public.{} as t")
            return {t: conn.execute(query.format(sql.Identifier(t))).fetchone() for t in tables}

    before = state()
    done = verify(schema_db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert state() == before
    with psycopg.connect(schema_db) as conn:
        for table in tables:
            next_id = conn.execute("select nextval(pg_get_serial_sequence(%s, 'id'))",
                                   (f"public.{table}",)).fetchone()[0]
            assert next_id > before[table][1], f"{table}: the sequence went back to {next_id}"


@pytest.mark.unit
def test_the_shared_pgtap_setup_maps_the_spec_shape_as_the_harness_does():
    """tests/pgtap/spec_mapping.psql holds the source and mapping documents the loader sends for a
    file in the spec's shape (hrp_migration.set_mapping): they must not drift apart."""
    import json
    import re

    from hrp_harness.migration.source import Source, read_mapping, spec_tables

    text = (REPO / "tests" / "pgtap" / "spec_mapping.psql").read_text()
    documents = dict(re.findall(r"^\\set (hrp_spec_\w+) '(.*)'$", text, re.M))
    assert json.loads(documents["hrp_spec_source"]) == Source(REPO, 0, spec_tables()).as_json()
    assert json.loads(documents["hrp_spec_mapping"]) == read_mapping(None)[0]
