-- pgTAP tests for schema/0012_migration_mapping.sql: the mapping's tables (source columns, column
-- map), the per-row extra values, the schemas of the work tables and of the unmapped source
-- tables, and the mapping recorded with each run.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(13);

select has_schema('hrp_migration_work', 'schema hrp_migration_work exists (the typed work tables)');
select has_schema(
    'hrp_migration_unmapped', 'schema hrp_migration_unmapped exists (unmapped source tables)'
);
select has_table('hrp_migration', 'source_columns', 'table hrp_migration.source_columns exists');
select has_table('hrp_migration', 'column_map', 'table hrp_migration.column_map exists');
select is(
    (
        select array_agg(relpersistence::text order by relname) from pg_class
        where
            oid in ('hrp_migration.source_columns'::regclass, 'hrp_migration.column_map'::regclass)
    ),
    array['u', 'u'],
    'the mapping of the load in progress is UNLOGGED scratch'
);
select col_is_pk(
    'hrp_migration', 'column_map', array['target_table', 'target_column'],
    'column_map: one source per target column'
);
select col_is_pk(
    'hrp_migration', 'source_columns', array['source_table', 'source_column'],
    'source_columns: one row per source column'
);
select has_table('hrp_migration', 'source_extras', 'table hrp_migration.source_extras exists');
select columns_are(
    'hrp_migration', 'source_extras', array['source_table', 'source_id', 'extra_values'],
    'source_extras: per source row, its extra values'
);
select col_type_is(
    'hrp_migration', 'source_extras', 'extra_values', 'jsonb',
    'extra_values is jsonb'
);
select col_is_pk(
    'hrp_migration', 'source_extras', array['source_table', 'source_id'],
    'source_extras: one entry per source row'
);
select has_column('hrp_migration', 'runs', 'mapping', 'runs records the mapping it used');
select is(
    has_table_privilege('hrp_app', 'hrp_migration.source_extras', 'select')
    or has_table_privilege('hrp_readonly', 'hrp_migration.source_extras', 'select'),
    false,
    'the app roles cannot read the extra values (they may hold secrets)'
);

select * from finish();
rollback;
