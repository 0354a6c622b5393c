-- pgTAP tests for schema/0002_races.sql: structure, CHECK, NOT NULL, enum columns.
-- Safe against a loaded database: fixtures are named 'pgtap ...' and rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(34);

select has_table('public', 'races', 'table public.races exists');
select isnt(
    obj_description('public.races'::regclass, 'pg_class'), null, 'public.races has a comment'
);
select is_empty(
    $$
    select a.attname
    from pg_catalog.pg_attribute as a
    where
        a.attrelid = 'public.races'::regclass
        and a.attname in ('race_date', 'distance', 'weather_conditions', 'updated_at')
        and col_description(a.attrelid, a.attnum) is null
    $$,
    'races.race_date, distance, weather_conditions, updated_at have comments'
);
select columns_are(
    'public', 'races',
    array[
        'id', 'race_name', 'race_date', 'track_name', 'race_type', 'distance', 'surface',
        'weather_conditions', 'created_at', 'updated_at'
    ]::name[],
    'races has exactly the spec columns'
);

-- Column types, nullability and defaults: tests/test_spec_schema.py compares every
-- column with the spec's own DDL; columns_are above pins the set of columns.

-- Keys, nullability, defaults.
select col_is_pk('public', 'races', 'id', 'races.id is the primary key');
select col_has_default('public', 'races', 'id', 'races.id has a default (its sequence)');
select has_sequence('public', 'races_id_seq', 'sequence races_id_seq backs races.id');
select col_not_null('public', 'races', 'race_name', 'races.race_name is not null');
select col_not_null('public', 'races', 'race_date', 'races.race_date is not null');
select col_is_null('public', 'races', 'track_name', 'races.track_name is nullable');
select col_is_null('public', 'races', 'race_type', 'races.race_type is nullable');
select col_is_null('public', 'races', 'distance', 'races.distance is nullable');
select col_is_null('public', 'races', 'weather_conditions', 'races.weather_conditions is nullable');
select col_default_is(
    'public', 'races', 'surface', 'dirt'::text, 'races.surface defaults to dirt'
);
select col_default_is(
    'public', 'races', 'created_at', 'CURRENT_TIMESTAMP'::text,
    'races.created_at defaults to current_timestamp'
);
select col_default_is(
    'public', 'races', 'updated_at', 'CURRENT_TIMESTAMP'::text,
    'races.updated_at defaults to current_timestamp'
);
select set_eq(
    $$
    select c.conname::text
    from pg_catalog.pg_constraint as c
    where c.conrelid = 'public.races'::regclass
    $$,
    array['races_pkey', 'check_races_distance_positive'],
    'races has exactly its primary key and check_races_distance_positive'
);
select col_has_check('public', 'races', 'distance', 'races.distance has a check constraint');

-- Indexes.
select indexes_are(
    'public', 'races',
    array[
        'races_pkey', 'idx_races_date', 'idx_races_track', 'idx_races_type',
        'idx_races_weather_gin', 'idx_races_date_track'
    ]::name[],
    'races has exactly the expected indexes'
);
select has_index(
    'public', 'races', 'idx_races_date', array['race_date']::name[],
    'idx_races_date is on (race_date)'
);
select has_index(
    'public', 'races', 'idx_races_track', array['track_name']::name[],
    'idx_races_track is on (track_name)'
);
select has_index(
    'public', 'races', 'idx_races_type', array['race_type']::name[],
    'idx_races_type is on (race_type)'
);
select has_index(
    'public', 'races', 'idx_races_weather_gin', array['weather_conditions']::name[],
    'idx_races_weather_gin is on (weather_conditions)'
);
select index_is_type(
    'public', 'races', 'idx_races_weather_gin', 'gin', 'idx_races_weather_gin is a gin index'
);
select has_index(
    'public', 'races', 'idx_races_date_track', array['race_date', 'track_name']::name[],
    'idx_races_date_track is on (race_date, track_name)'
);

-- Behaviour: CHECK, NOT NULL, enum labels, default.
select throws_ok(
    $$
    insert into public.races (race_name, race_date, distance)
    values ('pgtap race', '2024-05-01', 0)
    $$,
    '23514', null, 'distance 0 violates check_races_distance_positive'
);
select throws_ok(
    $$
    insert into public.races (race_name, race_date, distance)
    values ('pgtap race', '2024-05-01', -1)
    $$,
    '23514', null, 'a negative distance violates check_races_distance_positive'
);
select lives_ok(
    $$
    insert into public.races (race_name, race_date, distance)
    values ('pgtap race', '2024-05-01', 0.01)
    $$,
    'the smallest positive distance 0.01 is accepted'
);
select throws_ok(
    $$insert into public.races (race_name, race_date) values (null, '2024-05-01')$$,
    '23502', null, 'races.race_name null is rejected'
);
select throws_ok(
    $$insert into public.races (race_name, race_date) values ('pgtap race', null)$$,
    '23502', null, 'races.race_date null is rejected'
);
select throws_ok(
    $$
    insert into public.races (race_name, race_date, race_type)
    values ('pgtap race', '2024-05-01', 'gallop')
    $$,
    '22P02', null, 'an unknown race_type label is rejected'
);
select throws_ok(
    $$
    insert into public.races (race_name, race_date, surface)
    values ('pgtap race', '2024-05-01', 'mud')
    $$,
    '22P02', null, 'an unknown surface label is rejected'
);

insert into public.races (race_name, race_date, race_type, weather_conditions)
values ('pgtap race defaults', '2024-05-02', 'hurdle', '{"condition": "rain"}');

select results_eq(
    $$
    select surface::text, race_type::text, created_at = now(), updated_at = now()
    from public.races
    where race_name = 'pgtap race defaults'
    $$,
    $$values ('dirt', 'hurdle', true, true)$$,
    'a new race gets surface dirt and created_at/updated_at = now()'
);
select is(
    (
        select count(*)::integer
        from public.races
        where race_name = 'pgtap race defaults' and weather_conditions @> '{"condition": "rain"}'
    ),
    1,
    'weather_conditions can be searched with jsonb containment'
);

select * from finish();
rollback;
