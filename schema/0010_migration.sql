-- Migration bookkeeping for the SQLite -> PostgreSQL load (issue 3): the `migration` schema with
-- the runs ledger, per-table results of each run, and the quarantine of rows that could not
-- migrate.
-- requires: nothing (the spec's tables are referenced only by name, in functions/migration_*.sql).
-- Versioned: append-only once released; change it by adding a new numbered file.

create schema if not exists migration;
comment on schema migration is
'SQLite -> PostgreSQL migration: runs ledger, per-table results, quarantine, transform functions.';

create table if not exists migration.runs (
    run_id bigint generated always as identity,
    mode text not null,  -- noqa: RF04
    source_path text not null,
    source_sha256 text,
    source_timezone text not null,
    max_quarantine bigint,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    status text not null default 'running',
    report jsonb,
    constraint runs_pkey primary key (run_id),
    constraint check_runs_mode check (mode in ('full', 'incremental')),
    constraint check_runs_status check (status in ('running', 'committed', 'failed'))
);
comment on table migration.runs is
'One row per load (invoke load). A committed run wrote its results atomically with the data;
a failed run is recorded afterwards, outside the rolled-back transaction, with the error in report.';
comment on column migration.runs.source_sha256 is 'SHA-256 of the SQLite source file as loaded.';
comment on column migration.runs.report is 'The JSON report of the run (also written to a file).';

create table if not exists migration.run_tables (
    run_id bigint not null,
    table_name text not null,
    source_rows bigint not null,
    migrated_rows bigint not null,
    quarantined_rows bigint not null,
    inserted_rows bigint not null default 0,
    updated_rows bigint not null default 0,
    deleted_rows bigint not null default 0,
    quarantined_by_reason jsonb not null default '{}',
    normalised_by_rule jsonb not null default '{}',
    source_checksum text,
    target_checksum text,
    checksum_match boolean,
    seconds numeric(10, 3),
    constraint run_tables_pkey primary key (run_id, table_name),
    constraint fk_run_tables_run_id_runs foreign key (run_id) references migration.runs (run_id),
    constraint check_run_tables_accounting check (source_rows = migrated_rows + quarantined_rows)
);
comment on table migration.run_tables is
'Per source table of a run: the accounting (source = migrated + quarantined, enforced), quarantine
counts by reason, normalisation counts by rule, and the order-independent content checksums of the
migrated rows computed source-side (through the mapping) and on the target table.';
comment on column migration.run_tables.source_checksum is
'count:sum of hash_record_extended over the mapped source rows (order-independent).';
comment on column migration.run_tables.target_checksum is
'count:sum of hash_record_extended over the target table rows, same columns in the same order.';

create table if not exists migration.quarantine (
    quarantine_id bigint generated always as identity,
    run_id bigint not null,
    source_table text not null,
    source_id bigint,
    reason text not null,
    source_row jsonb not null,
    constraint quarantine_pkey primary key (quarantine_id),
    constraint fk_quarantine_run_id_runs foreign key (run_id) references migration.runs (run_id)
);
create index if not exists index_quarantine_on_source_table_source_id
on migration.quarantine (source_table, source_id);
comment on table migration.quarantine is
'Source rows that did not migrate (never also in the target). Holds the current state:
a re-run keeps an unchanged entry (with the run that first quarantined it) and removes entries whose row now migrates
or is gone from the source.';
comment on column migration.quarantine.reason is
'Why: the failed rule(s) with column names, or the quarantined parent, or the duplicate
kept instead.';
comment on column migration.quarantine.source_row is
'The original values as text by column name; a value JSON cannot hold (NUL, invalid UTF-8, BLOB) is
{"$hex": "<bytes in hex>", "$type": "<SQLite storage class>"}.';

-- Staging: loose text copies of the source tables that pgloader fills (UNLOGGED: scratch, rebuilt
-- by every load). Columns are the spec's SQLite columns, all text, no constraints.
create schema if not exists migration_stage;
comment on schema migration_stage is
'pgloader target: all-text UNLOGGED copies of the SQLite tables; scratch, truncated by each load.';

create unlogged table if not exists migration_stage.races (
    id text, race_name text, race_date text, track_name text, race_type text, distance text,
    surface text, weather_conditions text, created_at text, updated_at text
);
create unlogged table if not exists migration_stage.horses (
    id text, horse_name text, age text, weight text, jockey text, trainer text,
    owner text,  -- noqa: RF04
    created_at text, updated_at text
);
create unlogged table if not exists migration_stage.predictions (
    id text, race_id text, horse_id text, prediction_value text, confidence text,
    algorithm_version text, created_at text
);
create unlogged table if not exists migration_stage.users (
    id text, username text, email text, password_hash text, created_at text, last_login text
);
create unlogged table if not exists migration_stage.api_credentials (
    id text, service_name text, api_key text, api_secret text, endpoint_url text, is_active text,
    created_at text
);
-- Rows the preflight found unloadable by pgloader (BLOB, NUL, invalid UTF-8): written into the
-- working copy of the SQLite file as table hrp_preflight_rejects, staged here with the rest.
create unlogged table if not exists migration_stage.hrp_preflight_rejects (
    source_table text, source_id text, reason text, source_row text
);
comment on table migration_stage.races is 'Staged copy of SQLite races, all text.';
comment on table migration_stage.horses is 'Staged copy of SQLite horses, all text.';
comment on table migration_stage.predictions is 'Staged copy of SQLite predictions, all text.';
comment on table migration_stage.users is 'Staged copy of SQLite users, all text.';
comment on table migration_stage.api_credentials is
'Staged copy of SQLite api_credentials, all text.';
comment on table migration_stage.hrp_preflight_rejects is
'Source rows pgloader cannot carry (found by the preflight), as escaped JSON text,
to be quarantined.';
