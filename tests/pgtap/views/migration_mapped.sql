-- pgTAP tests for views/migration_mapped.sql: staged text rows through the per-column rules, the
-- typed values of valid rows, the reasons of invalid ones, and the counted normalisations.
begin;
create extension if not exists pgtap;
select plan(16);

select set_config('hrp.source_timezone', 'UTC', true);
insert into migration_stage.races values
(
    '1', 'Gold Cup', '2024-06-20', 'Ascot', 'Flat', '4023.3600000000001', ' Turf', 'sunny',
    '1700000000', '2024-01-01T10:00:00+02:00'
),
('2', 'No Date', null, null, 'chariot', '-5', null, '{bad', 'garbage', null),
('3', 'Nul Weather', '2024-06-21', null, null, null, null, '{"wind": "\u0000"}', null, null);
insert into migration_stage.predictions values
('1', '1', '1', '0.17974299999999999', '0.12345', 'v1', '2024-06-10 08:00:00'),
('2', null, 'x', null, '1.5', repeat('v', 21), '');
insert into migration_stage.api_credentials values
('1', 'racing_api', 'k', null, null, 'yes', null);

select results_eq(
    $$select id, race_type::text, distance, surface::text, weather_conditions, created_at,
             updated_at
      from migration.races_mapped where reason is null$$,
    $$values (1::bigint, 'flat', 4023.36::numeric(6, 2), 'turf', '"sunny"'::jsonb,
              '2023-11-14 22:13:20+00'::timestamptz, '2024-01-01 08:00:00+00'::timestamptz)$$,
    'races: a valid row gets its typed values'
);
select is(
    (
        select norms from migration.races_mapped
        where id = 1
    ),
    array[
        'enum_label_case_folded', 'enum_label_case_folded', 'weather_text_as_json_string',
        'timestamp_from_epoch', 'timestamp_offset_to_utc'
    ],
    'races: normalisations of the valid row (float noise is not a rounding)'
);
select is(
    (
        select reason from migration.races_mapped
        where id = 2
    ),
    'race_date: NULL in a NOT NULL column; race_type: unknown label; distance: not > 0 (check); '
    || 'weather_conditions: malformed JSON; created_at: unparseable timestamp',
    'races: every failed rule of an invalid row, by column'
);
select results_eq(
    $$select prediction_value, confidence, created_at, updated_at from migration.predictions_mapped
      where id = 1$$,
    $$values (0.179743::numeric(10, 6), 0.1235::numeric(5, 4),
              '2024-06-10 08:00:00+00'::timestamptz,
              '2024-06-10 08:00:00+00'::timestamptz)$$,
    'predictions: REAL -> DECIMAL at the target scale, updated_at := created_at'
);
select is(
    (
        select norms from migration.predictions_mapped
        where id = 1
    ),
    array['real_rounded_to_scale'],
    'predictions: 0.12345 -> 0.1235 is a counted rounding, 0.17974299999999999 is not'
);
select is(
    (
        select reason from migration.predictions_mapped
        where id = 2
    ),
    'race_id: NULL in a NOT NULL column; horse_id: not an integer; '
    || 'prediction_value: NULL in a NOT NULL column; confidence: not between 0 and 1 (check); '
    || 'algorithm_version: longer than 20 characters; '
    || 'created_at: unparseable timestamp',
    'predictions: reasons of an invalid row'
);
select results_eq(
    $$select is_active, norms from migration.api_credentials_mapped$$,
    $$values (true, array['boolean_from_text'])$$,
    'api_credentials: boolean words are a counted normalisation'
);
select is(
    (select count(*)::int from migration.horses_mapped), 0, 'horses: no staged rows, no mapped rows'
);
-- The loader's fast path for predictions (hrp.map_fast = on): plain casts of canonical values.
select is(
    current_setting('hrp.map_fast', true) is distinct from 'on', true,
    'predictions: the fast path is off unless the loader sets it'
);
select set_config('hrp.map_fast', 'on', true);
select throws_ok(
    $$select count(m.*) from migration.predictions_mapped as m$$, '22P02', null,
    'predictions: on, the fast path casts raise on text that is no number (map_rows then maps '
    || 'with it off)'
);
select set_config('hrp.map_fast', 'off', true);
select lives_ok(
    $$select count(m.*) from migration.predictions_mapped as m$$,
    'predictions: off, the same rows map by the rules without raising'
);
-- values every cast accepts but that are not canonical, out of range, or need a rule: the fast
-- path must hand each of them to the rules (row 2, whose values no cast accepts, is left out)
delete from migration_stage.predictions
where id = '2';
insert into migration_stage.predictions values
('10', '5', '7', '0.5', '0.25', 'v2', '2024-06-10 08:00:00'),
('11', '+5', '07', '0.50', '.25', 'v2', '2024-06-10T08:00:00'),
('12', '-0', '1000000000000000000', '1e-4', '0.2500', 'v2', '2024-06-10 08:00'),
('13', ' 5', '7 ', 'NaN', 'Infinity', 'v2', '2024-06-10 08:00:00.5'),
('14', '-5', '-7', '-Infinity', '1', 'v2', '0044-03-15 12:00:00 BC'),
('15', '5', '7', '12345.5', '0.12345', 'v2', '2024-06-10 08:00:00+02'),
('16', '5', '7', '0.1234565', null, null, 'epoch'),
('17', '5', '7', '-0.5', '0', repeat('v', 20), 'infinity'),
('18', '5', '7', '0.5', '0.5', repeat('v', 21), '2024-06-10'),
('19', '5', '7', '0.5', '0.5', 'v2', null),
('20', '5', '7', '0.5' || repeat('0', 60), '1.0', 'v2', '2024-02-29 23:59:59'),
('21', '5', '7', '9999.9999995', '0.5', 'v2', '2024-06-10 23:59:60'),
('22', '5', '7', '1234.123456', '0.9999', 'v2', '0999-12-31 23:59:59.999999');
select set_config('hrp.map_fast', 'on', true);
create temp table mapped_fast as
select
    id,
    m::text as mapped
from migration.predictions_mapped as m;
select set_config('hrp.map_fast', 'off', true);
select results_eq(
    $$select id, mapped from mapped_fast order by id$$,
    $$select id, m::text from migration.predictions_mapped as m order by id$$,
    'predictions: the fast path gives every row exactly what the rules give (values, scale, '
    || 'reasons, normalisations)'
);

-- races and horses: the fast path of their timestamps (ts_kind_fast) gives what the rules give
insert into migration_stage.horses values
('1', 'Frankel', '5', '500', null, null, null, '2024-06-10 08:00:00', '2024-06-10T08:00:00'),
('2', 'Dancer', '4', '450.05', null, null, null, '2024-06-10 08:00', '1700000000');
select set_config('hrp.map_fast', 'on', true);
create temp table small_fast as
select
    'races' as tbl,
    m::text as mapped
from migration.races_mapped as m
union all
select
    'horses' as tbl,
    m::text as mapped
from migration.horses_mapped as m;
select set_config('hrp.map_fast', 'off', true);
select set_eq(
    $$select tbl, mapped from small_fast$$,
    $$select 'races', m::text from migration.races_mapped as m
      union all select 'horses', m::text from migration.horses_mapped as m$$,
    'races, horses: the fast path of their timestamps gives every row what the rules give'
);

select has_view('migration', 'users_mapped', 'view migration.users_mapped exists');
select isnt(
    obj_description('migration.races_mapped'::regclass, 'pg_class'),
    null,
    'races_mapped has a comment'
);

select is(
    (
        select reason from migration.races_mapped
        where id = 3
    ),
    'weather_conditions: JSON with a \u0000 escape, which jsonb cannot hold',
    'races: valid JSON jsonb cannot hold has a reason of its own, not "malformed JSON"'
);

select * from finish();
rollback;
