-- pgTAP tests for views/race_statistics.sql: columns, and the aggregates over
-- a small fixture (including a race with no predictions and a prediction with
-- null confidence). Assertions only look at the fixture rows.
-- Safe against a loaded database: fixtures are named 'pgtap ...', ids come from
-- the sequences, and everything is rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(5);

select has_view('public', 'race_statistics', 'view race_statistics exists');
select isnt(
    obj_description('public.race_statistics'::regclass, 'pg_class'), null,
    'race_statistics has a comment'
);
select columns_are(
    'public', 'race_statistics',
    array[
        'id', 'race_name', 'race_date', 'track_name', 'prediction_count', 'avg_confidence',
        'max_confidence', 'min_confidence'
    ]::name[],
    'race_statistics has exactly the spec columns'
);
-- its column types: tests/test_spec_schema.py compares them with the spec's view

-- Fixture: race 1 has four predictions (one with null confidence), race 2 two,
-- race 3 none.
create temp table pgtap_ids on commit drop as
select
    nextval(pg_get_serial_sequence('public.races', 'id')) as race_1,
    nextval(pg_get_serial_sequence('public.races', 'id')) as race_2,
    nextval(pg_get_serial_sequence('public.races', 'id')) as race_3,
    nextval(pg_get_serial_sequence('public.horses', 'id')) as horse_a,
    nextval(pg_get_serial_sequence('public.horses', 'id')) as horse_b;

insert into public.races (id, race_name, race_date, track_name) values
((select race_1 from pgtap_ids), 'pgtap stats race 1', '2024-09-01', 'pgtap track'),
((select race_2 from pgtap_ids), 'pgtap stats race 2', '2024-09-02', null),
((select race_3 from pgtap_ids), 'pgtap stats race 3', '2024-09-03', 'pgtap track');

insert into public.horses (id, horse_name) values
((select horse_a from pgtap_ids), 'pgtap stats horse a'),
((select horse_b from pgtap_ids), 'pgtap stats horse b');

insert into public.predictions (race_id, horse_id, prediction_value, confidence, algorithm_version)
values
((select race_1 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, 0.95, 'pgtap v1'),
((select race_1 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, 0.5, 'pgtap v2'),
((select race_1 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, null, 'pgtap v3'),
((select race_1 from pgtap_ids), (select horse_b from pgtap_ids), 0.1, 0.2, 'pgtap v1'),
((select race_2 from pgtap_ids), (select horse_a from pgtap_ids), 0.1, 0.8, 'pgtap v1'),
((select race_2 from pgtap_ids), (select horse_b from pgtap_ids), 0.1, 0.81, 'pgtap v1');

-- race 1: 4 predictions, avg of the 3 non-null (0.95 + 0.5 + 0.2) / 3 = 0.55, max 0.95, min 0.2.
-- race 2: 2 predictions, avg 0.805, max 0.81, min 0.8. race 3: none.
select results_eq(
    $$
    select
        id, race_name, race_date, track_name, prediction_count, avg_confidence,
        max_confidence, min_confidence
    from public.race_statistics
    where race_name like 'pgtap stats race %'
    order by race_name
    $$,
    $$
    values
    (
        (select race_1 from pgtap_ids), 'pgtap stats race 1'::varchar, date '2024-09-01',
        'pgtap track'::varchar, 4::bigint, 0.55::numeric, 0.95::numeric, 0.2::numeric
    ),
    ((select race_2 from pgtap_ids), 'pgtap stats race 2', '2024-09-02', null, 2, 0.805, 0.81, 0.8),
    (
        (select race_3 from pgtap_ids), 'pgtap stats race 3', '2024-09-03', 'pgtap track', 0,
        null, null, null
    )
    $$,
    'race_statistics counts, averages, maxes and mins each fixture race''s predictions'
);

-- Deleting a horse (and so, by cascade, its predictions) is reflected at once.
delete from public.horses
where id = (select horse_b from pgtap_ids);

select results_eq(
    $$
    select prediction_count, min_confidence
    from public.race_statistics
    where race_name like 'pgtap stats race %'
    order by race_name
    $$,
    $$values (3::bigint, 0.5::numeric), (1, 0.8), (0, null)$$,
    'race_statistics follows the predictions table'
);

select * from finish();
rollback;
