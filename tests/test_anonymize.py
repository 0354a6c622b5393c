"""invoke anonymize: the non-production copy keeps row counts, uniqueness, valid_email and foreign
keys, replaces every PII value deterministically, and refuses to overwrite or copy onto itself."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from hrp_harness import HarnessError
from hrp_harness.ops.anonymize import anonymize
from hrp_harness.platform.paths import REPO

pytestmark = pytest.mark.cluster

TABLES = ("races", "horses", "predictions", "users", "api_credentials")
PII = {"users": ("username", "email", "password_hash", "first_name", "last_name"),
       "api_credentials": ("api_key", "api_secret")}
FIXTURE = """
insert into public.races (race_name, race_date)
select 'race ' || g, date '2026-01-01' + g from generate_series(1, 20) as g;
insert into public.horses (horse_name, owner)
select 'horse ' || g, 'owner ' || g from generate_series(1, 30) as g;
insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
select r.id, h.id, 0.5, 'v1' from public.races as r, public.horses as h where h.id % 5 = r.id % 5;
insert into public.users (username, email, password_hash, first_name, last_name)
select 'real.name' || g, 'real' || g || '@corp.example.com', 'pbkdf2:real' || g, 'Real' || g,
       case when g % 3 <> 0 then 'Person' || g end
from generate_series(1, 50) as g;
insert into public.api_credentials (service_name, api_key, api_secret)
select 'svc' || g, 'real-key-' || g, case when g % 2 = 0 then 'real-secret-' || g end
from generate_series(1, 5) as g;
"""


def quiet(*_args):
    pass


def rows(dsn: str, table: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.SQL("select * from public.{} order by id").format(
            sql.Identifier(table))).fetchall()


@pytest.fixture
def source(schema_db):
    with psycopg.connect(schema_db) as conn:
        conn.execute(FIXTURE)
    return schema_db


@pytest.fixture
def targets(pg_cluster):
    made = []

    def target(name: str) -> str:
        made.append(name)
        return pg_cluster.dsn(name)

    yield target
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(name)))


def test_anonymized_copy_keeps_shape_and_replaces_pii(source, targets):
    target = targets('hrp anon "copy"; drop database postgres; --')  # hostile name: quoted (a single quote
    # is refused before anything is created: tests/test_data_safety.py)
    env = {**os.environ}
    done = subprocess.run([sys.executable, "-m", "invoke", "anonymize", "--to", target,
                           "--from", source], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "anonymised copy done: 225 rows in 5 tables" in done.stdout

    for table in TABLES:
        assert len(rows(target, table)) == len(rows(source, table)), table
    with psycopg.connect(target) as conn:
        # the copy satisfies the foreign keys (loaded with triggers off): check them by hand
        orphans = conn.execute(
            "select count(*) from public.predictions as p"
            " where not exists (select from public.races as r where r.id = p.race_id)"
            " or not exists (select from public.horses as h where h.id = p.horse_id)").fetchone()[0]
        assert orphans == 0
        # valid_email and the unique constraints were enforced by the load itself; re-validate
        conn.execute("alter table public.users drop constraint valid_email")
        conn.execute(r"alter table public.users add constraint valid_email check (email ~* "
                     r"'^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$')")
        conn.rollback()
        # sequences continue after the copied ids
        new_id = conn.execute("insert into public.users (username, email, password_hash)"
                              " values ('new', 'new@example.com', 'x') returning id").fetchone()[0]
        assert new_id == max(r[0] for r in rows(source, "users")) + 1
        conn.rollback()
    for table, columns in PII.items():
        with psycopg.connect(source) as src, psycopg.connect(target) as dst:
            for column in columns:
                query = sql.SQL("select {} from public.{} where {} is not null").format(
                    sql.Identifier(column), sql.Identifier(table), sql.Identifier(column))
                real = {v for (v,) in src.execute(query)}
                copied = {v for (v,) in dst.execute(query)}
                assert real and copied, (table, column)
                assert real.isdisjoint(copied), f"{table}.{column} leaked into the copy"
                nulls = sql.SQL("select count(*) from public.{} where {} is null").format(
                    sql.Identifier(table), sql.Identifier(column))
                assert src.execute(nulls).fetchone() == dst.execute(nulls).fetchone()
    # non-PII columns are unchanged
    assert rows(target, "predictions") == rows(source, "predictions")
    assert rows(target, "horses") == rows(source, "horses")

    # deterministic: a second copy is identical
    again = targets("hrp_anon_again")
    anonymize(again, source, echo=quiet)
    for table in TABLES:
        assert rows(again, table) == rows(target, table), table


def test_anonymize_refuses_a_target_with_data_and_the_source_itself(source, targets):
    target = targets("hrp_anon_refusals")
    anonymize(target, source, echo=quiet)
    before = rows(target, "users")
    with pytest.raises(HarnessError, match=r"already holds data \(table "):
        anonymize(target, source, echo=quiet)
    assert rows(target, "users") == before
    with pytest.raises(HarnessError, match="--to names the source database itself"):
        anonymize(source, source, echo=quiet)


def test_a_table_without_an_anonymising_view_is_never_copied(source, targets):
    with psycopg.connect(source) as conn:
        conn.execute("create table public.customer_notes (id bigserial primary key, note text)")
    target = targets("hrp_anon_unknown_table")
    with pytest.raises(HarnessError, match="no anonymising view for table.*customer_notes"):
        anonymize(target, source, echo=quiet)


def test_a_source_the_url_role_cannot_read_is_a_clear_error(pg_cluster, app_database, targets):
    from helpers import TEST_PASSWORDS

    # hrp_app may connect to hrp_database (the only one pg_hba lets it reach), not read hrp_anonymize
    as_app = psycopg.conninfo.make_conninfo(app_database, user="hrp_app", password=TEST_PASSWORDS["hrp_app"])
    with pytest.raises(HarnessError, match="anonymize failed.*permission denied for schema hrp_anonymize"):
        anonymize(targets("hrp_anon_denied"), as_app, echo=quiet)
