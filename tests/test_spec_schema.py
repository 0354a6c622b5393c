"""The deployed schema is the spec's DDL: the spec's own SQL blocks are loaded into a reference
database and its catalog is compared with a deployed one, object by object."""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest

from hrp_harness.platform.paths import REPO
from hrp_harness.platform.psql import psql_argv

pytestmark = pytest.mark.cluster

SPEC = REPO.parent / "shared" / "spec" / "postgresql-migration-spec.md"

# Spec indexes left out because another index has exactly the same definition (see schema/).
REDUNDANT = {
    "idx_horses_name": "unique_horse_name",
    "idx_users_username": "users_username_key",
    "idx_users_email": "users_email_key",
    "idx_api_credentials_service": "unique_service_name",
}

# Indexes beyond the spec's list, each for a hot query of the app (issue 13: bench.queries), and the
# versioned file that adds it.
ADDED = {
    "index_horses_on_horse_name_trgm": "schema/0030_horses_name_trgm.sql",
}


def spec_ddl() -> str:
    """The spec's PostgreSQL DDL blocks: schema, types, views, functions, index strategy.
    SQLite blocks and the security/maintenance snippets are not schema."""
    text = SPEC.read_text()
    schema_part = text.split("## Database Schema Specifications", 1)[1].split("## Data Migration", 1)[0]
    index_part = text.split("### Index Strategy", 1)[1].split("### Query Optimization", 1)[0]
    blocks = []
    for part in (schema_part, index_part):
        for preface, block in re.findall(r"([^\n]*)\n```sql\n(.*?)```", part, re.S):
            if "SQLite Schema" not in preface:
                blocks.append(block)
    types = [b for b in blocks if "CREATE TYPE" in b]
    return "\n".join(types + [b for b in blocks if b not in types])


@pytest.fixture(scope="module")
def spec_db(pg_cluster):
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("create database hrp_spec_reference")
    dsn = pg_cluster.dsn("hrp_spec_reference")
    # no ON_ERROR_STOP: the spec creates two GIN indexes twice; only those may fail
    argv = [a for a in psql_argv(dsn) if a != "ON_ERROR_STOP=1"]
    done = subprocess.run(argv, input=spec_ddl(), capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 2 and all(
        re.search(r'relation "idx_(horses_pedigree|predictions_features)_gin" already exists', e)
        for e in errors), errors
    yield dsn
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("drop database hrp_spec_reference")


CATALOG = {
    "columns": """
        select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = 'public' and c.relkind in ('r', 'v') and a.attnum > 0
          and not a.attisdropped""",
    "constraints": """
        select conrelid::regclass::text, contype, pg_get_constraintdef(oid)
        from pg_constraint where connamespace = 'public'::regnamespace""",
    "named constraints": """
        select conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        from pg_constraint where connamespace = 'public'::regnamespace and contype <> 'c'""",
    "views": """
        select viewname, pg_get_viewdef(format('public.%I', viewname)::regclass)
        from pg_views where schemaname = 'public'""",
    "triggers": """
        select tgname, pg_get_triggerdef(oid) from pg_trigger where not tgisinternal""",
    "enums": """
        select t.typname, e.enumsortorder, e.enumlabel
        from pg_enum e join pg_type t on t.oid = e.enumtypid""",
    "functions": """
        select p.proname, l.lanname, p.prorettype::regtype::text, p.provolatile
        from pg_proc p join pg_language l on l.oid = p.prolang
        where p.pronamespace = 'public'::regnamespace""",
}


def catalog(dsn: str, query: str) -> set[tuple]:
    with psycopg.connect(dsn) as conn:
        return set(conn.execute(query).fetchall())


@pytest.mark.parametrize("what", list(CATALOG))
def test_deployed_catalog_matches_spec(spec_db, schema_db, what):
    spec, deployed = catalog(spec_db, CATALOG[what]), catalog(schema_db, CATALOG[what])
    assert spec, f"the spec defines no {what}: the reference database did not load"
    assert sorted(deployed - spec) == [] and sorted(spec - deployed) == []


def test_checks_are_the_spec_checks_and_all_named_by_the_house_rule(schema_db):
    named = catalog(schema_db, "select conrelid::regclass::text, conname from pg_constraint"
                               " where connamespace = 'public'::regnamespace and contype = 'c'")
    assert named and all(name == "valid_email" or name.startswith(f"check_{table}_")
                         for table, name in named), named


def test_indexes_match_spec_but_documented_exact_duplicates(spec_db, schema_db):
    query = """select indexrelid::regclass::text, pg_get_indexdef(indexrelid)
               from pg_index i join pg_class c on c.oid = i.indrelid
               where c.relnamespace = 'public'::regnamespace"""
    spec = dict(catalog(spec_db, query))
    deployed = dict(catalog(schema_db, query))
    assert set(deployed) - set(spec) == set(ADDED)
    assert set(spec) - set(deployed) == set(REDUNDANT)
    for name, definition in deployed.items():
        if name in ADDED:
            assert name.split(".")[-1] in (REPO / ADDED[name]).read_text(), name
            continue
        assert definition == spec[name], name

    def columns(definition: str) -> str:
        return definition.split(" USING ", 1)[1]

    for left_out, covering in REDUNDANT.items():
        assert columns(spec[left_out]) == columns(deployed[covering]), left_out
        source = next((REPO / "schema").glob(f"*_{spec[left_out].split(' ON public.')[1].split()[0]}.sql"))
        assert re.search(rf"{left_out}.*{covering}|{covering}.*{left_out}", source.read_text()), \
            f"{source.name} must say that {left_out} is covered by {covering}"
