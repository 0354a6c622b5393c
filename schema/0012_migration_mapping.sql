-- The migration's mapping of a source onto the spec's tables (issue 11): which source table and
-- column feeds each target column and by which rule, where the source columns and tables no target
-- takes are kept, and the work tables' own schema.
--   migration.source_columns  every column of the source file, and where it goes (this load)
--   migration.column_map      every target column the load writes, and where it comes from
--   migration.source_extras   per source row, the values of its columns no target column takes
--   migration_unmapped.*      whole copies of the source tables no target table takes
--   migration_work.*          the typed work tables, one per target table (migration_stage holds
--                             the staged source tables only, named as in the source)
-- functions/migration_map.sql fills the first two (migration.set_mapping) and generates the
-- mapping from them and the target catalog.
-- requires: schema/0010_migration.sql
-- Versioned: append-only once released; change it by adding a new numbered file.

create schema if not exists migration_work;
comment on schema migration_work is
'Typed work tables of a load, one per target table (UNLOGGED scratch, rebuilt by every load).';

create schema if not exists migration_unmapped;
comment on schema migration_unmapped is
'Copies of the source tables no target table takes, all their rows as text, refreshed by every
load: nothing of the source is dropped.';

-- UNLOGGED: they describe the load in progress (and after it, the last one), read by its several
-- connections; the mapping a committed run used is also kept in migration.runs.mapping.
create unlogged table if not exists migration.source_columns (
    source_table text not null,
    source_column text not null,
    ordinal integer not null,
    declared_type text not null,
    target_table text,
    target_column text,
    constraint source_columns_pkey primary key (source_table, source_column)
);
comment on table migration.source_columns is
'Every column of every table of the source being loaded (staged as text), and the target table
and column it feeds: target_column NULL means no target column takes it (kept in
migration.source_extras); target_table NULL means no target table takes its table (copied into
migration_unmapped).';

create unlogged table if not exists migration.column_map (
    target_table text not null,
    target_column text not null,
    source_table text not null,
    source_column text not null,
    rule text,  -- noqa: RF04
    constraint column_map_pkey primary key (target_table, target_column)
);
comment on table migration.column_map is
'The target columns the load writes and the source column each comes from; rule NULL is the
default rule of the target column''s type, else a documented alternative (date_part). Target
columns absent here keep their defaults.';

create table if not exists migration.source_extras (
    source_table text not null,
    source_id bigint not null,
    extra_values jsonb not null,
    constraint source_extras_pkey primary key (source_table, source_id)
);
comment on table migration.source_extras is
'For each source row, its values of the source columns no target column takes (as text, by
column name): refreshed by every load, so it holds the current source. Readable by the owner only
(it may hold secrets, e.g. api_credentials.password of the app''s schema).';

alter table migration.runs add column if not exists mapping jsonb;
comment on column migration.runs.mapping is
'What went where: the mapping this run used, resolved against its source (tables, columns, rules,
extra columns, unmapped tables).';

-- Runs committed before schema/0011 recorded no checksum columns; they were those the spec's
-- SQLite schema fed (the mapping of that time), which the target guard needs to compare the
-- target with what such a run left.
update migration.run_tables as r
set checksum_columns = c.columns
from (
    values
    ('races', array[
        'id', 'race_name', 'race_date', 'track_name', 'race_type', 'distance', 'surface',
        'weather_conditions', 'created_at', 'updated_at'
    ]),
    ('horses', array[
        'id', 'horse_name', 'age', 'weight', 'jockey', 'trainer', 'owner', 'created_at',
        'updated_at'
    ]),
    ('predictions', array[
        'id', 'race_id', 'horse_id', 'prediction_value', 'confidence', 'algorithm_version',
        'created_at', 'updated_at'
    ]),
    ('users', array[
        'id', 'username', 'email', 'password_hash', 'created_at', 'updated_at', 'last_login'
    ]),
    ('api_credentials', array[
        'id', 'service_name', 'api_key', 'api_secret', 'endpoint_url', 'is_active', 'created_at',
        'updated_at'
    ])
) as c (table_name, columns)
where r.table_name = c.table_name and r.checksum_columns is null;
