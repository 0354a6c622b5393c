-- pgTAP tests for functions/migration_keys.sql: drop_keys removes the keys, indexes and foreign
-- keys of the spec's tables and restore_keys brings back the same definitions and comments.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(9);

create temp table before_keys as
select
    indexrelid::regclass::text as index_name,
    pg_get_indexdef(indexrelid) as def
from pg_index
where indrelid = any(array[
    'public.races', 'public.horses', 'public.predictions',
    'public.users', 'public.api_credentials'
]::regclass[]);
create temp table before_cons as
select
    conrelid::regclass::text as tbl,
    conname::text as con_name,
    pg_get_constraintdef(oid) as def
from pg_constraint
where conrelid = any(array[
    'public.races', 'public.horses', 'public.predictions',
    'public.users', 'public.api_credentials'
]::regclass[]);
comment on index idx_races_date is 'pgtap comment';

select cmp_ok(
    hrp_migration.drop_keys(array['races', 'horses', 'predictions', 'users', 'api_credentials']),
    '>', 20::bigint, 'drop_keys drops the keys, indexes and foreign keys'
);
select is(
    (
        select count(*)::int from pg_index
        where indrelid = 'public.predictions'::regclass
    ),
    0, 'predictions has no index left'
);
select is(
    (
        select count(*)::int
        from pg_constraint
        where
            conrelid = 'public.predictions'::regclass
            and contype in ('f', 'p', 'u')
    ),
    0, 'predictions has no key or foreign key left (its CHECK stays)'
);
select hrp_migration.restore_keys(array['predictions'], false);
select set_eq(
    $$select indexrelid::regclass::text, pg_get_indexdef(indexrelid) from pg_index
      where indrelid = 'public.predictions'::regclass$$,
    $$select index_name, def from before_keys
      where def like '% ON public.predictions %' and index_name <> 'unique_race_horse_prediction'$$,
    'restore_keys(array[predictions], false): the keys and indexes of predictions but its UNIQUE'
);
select hrp_migration.restore_keys(array['horses']);
select set_eq(
    $$select indexrelid::regclass::text, pg_get_indexdef(indexrelid) from pg_index
      where indrelid = 'public.horses'::regclass$$,
    $$select index_name, def from before_keys where def like '% ON public.horses %'$$,
    'restore_keys(array[horses]): every key and index of horses'
);
select is(
    (
        select count(*)::int from pg_constraint
        where conrelid = 'public.predictions'::regclass and contype = 'f'
    ),
    0, '... no foreign key yet'
);
select hrp_migration.restore_keys();
select set_eq(
    $$select indexrelid::regclass::text, pg_get_indexdef(indexrelid) from pg_index
      where indrelid = any(array['public.races', 'public.horses', 'public.predictions',
          'public.users', 'public.api_credentials']::regclass[])$$,
    $$select index_name, def from before_keys$$,
    'restore_keys brings back every index with its definition'
);
select set_eq(
    $$select conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) from pg_constraint
      where conrelid = any(array['public.races', 'public.horses', 'public.predictions',
          'public.users', 'public.api_credentials']::regclass[])$$,
    $$select tbl, con_name, def from before_cons$$,
    'restore_keys brings back every constraint with its definition'
);
select is(
    obj_description('idx_races_date'::regclass, 'pg_class'), 'pgtap comment',
    'restore_keys keeps index comments'
);

select * from finish();
rollback;
