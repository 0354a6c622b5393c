-- pgTAP tests for schema/0003_horses.sql: structure, range CHECKs, unique name.
-- Safe against a loaded database: fixtures are named 'pgtap ...' and rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(38);

select has_table('public', 'horses', 'table public.horses exists');
select isnt(
    obj_description('public.horses'::regclass, 'pg_class'), null, 'public.horses has a comment'
);
select is_empty(
    $$
    select a.attname
    from pg_catalog.pg_attribute as a
    where
        a.attrelid = 'public.horses'::regclass
        and a.attname in ('age', 'weight', 'pedigree', 'performance_stats', 'updated_at')
        and col_description(a.attrelid, a.attnum) is null
    $$,
    'horses.age, weight, pedigree, performance_stats, updated_at have comments'
);
select columns_are(
    'public', 'horses',
    array[
        'id', 'horse_name', 'age', 'weight', 'jockey', 'trainer', 'owner', 'pedigree',
        'performance_stats', 'created_at', 'updated_at'
    ]::name[],
    'horses has exactly the spec columns'
);

-- Column types, nullability and defaults: tests/test_spec_schema.py compares every
-- column with the spec's own DDL; columns_are above pins the set of columns.

-- Keys, nullability, defaults.
select col_is_pk('public', 'horses', 'id', 'horses.id is the primary key');
select col_has_default('public', 'horses', 'id', 'horses.id has a default (its sequence)');
select has_sequence('public', 'horses_id_seq', 'sequence horses_id_seq backs horses.id');
select col_not_null('public', 'horses', 'horse_name', 'horses.horse_name is not null');
select col_is_null('public', 'horses', 'age', 'horses.age is nullable');
select col_is_null('public', 'horses', 'weight', 'horses.weight is nullable');
select col_is_null('public', 'horses', 'jockey', 'horses.jockey is nullable');
select col_default_is(
    'public', 'horses', 'created_at', 'CURRENT_TIMESTAMP'::text,
    'horses.created_at defaults to current_timestamp'
);
select col_default_is(
    'public', 'horses', 'updated_at', 'CURRENT_TIMESTAMP'::text,
    'horses.updated_at defaults to current_timestamp'
);
select set_eq(
    $$
    select c.conname::text
    from pg_catalog.pg_constraint as c
    where c.conrelid = 'public.horses'::regclass
    $$,
    array[
        'horses_pkey', 'unique_horse_name', 'check_horses_age_range', 'check_horses_weight_range'
    ],
    'horses has exactly its primary key, unique_horse_name and the two range checks'
);
select col_is_unique(
    'public', 'horses', array['horse_name']::name[], 'horses.horse_name is unique'
);
select col_has_check('public', 'horses', 'age', 'horses.age has a check constraint');
select col_has_check('public', 'horses', 'weight', 'horses.weight has a check constraint');

-- Indexes.
select indexes_are(
    'public', 'horses',
    array[
        'horses_pkey', 'unique_horse_name', 'idx_horses_jockey', 'idx_horses_trainer',
        'idx_horses_age_weight', 'idx_horses_pedigree_gin', 'idx_horses_stats_gin',
        'idx_horses_trainer_age', 'index_horses_on_horse_name_trgm'
    ]::name[],
    'horses has exactly the expected indexes (the spec''s and schema/0030''s trigram index)'
);
select hasnt_index(
    'public', 'horses', 'idx_horses_name',
    'idx_horses_name is left out (unique_horse_name already indexes horse_name)'
);
select index_is_unique(
    'public', 'horses', 'unique_horse_name', 'unique_horse_name is a unique index'
);
select has_index(
    'public', 'horses', 'unique_horse_name', array['horse_name']::name[],
    'unique_horse_name is on (horse_name)'
);
select has_index(
    'public', 'horses', 'idx_horses_jockey', array['jockey']::name[],
    'idx_horses_jockey is on (jockey)'
);
select has_index(
    'public', 'horses', 'idx_horses_trainer', array['trainer']::name[],
    'idx_horses_trainer is on (trainer)'
);
select has_index(
    'public', 'horses', 'idx_horses_age_weight', array['age', 'weight']::name[],
    'idx_horses_age_weight is on (age, weight)'
);
select has_index(
    'public', 'horses', 'idx_horses_pedigree_gin', array['pedigree']::name[],
    'idx_horses_pedigree_gin is on (pedigree)'
);
select index_is_type(
    'public', 'horses', 'idx_horses_pedigree_gin', 'gin',
    'idx_horses_pedigree_gin is a gin index'
);
select has_index(
    'public', 'horses', 'idx_horses_stats_gin', array['performance_stats']::name[],
    'idx_horses_stats_gin is on (performance_stats)'
);
select index_is_type(
    'public', 'horses', 'idx_horses_stats_gin', 'gin', 'idx_horses_stats_gin is a gin index'
);
select has_index(
    'public', 'horses', 'idx_horses_trainer_age', array['trainer', 'age']::name[],
    'idx_horses_trainer_age is on (trainer, age)'
);

-- Behaviour: range CHECKs on each side, NOT NULL, UNIQUE.
select throws_ok(
    $$insert into public.horses (horse_name, age) values ('pgtap horse age 1', 1)$$,
    '23514', null, 'age 1 (below 2) violates check_horses_age_range'
);
select throws_ok(
    $$insert into public.horses (horse_name, age) values ('pgtap horse age 21', 21)$$,
    '23514', null, 'age 21 (above 20) violates check_horses_age_range'
);
select lives_ok(
    $$
    insert into public.horses (horse_name, age)
    values ('pgtap horse age 2', 2), ('pgtap horse age 20', 20)
    $$,
    'ages 2 and 20 (the bounds) are accepted'
);
select throws_ok(
    $$insert into public.horses (horse_name, weight) values ('pgtap horse light', 299.9)$$,
    '23514', null, 'weight 299.9 (below 300) violates check_horses_weight_range'
);
select throws_ok(
    $$insert into public.horses (horse_name, weight) values ('pgtap horse heavy', 700.1)$$,
    '23514', null, 'weight 700.1 (above 700) violates check_horses_weight_range'
);
select lives_ok(
    $$
    insert into public.horses (horse_name, weight)
    values ('pgtap horse 300kg', 300), ('pgtap horse 700kg', 700)
    $$,
    'weights 300 and 700 (the bounds) are accepted'
);
select throws_ok(
    $$insert into public.horses (horse_name) values (null)$$,
    '23502', null, 'horses.horse_name null is rejected'
);
select throws_ok(
    $$insert into public.horses (horse_name) values ('pgtap horse age 2')$$,
    '23505', null, 'a second horse with the same name violates unique_horse_name'
);
select results_eq(
    $$
    select created_at = now(), updated_at = now()
    from public.horses
    where horse_name = 'pgtap horse age 2'
    $$,
    $$values (true, true)$$,
    'a new horse gets created_at/updated_at = now()'
);

select * from finish();
rollback;
