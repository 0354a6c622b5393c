-- pgTAP tests for functions/migration_map.sql: staged text rows of the spec's shape through the
-- rules the target catalog gives each column (the typed values of valid rows, the reasons of
-- invalid ones, the counted normalisations), the canonical-value shortcut against the rules, the
-- resolution of a mapping file against a source, and an alternative rule (date_part).
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(28);

-- noqa: disable=PRS
\ir ../spec_mapping.psql
-- noqa: enable=PRS
select set_config('hrp.source_timezone', 'UTC', true);
insert into hrp_migration_stage.races values
(
    '1', 'Gold Cup', '2024-06-20', 'Ascot', 'Flat', '4023.3600000000001', ' Turf', 'sunny',
    '1700000000', '2024-01-01T10:00:00+02:00'
),
('2', 'No Date', null, null, 'chariot', '-5', null, '{bad', 'garbage', null),
('3', 'Nul Weather', '2024-06-21', null, null, null, null, '{"wind": "\u0000"}', null, null);
insert into hrp_migration_stage.predictions values
('1', '1', '1', '0.17974299999999999', '0.12345', 'v1', '2024-06-10 08:00:00'),
('2', null, 'x', null, '1.5', repeat('v', 21), '');
insert into hrp_migration_stage.api_credentials values
('1', 'racing_api', 'k', null, null, 'yes', null);
select hrp_migration.build_mapped_views();

select results_eq(
    $$select id, race_type::text, distance, surface::text, weather_conditions, created_at,
             updated_at
      from hrp_migration.races_mapped where reason is null$$,
    $$values (1::bigint, 'flat', 4023.36::numeric(6, 2), 'turf', '"sunny"'::jsonb,
              '2023-11-14 22:13:20+00'::timestamptz, '2024-01-01 08:00:00+00'::timestamptz)$$,
    'races: a valid row gets its typed values'
);
select is(
    (
        select norms from hrp_migration.races_mapped
        where id = 1
    ),
    array[
        'enum_label_case_folded', 'enum_label_case_folded', 'text_as_json_string',
        'timestamp_from_epoch', 'timestamp_offset_to_utc'
    ],
    'races: normalisations of the valid row (float noise is not a rounding)'
);
select is(
    (
        select reason from hrp_migration.races_mapped
        where id = 2
    ),
    'race_date: NULL in a NOT NULL column; race_type: unknown label; '
    || 'weather_conditions: malformed JSON; created_at: unparseable timestamp; '
    || 'distance: violates check_races_distance_positive',
    'races: every failed rule of an invalid row, by column'
);
select results_eq(
    $$select prediction_value, confidence, created_at, updated_at
      from hrp_migration.predictions_mapped
      where id = 1$$,
    $$values (0.179743::numeric(10, 6), 0.1235::numeric(5, 4),
              '2024-06-10 08:00:00+00'::timestamptz,
              '2024-06-10 08:00:00+00'::timestamptz)$$,
    'predictions: REAL -> DECIMAL at the target scale, updated_at := created_at'
);
select is(
    (
        select norms from hrp_migration.predictions_mapped
        where id = 1
    ),
    array['real_rounded_to_scale'],
    'predictions: 0.12345 -> 0.1235 is a counted rounding, 0.17974299999999999 is not'
);
select is(
    (
        select reason from hrp_migration.predictions_mapped
        where id = 2
    ),
    'race_id: NULL in a NOT NULL column; horse_id: not an integer; '
    || 'prediction_value: NULL in a NOT NULL column; '
    || 'algorithm_version: longer than 20 characters; '
    || 'created_at: unparseable timestamp; updated_at: unparseable timestamp; '
    || 'confidence: violates check_predictions_confidence_range',
    'predictions: reasons of an invalid row'
);
select results_eq(
    $$select is_active, norms from hrp_migration.api_credentials_mapped$$,
    $$values (true, array['boolean_from_text'])$$,
    'api_credentials: boolean words are a counted normalisation'
);
select is(
    (select count(*)::int from hrp_migration.horses_mapped),
    0,
    'horses: no staged rows, no mapped rows'
);
-- The loader's canonical-value shortcut (hrp.map_canonical = on): plain casts of canonical values.
select is(
    current_setting('hrp.map_canonical', true) is distinct from 'on', true,
    'predictions: the shortcut is off unless the loader sets it'
);
select set_config('hrp.map_canonical', 'on', true);
select throws_ok(
    $$select count(m.*) from hrp_migration.predictions_mapped as m$$, '22P02', null,
    'predictions: on, the shortcut casts raise on text that is no number (map_rows then maps '
    || 'with it off)'
);
select set_config('hrp.map_canonical', 'off', true);
select lives_ok(
    $$select count(m.*) from hrp_migration.predictions_mapped as m$$,
    'predictions: off, the same rows map by the rules without raising'
);
-- values every cast accepts but that are not canonical, out of range, or need a rule: the shortcut
-- path must hand each of them to the rules (row 2, whose values no cast accepts, is left out)
delete from hrp_migration_stage.predictions
where id = '2';
insert into hrp_migration_stage.predictions values
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
select set_config('hrp.map_canonical', 'on', true);
create temp table mapped_fast as
select
    id,
    m::text as mapped
from hrp_migration.predictions_mapped as m;
select set_config('hrp.map_canonical', 'off', true);
select results_eq(
    $$select id, mapped from mapped_fast order by id$$,
    $$select id, m::text from hrp_migration.predictions_mapped as m order by id$$,
    'predictions: the shortcut gives every row exactly what the rules give (values, scale, '
    || 'reasons, normalisations)'
);

-- races and horses: the shortcut gives what the rules give there too
insert into hrp_migration_stage.horses values
('1', 'Frankel', '5', '500', null, null, null, '2024-06-10 08:00:00', '2024-06-10T08:00:00'),
('2', 'Dancer', '4', '450.05', null, null, null, '2024-06-10 08:00', '1700000000');
select set_config('hrp.map_canonical', 'on', true);
create temp table small_fast as
select
    'races' as tbl,
    m::text as mapped
from hrp_migration.races_mapped as m
union all
select
    'horses' as tbl,
    m::text as mapped
from hrp_migration.horses_mapped as m;
select set_config('hrp.map_canonical', 'off', true);
select set_eq(
    $$select tbl, mapped from small_fast$$,
    $$select 'races', m::text from hrp_migration.races_mapped as m
      union all select 'horses', m::text from hrp_migration.horses_mapped as m$$,
    'races, horses: the shortcut gives every row what the rules give'
);

select has_view(
    'hrp_migration', 'users_mapped', 'view hrp_migration.users_mapped exists (build_mapped_views)'
);
select isnt(
    obj_description('hrp_migration.races_mapped'::regclass, 'pg_class'),
    null,
    'races_mapped has a comment'
);

select is(
    (
        select reason from hrp_migration.races_mapped
        where id = 3
    ),
    'weather_conditions: JSON with a \u0000 escape, which jsonb cannot hold',
    'races: valid JSON jsonb cannot hold has a reason of its own, not "malformed JSON"'
);

-- the catalog's facts a rule reads
select results_eq(
    $$select column_name, type_kind, max_length, num_precision, num_scale, not_null
      from hrp_migration.target_columns('horses') where column_name in ('horse_name', 'age', 'weight')
      order by attnum$$,
    $$values ('horse_name', 'text', 100, null::int, null::int, true),
             ('age', 'integer', null, null, null, false),
             ('weight', 'numeric', null, 5, 1, false)$$,
    'target_columns: type, length, precision and scale, NOT NULL from the catalog'
);

-- a mapping file for a source of another shape (tables as SQLAlchemy writes them)
-- noqa: disable=PRS,LT05
\set app_source '{"tables": {"races": {"columns": [{"name": "id", "type": "INTEGER"}, {"name": "name", "type": "VARCHAR(200)"}, {"name": "date", "type": "DATETIME"}, {"name": "distance", "type": "FLOAT"}, {"name": "going", "type": "VARCHAR(20)"}]}, "horses": {"columns": [{"name": "id", "type": "INTEGER"}, {"name": "name", "type": "VARCHAR(100)"}, {"name": "age", "type": "INTEGER"}, {"name": "weight", "type": "FLOAT"}]}, "users": {"columns": [{"name": "id", "type": "INTEGER"}, {"name": "username", "type": "VARCHAR(80)"}, {"name": "email", "type": "VARCHAR(120)"}, {"name": "password_hash", "type": "VARCHAR(255)"}, {"name": "is_admin", "type": "BOOLEAN"}]}, "api_credentials": {"columns": [{"name": "id", "type": "INTEGER"}, {"name": "provider", "type": "VARCHAR(50)"}, {"name": "api_key", "type": "VARCHAR(255)"}, {"name": "window", "type": "VARCHAR(20)"}]}, "predictions": {"columns": [{"name": "id", "type": "INTEGER"}, {"name": "race_id", "type": "INTEGER"}, {"name": "horse_id", "type": "INTEGER"}, {"name": "predicted_position", "type": "INTEGER"}, {"name": "model_version", "type": "VARCHAR(50)"}]}, "race_horses": {"columns": [{"name": "race_id", "type": "INTEGER"}, {"name": "horse_id", "type": "INTEGER"}]}}}'
\set app_mapping '{"tables": {"races": {"columns": {"race_name": "name", "race_date": {"source": "date", "rule": "date_part"}}}, "horses": {"columns": {"horse_name": "name", "weight": false}}, "api_credentials": {"columns": {"service_name": "provider", "rate_limit_window": "window"}}, "predictions": {"columns": {"prediction_value": "predicted_position", "algorithm_version": "model_version"}}}}'
-- noqa: enable=PRS,LT05
select throws_like(
    $$select hrp_migration.set_mapping(
        '{"tables": {"races": {"columns": [{"name": "id", "type": "INTEGER"}]}}}',
        '{"tables": {"races": {"columns": {"race_name": "title", "nope": "id", "race_date": {"source": "id", "rule": "guess"}}}, "jockeys": {}}}'
    )$$,
    'the mapping file is not valid:%[tables.jockeys] is not a target table%',
    'set_mapping: a section for no target table is refused'
);
select throws_like(
    $$select hrp_migration.set_mapping(
        '{"tables": {"races": {"columns": [{"name": "title", "type": "TEXT"}]}}}',
        '{"tables": {"races": {"columns": {"race_name": "title"}}}}'
    )$$,
    '%table races: no source column for its primary key id '
    || '(the source''s ids must be kept: map it)%',
    'set_mapping: a primary key without a source column is refused'
);
select throws_like(
    $$select hrp_migration.set_mapping(
        '{"tables": {"races": {"columns": [{"name": "id", "type": "INTEGER"}, {"name": "title", "type": "TEXT"}]}}}',
        '{"tables": {"races": {"columns": {"race_name": "headline", "nope": "id", "distance": {"source": "id", "rule": "guess"}}}}}'
    )$$,
    'the mapping does not fit the source:%'
    || 'table races: mapping names column nope, which the target table does not have%'
    || 'table races, column race_name: the source table races has no column headline%'
    || 'race_date, which is NOT NULL without a default%'
    || 'column distance: unknown rule guess (known: date_part)%'
    || 'table horses: the source has no table horses%',
    'set_mapping: every problem is named, all at once'
);
select is(
    hrp_migration.set_mapping(:'app_source'::jsonb, :'app_mapping'::jsonb) -> 'unmapped_tables',
    '["race_horses"]'::jsonb,
    'set_mapping: a source table no target takes is reported (to be copied whole)'
);
select is(
    hrp_migration.set_mapping(
        :'app_source'::jsonb, :'app_mapping'::jsonb
    ) #> '{tables,races,extra_columns}',
    '["date", "going"]'::jsonb,
    'set_mapping: columns no target takes, and those date_part keeps whole, are extra columns'
);
select results_eq(
    $$select target_column, source_column, rule from hrp_migration.column_map
      where target_table = 'horses' order by target_column$$,
    $$values ('age', 'age', null::text), ('horse_name', 'name', null), ('id', 'id', null)$$,
    'set_mapping: listed columns, same-named ones, and false keeps the target default (weight)'
);
select lives_ok(
    $$select hrp_migration.prepare_stage()$$, 'prepare_stage: staging tables of this source'
);
select columns_are(
    'hrp_migration_stage', 'races', array['id', 'name', 'date', 'distance', 'going'],
    'prepare_stage: a staging table has the source''s columns, all text'
);
insert into hrp_migration_stage.races values
('1', 'Gold Cup', '2024-06-20 14:30:00.123456', '1609.344', 'firm'),
('2', 'Epoch Cup', '1718893800', '1000', null),
('3', 'Date Cup', '2024-06-21', '1000', null),
('4', 'No Date Cup', 'soon', '1000', null);
select hrp_migration.build_mapped_view('races');
select results_eq(
    $$select id, race_name::text, race_date, distance, reason, norms
      from hrp_migration.races_mapped order by id$$,
    $$values (1::bigint, 'Gold Cup', '2024-06-20'::date, 1609.34::numeric(6, 2), null::text,
              array['date_from_timestamp', 'real_rounded_to_scale']),
             (2, 'Epoch Cup', '2024-06-20'::date, 1000.00, null, array['date_from_timestamp']),
             (3, 'Date Cup', '2024-06-21'::date, 1000.00, null, '{}'::text []),
             (4, 'No Date Cup', null, 1000.00, 'race_date: not a date or timestamp', '{}'::text [])$$,
    'date_part: the date of a timestamp (counted), of epoch seconds, a date as it is'
);
insert into hrp_migration_stage.api_credentials values
('1', 'tote', 'k', '2 hours'), ('2', 'odds', 'k', 'soon');
select hrp_migration.build_mapped_view('api_credentials');
select results_eq(
    $$select id, rate_limit_window, reason from hrp_migration.api_credentials_mapped order by id$$,
    $$values (1::bigint, '2 hours'::interval, null::text),
             (2, null, 'rate_limit_window: not an interval')$$,
    'an interval column: what the interval type accepts'
);
insert into hrp_migration_stage.horses values
('1', 'Frankel', '99999', '120'), ('2', 'Enable', '25', '120');
select hrp_migration.build_mapped_view('horses');
select results_eq(
    $$select id, reason from hrp_migration.horses_mapped order by id$$,
    $$values (1::bigint, 'age: out of range of smallint'),
             (2, 'age: violates check_horses_age_range')$$,
    'smallint range from the type, the age CHECK from the catalog'
);

select * from finish();
rollback;
