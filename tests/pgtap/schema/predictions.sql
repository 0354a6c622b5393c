-- pgTAP tests for schema/0004_predictions.sql: structure, foreign keys with
-- ON DELETE CASCADE, the confidence range, NOT NULLs and the unique key.
-- Safe against a loaded database: fixtures are named 'pgtap ...', their ids come
-- from the sequences (kept in a temp table) and everything is rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(47);

select has_table('public', 'predictions', 'table public.predictions exists');
select isnt(
    obj_description('public.predictions'::regclass, 'pg_class'), null,
    'public.predictions has a comment'
);
select is_empty(
    $$
    select a.attname
    from pg_catalog.pg_attribute as a
    where
        a.attrelid = 'public.predictions'::regclass
        and a.attname in (
            'prediction_value', 'confidence', 'algorithm_version', 'model_features',
            'prediction_metadata', 'updated_at'
        )
        and col_description(a.attrelid, a.attnum) is null
    $$,
    'predictions.prediction_value, confidence, algorithm_version, model_features, '
    || 'prediction_metadata, updated_at have comments'
);
select columns_are(
    'public', 'predictions',
    array[
        'id', 'race_id', 'horse_id', 'prediction_value', 'confidence', 'algorithm_version',
        'model_features', 'prediction_metadata', 'created_at', 'updated_at'
    ]::name[],
    'predictions has exactly the spec columns'
);

-- Column types, nullability and defaults: tests/test_spec_schema.py compares every
-- column with the spec's own DDL; columns_are above pins the set of columns.

-- Keys, nullability, defaults.
select col_is_pk('public', 'predictions', 'id', 'predictions.id is the primary key');
select col_has_default(
    'public', 'predictions', 'id', 'predictions.id has a default (its sequence)'
);
select has_sequence(
    'public', 'predictions_id_seq', 'sequence predictions_id_seq backs predictions.id'
);
select col_not_null('public', 'predictions', 'race_id', 'predictions.race_id is not null');
select col_not_null('public', 'predictions', 'horse_id', 'predictions.horse_id is not null');
select col_not_null(
    'public', 'predictions', 'prediction_value', 'predictions.prediction_value is not null'
);
select col_not_null(
    'public', 'predictions', 'algorithm_version', 'predictions.algorithm_version is not null'
);
select col_is_null('public', 'predictions', 'confidence', 'predictions.confidence is nullable');
select col_default_is(
    'public', 'predictions', 'created_at', 'CURRENT_TIMESTAMP'::text,
    'predictions.created_at defaults to current_timestamp'
);
select col_default_is(
    'public', 'predictions', 'updated_at', 'CURRENT_TIMESTAMP'::text,
    'predictions.updated_at defaults to current_timestamp'
);
select set_eq(
    $$
    select c.conname::text
    from pg_catalog.pg_constraint as c
    where c.conrelid = 'public.predictions'::regclass
    $$,
    array[
        'predictions_pkey', 'fk_predictions_race', 'fk_predictions_horse',
        'unique_race_horse_prediction', 'check_predictions_confidence_range'
    ],
    'predictions has exactly its primary key, two foreign keys, unique key and confidence check'
);
select fk_ok(
    'public', 'predictions', 'race_id', 'public', 'races', 'id',
    'fk_predictions_race: predictions.race_id references races.id'
);
select fk_ok(
    'public', 'predictions', 'horse_id', 'public', 'horses', 'id',
    'fk_predictions_horse: predictions.horse_id references horses.id'
);
select set_eq(
    $$
    select c.conname::text, c.confdeltype::text
    from pg_catalog.pg_constraint as c
    where c.conrelid = 'public.predictions'::regclass and c.contype = 'f'
    $$,
    $$values ('fk_predictions_race', 'c'), ('fk_predictions_horse', 'c')$$,
    'both foreign keys are ON DELETE CASCADE'
);
select col_is_unique(
    'public', 'predictions', array['race_id', 'horse_id', 'algorithm_version']::name[],
    'unique_race_horse_prediction: (race_id, horse_id, algorithm_version) is unique'
);
select col_has_check(
    'public', 'predictions', 'confidence', 'predictions.confidence has a check constraint'
);

-- Indexes.
select indexes_are(
    'public', 'predictions',
    array[
        'predictions_pkey', 'unique_race_horse_prediction', 'idx_predictions_race',
        'idx_predictions_horse', 'idx_predictions_confidence', 'idx_predictions_algorithm',
        'idx_predictions_created', 'idx_predictions_features_gin',
        'idx_predictions_race_confidence', 'idx_high_confidence_predictions'
    ]::name[],
    'predictions has exactly the expected indexes'
);
select index_is_unique(
    'public', 'predictions', 'unique_race_horse_prediction',
    'unique_race_horse_prediction is a unique index'
);
select has_index(
    'public', 'predictions', 'idx_predictions_race', array['race_id']::name[],
    'idx_predictions_race is on (race_id)'
);
select has_index(
    'public', 'predictions', 'idx_predictions_horse', array['horse_id']::name[],
    'idx_predictions_horse is on (horse_id)'
);
select has_index(
    'public', 'predictions', 'idx_predictions_confidence', array['confidence']::name[],
    'idx_predictions_confidence is on (confidence)'
);
select has_index(
    'public', 'predictions', 'idx_predictions_algorithm', array['algorithm_version']::name[],
    'idx_predictions_algorithm is on (algorithm_version)'
);
select has_index(
    'public', 'predictions', 'idx_predictions_created', array['created_at']::name[],
    'idx_predictions_created is on (created_at)'
);
select has_index(
    'public', 'predictions', 'idx_predictions_features_gin', array['model_features']::name[],
    'idx_predictions_features_gin is on (model_features)'
);
select index_is_type(
    'public', 'predictions', 'idx_predictions_features_gin', 'gin',
    'idx_predictions_features_gin is a gin index'
);
select has_index(
    'public', 'predictions', 'idx_predictions_race_confidence',
    array['race_id', 'confidence']::name[],
    'idx_predictions_race_confidence is on (race_id, confidence)'
);
select matches(
    (
        select i.indexdef
        from pg_catalog.pg_indexes as i
        where i.schemaname = 'public' and i.indexname = 'idx_predictions_race_confidence'
    ),
    'USING btree \(race_id, confidence DESC\)$',
    'idx_predictions_race_confidence orders confidence descending'
);
select has_index(
    'public', 'predictions', 'idx_high_confidence_predictions', array['id']::name[],
    'idx_high_confidence_predictions is on (id)'
);
select matches(
    (
        select i.indexdef
        from pg_catalog.pg_indexes as i
        where i.schemaname = 'public' and i.indexname = 'idx_high_confidence_predictions'
    ),
    'USING btree \(id\) WHERE \(confidence > 0\.8\)$',
    'idx_high_confidence_predictions is partial: WHERE confidence > 0.8'
);

-- Fixture: two races and two horses, with ids drawn from their sequences first.
create temp table pgtap_ids on commit drop as
select
    nextval(pg_get_serial_sequence('public.races', 'id')) as race_a,
    nextval(pg_get_serial_sequence('public.races', 'id')) as race_b,
    nextval(pg_get_serial_sequence('public.horses', 'id')) as horse_x,
    nextval(pg_get_serial_sequence('public.horses', 'id')) as horse_y;

insert into public.races (id, race_name, race_date) values
((select race_a from pgtap_ids), 'pgtap race a', '2024-06-01'),
((select race_b from pgtap_ids), 'pgtap race b', '2024-06-02');

insert into public.horses (id, horse_name) values
((select horse_x from pgtap_ids), 'pgtap horse x'),
((select horse_y from pgtap_ids), 'pgtap horse y');

-- Behaviour: confidence range on each side, NOT NULLs, unique key, foreign keys.
select throws_ok(
    $$
    insert into public.predictions
        (race_id, horse_id, prediction_value, confidence, algorithm_version)
    select race_a, horse_x, 0.5, -0.0001, 'pgtap v1' from pgtap_ids
    $$,
    '23514', null, 'confidence -0.0001 (below 0) violates check_predictions_confidence_range'
);
select throws_ok(
    $$
    insert into public.predictions
        (race_id, horse_id, prediction_value, confidence, algorithm_version)
    select race_a, horse_x, 0.5, 1.0001, 'pgtap v1' from pgtap_ids
    $$,
    '23514', null, 'confidence 1.0001 (above 1) violates check_predictions_confidence_range'
);
select lives_ok(
    $$
    insert into public.predictions
        (race_id, horse_id, prediction_value, confidence, algorithm_version)
    select race_a, horse_x, 0.5, 0, 'pgtap v0' from pgtap_ids
    union all
    select race_a, horse_x, 0.5, 1, 'pgtap v1' from pgtap_ids
    $$,
    'confidence 0 and 1 (the bounds) are accepted'
);
select throws_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select null, horse_x, 0.5, 'pgtap v2' from pgtap_ids
    $$,
    '23502', null, 'predictions.race_id null is rejected'
);
select throws_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select race_a, null, 0.5, 'pgtap v2' from pgtap_ids
    $$,
    '23502', null, 'predictions.horse_id null is rejected'
);
select throws_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select race_a, horse_x, null, 'pgtap v2' from pgtap_ids
    $$,
    '23502', null, 'predictions.prediction_value null is rejected'
);
select throws_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select race_a, horse_x, 0.5, null from pgtap_ids
    $$,
    '23502', null, 'predictions.algorithm_version null is rejected'
);
select throws_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select race_a, horse_x, 0.25, 'pgtap v1' from pgtap_ids
    $$,
    '23505', null, 'a second (race, horse, algorithm_version) violates unique_race_horse_prediction'
);
select lives_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select race_a, horse_y, 0.5, 'pgtap v1' from pgtap_ids
    $$,
    'the same race and algorithm_version with another horse is accepted'
);
select throws_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select -1, horse_x, 0.5, 'pgtap v3' from pgtap_ids
    $$,
    '23503', null, 'a race_id with no race violates fk_predictions_race'
);
select throws_ok(
    $$
    insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version)
    select race_a, -1, 0.5, 'pgtap v3' from pgtap_ids
    $$,
    '23503', null, 'a horse_id with no horse violates fk_predictions_horse'
);

-- Behaviour: deleting a race, then a horse, deletes their predictions (ON DELETE CASCADE).
insert into public.predictions (race_id, horse_id, prediction_value, algorithm_version) values
((select race_b from pgtap_ids), (select horse_x from pgtap_ids), 0.5, 'pgtap v1'),
((select race_b from pgtap_ids), (select horse_y from pgtap_ids), 0.5, 'pgtap v1');

delete from public.races
where id = (select race_a from pgtap_ids);

select is(
    (
        select count(*)::integer
        from public.predictions as p
        where p.race_id = (select f.race_a from pgtap_ids as f)
    ),
    0,
    'deleting race a deleted its predictions'
);
select is(
    (
        select count(*)::integer
        from public.predictions as p
        where p.race_id = (select f.race_b from pgtap_ids as f)
    ),
    2,
    'deleting race a left race b''s predictions alone'
);

delete from public.horses
where id = (select horse_x from pgtap_ids);

select results_eq(
    $$
    select horse_id
    from public.predictions
    where race_id = (select race_b from pgtap_ids)
    $$,
    $$select horse_y from pgtap_ids$$,
    'deleting horse x deleted its predictions, horse y''s remain'
);

select * from finish();
rollback;
