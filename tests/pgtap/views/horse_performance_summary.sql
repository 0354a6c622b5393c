-- pgTAP tests for views/horse_performance_summary.sql: columns, and the
-- aggregates over a small fixture (including a horse with no predictions and
-- a prediction with null confidence). Assertions only look at the fixture rows.
-- Safe against a loaded database: fixtures are named 'pgtap ...', ids come from
-- the sequences, and everything is rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(5);

select has_view('public', 'horse_performance_summary', 'view horse_performance_summary exists');
select isnt(
    obj_description('public.horse_performance_summary'::regclass, 'pg_class'), null,
    'horse_performance_summary has a comment'
);
select columns_are(
    'public', 'horse_performance_summary',
    array[
        'id', 'horse_name', 'total_predictions', 'avg_confidence', 'max_confidence',
        'high_confidence_predictions', 'age', 'weight', 'jockey', 'trainer'
    ]::name[],
    'horse_performance_summary has exactly the spec columns'
);
-- its column types: tests/test_spec_schema.py compares them with the spec's view

-- Fixture: horse a has five predictions (one with null confidence, one at
-- exactly 0.8, which is not "high"), horse b none, horse c one.
create temp table pgtap_ids on commit drop as
select
    nextval(pg_get_serial_sequence('public.races', 'id')) as race_1,
    nextval(pg_get_serial_sequence('public.races', 'id')) as race_2,
    nextval(pg_get_serial_sequence('public.horses', 'id')) as horse_a,
    nextval(pg_get_serial_sequence('public.horses', 'id')) as horse_b,
    nextval(pg_get_serial_sequence('public.horses', 'id')) as horse_c;

insert into public.races (id, race_name, race_date) values
((select race_1 from pgtap_ids), 'pgtap view race 1', '2024-08-01'),
((select race_2 from pgtap_ids), 'pgtap view race 2', '2024-08-02');

insert into public.horses (id, horse_name, age, weight, jockey, trainer) values
((select horse_a from pgtap_ids), 'pgtap view horse a', 5, 450.5, 'pgtap jockey', 'pgtap trainer'),
((select horse_b from pgtap_ids), 'pgtap view horse b', 3, null, null, null),
((select horse_c from pgtap_ids), 'pgtap view horse c', 7, 520.0, 'pgtap jockey', null);

insert into public.predictions (race_id, horse_id, prediction_value, confidence, algorithm_version)
values
((select race_1 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, 0.95, 'pgtap v1'),
((select race_1 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, 0.5, 'pgtap v2'),
((select race_1 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, null, 'pgtap v3'),
((select race_2 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, 0.8, 'pgtap v1'),
((select race_2 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, 0.81, 'pgtap v2'),
((select race_1 from pgtap_ids), (select horse_c from pgtap_ids), 0.1, 0.2, 'pgtap v1');

-- horse a: 5 predictions, avg of the 4 non-null (0.95 + 0.5 + 0.8 + 0.81) / 4 = 0.765,
-- max 0.95, 2 above 0.8 (0.95, 0.81).
select results_eq(
    $$
    select
        id, horse_name, total_predictions, avg_confidence, max_confidence,
        high_confidence_predictions, age, weight, jockey, trainer
    from public.horse_performance_summary
    where horse_name like 'pgtap view horse %'
    order by horse_name
    $$,
    $$
    values
    (
        (select horse_a from pgtap_ids), 'pgtap view horse a'::varchar, 5::bigint,
        0.765::numeric, 0.95::numeric, 2::bigint, 5::smallint, 450.5::numeric,
        'pgtap jockey'::varchar, 'pgtap trainer'::varchar
    ),
    (
        (select horse_b from pgtap_ids), 'pgtap view horse b', 0, null, null, 0, 3::smallint,
        null, null, null
    ),
    (
        (select horse_c from pgtap_ids), 'pgtap view horse c', 1, 0.2, 0.2, 0, 7::smallint, 520.0,
        'pgtap jockey', null
    )
    $$,
    'horse_performance_summary counts, averages and maxes each fixture horse''s predictions'
);

-- Deleting a prediction is reflected at once (it is a plain view).
delete from public.predictions
where
    horse_id = (select horse_a from pgtap_ids)
    and confidence = 0.95;

select results_eq(
    $$
    select total_predictions, max_confidence, high_confidence_predictions
    from public.horse_performance_summary
    where horse_name = 'pgtap view horse a'
    $$,
    $$values (4::bigint, 0.81::numeric, 1::bigint)$$,
    'horse_performance_summary follows the predictions table'
);

select * from finish();
rollback;
