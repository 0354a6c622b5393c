-- pgTAP tests for schema/0010_migration.sql: the migration ledger (runs, run_tables), the
-- quarantine, the all-text UNLOGGED staging tables, and the accounting check.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(18);

-- the staging tables of the spec's shape, as a load of such a source makes them (a database loaded
-- from another shape holds that source's: the shared setup makes these inside this transaction)
-- noqa: disable=PRS
\ir ../spec_mapping.psql
-- noqa: enable=PRS

select has_schema('hrp_migration', 'schema hrp_migration exists');
select has_schema('hrp_migration_stage', 'schema hrp_migration_stage exists');
select has_table('hrp_migration', 'runs', 'table hrp_migration.runs exists');
select has_table('hrp_migration', 'run_tables', 'table hrp_migration.run_tables exists');
select has_table('hrp_migration', 'quarantine', 'table hrp_migration.quarantine exists');
select columns_are(
    'hrp_migration', 'quarantine',
    array['quarantine_id', 'run_id', 'source_table', 'source_id', 'reason', 'source_row'],
    'quarantine has the issue''s columns'
);
select col_type_is('hrp_migration', 'quarantine', 'source_row', 'jsonb', 'source_row is jsonb');
select col_not_null('hrp_migration', 'quarantine', 'reason', 'quarantine.reason is not null');
select fk_ok(
    'hrp_migration', 'quarantine', 'run_id', 'hrp_migration', 'runs', 'run_id',
    'quarantine.run_id references runs'
);
select fk_ok(
    'hrp_migration', 'run_tables', 'run_id', 'hrp_migration', 'runs', 'run_id',
    'run_tables.run_id references runs'
);
select has_index(
    'hrp_migration', 'quarantine', 'index_quarantine_on_source_table_source_id',
    'quarantine is indexed on (source_table, source_id)'
);
select is(
    (
        select array_agg(c.relname::text order by c.relname)
        from pg_class as c
        where
            c.relnamespace = 'hrp_migration_stage'::regnamespace and c.relkind = 'r'
            and c.relpersistence = 'u'
    ),
    array['api_credentials', 'horses', 'hrp_preflight_rejects', 'predictions', 'races', 'users'],
    'the six staging tables are UNLOGGED'
);
select is(
    (
        select array_agg(distinct a.atttypid::regtype::text)
        from pg_attribute as a
        inner join pg_class as c on a.attrelid = c.oid
        where
            c.relnamespace = 'hrp_migration_stage'::regnamespace and a.attnum > 0
            and c.relkind = 'r'
    ),
    array['text'],
    'every staging column is text'
);
select columns_are(
    'hrp_migration_stage', 'races',
    array[
        'id', 'race_name', 'race_date', 'track_name', 'race_type', 'distance', 'surface',
        'weather_conditions', 'created_at', 'updated_at'
    ],
    'staging races has the SQLite columns'
);

insert into hrp_migration.runs (run_id, mode, source_path, source_timezone)
overriding system value values (-1, 'full', 'pgtap.sqlite', 'UTC');
select throws_ok(
    $$insert into hrp_migration.run_tables
      (run_id, table_name, source_rows, migrated_rows, quarantined_rows)
      values (-1, 'races', 10, 8, 1)$$,
    '23514', null,
    'run_tables refuses a row where source <> migrated + quarantined'
);
select lives_ok(
    $$insert into hrp_migration.run_tables
      (run_id, table_name, source_rows, migrated_rows, quarantined_rows)
      values (-1, 'races', 10, 9, 1)$$,
    'run_tables accepts source = migrated + quarantined'
);
select throws_ok(
    $$insert into hrp_migration.runs (mode, source_path, source_timezone)
      values ('sideways', 'x', 'UTC')$$,
    '23514', null,
    'runs.mode is full or incremental'
);
select isnt(
    obj_description('hrp_migration.quarantine'::regclass, 'pg_class'),
    null,
    'quarantine has a comment'
);

select * from finish();
rollback;
