-- sqlfluff:dialect:sqlite
-- noqa: disable=RF02,AL03,RF03,AL04,AL08,LT05,LT09,ST06
-- A sample in the HRP app's 2025 shape (data/sqlite/hrp-app-2025.sql) from a sample in the spec's
-- shape (data/sample/generate.sql), attached as `spec`: the same races, horses, predictions, users
-- and credentials, with the app's column names and declared types, values as the app writes them
-- (DATETIME with microseconds, capitalised surfaces, weather as a word, JSON text in results,
-- factors and workout_times, the carried weight in lb), its extra columns filled for some rows,
-- the association table race_horses, and what real files of the app hold that the spec's tables
-- cannot: duplicate predictions of a (race, horse, model) and a credential without an API key.
-- Deterministic: every value is a function of the spec sample's row. hrp_harness/migration/sample.py runs it.
-- requires: the tables of data/sqlite/hrp-app-2025.sql in main, the spec sample attached as spec.

insert into races (id, name, date, time, track, distance, surface, race_class, prize_money, weather, track_condition, status, results, going_description, rail_position, field_size, age_restriction, sex_restriction, weight_conditions, rating_band, is_graded, grade, purse_currency, first_prize, second_prize, third_prize, fourth_prize, winning_time, sectional_times, video_url, tv_channel, off_time, declared_runners, non_runners, favourite_name, favourite_odds, winning_margin, stewards_report, race_comment, country, region, course_direction, course_type, start_type, draw_bias, pace_rating, speed_figure, data_source, created_at, updated_at)
select
    s.id,
    s.race_name,
    s.race_date || ' ' || printf('%02d:%02d:00.%06d', 12 + s.id % 8, s.id * 7 % 4 * 15, s.id * 7919 % 1000000),
    printf('%02d:%02d', 12 + s.id % 8, s.id * 7 % 4 * 15),
    coalesce(s.track_name, 'Unknown'),
    coalesce(s.distance, 1609.34),
    upper(substr(s.surface, 1, 1)) || substr(s.surface, 2),
    'Class ' || (1 + s.id % 7),
    (s.id % 50 + 1) * 1000.0,
    json_extract(s.weather_conditions, '$.condition'),
    json_extract(s.weather_conditions, '$.going'),
    case when s.race_date < '2024-06-01' then 'completed' else 'scheduled' end,
    case when s.race_date < '2024-06-01' then json_object('winner_horse_id', 1 + s.id * 7 % 1000, 'runners', 8 + s.id % 12) end,
    json_extract(s.weather_conditions, '$.going'),
    case when s.id % 3 = 0 then 'true' end,
    8 + s.id % 12,
    case s.id % 4 when 0 then '2yo' when 1 then '3yo+' end,
    case when s.id % 9 = 0 then 'fillies' end,
    null,
    null,
    s.id % 11 = 0,
    case when s.id % 11 = 0 then 'G' || (1 + s.id % 3) end,
    'GBP',
    (s.id % 50 + 1) * 600.0,
    (s.id % 50 + 1) * 240.0,
    (s.id % 50 + 1) * 100.0,
    null,
    case when s.race_date < '2024-06-01' then printf('%d:%05.2f', 1 + s.id % 3, (s.id * 37 % 6000) / 100.0) end,
    case when s.id % 5 = 0 then json_array(12.1 + s.id % 7 / 10.0, 11.8, 12.4) end,
    null,
    null,
    s.race_date || ' ' || printf('%02d:%02d:00', 12 + s.id % 8, s.id * 7 % 4 * 15),
    8 + s.id % 12,
    s.id % 3,
    null,
    round(1.5 + (s.id % 40) / 10.0, 1),
    null,
    null,
    case when s.id % 13 = 0 then 'Run at a steady pace; the favourite weakened late.' end,
    'GB',
    null,
    case s.id % 2 when 0 then 'left-handed' else 'right-handed' end,
    null,
    null,
    null,
    round((s.id % 100) / 10.0, 1),
    60 + s.id % 60,
    'racing_api',
    s.created_at,
    s.updated_at
from spec.races as s;

insert into horses (id, name, age, weight, jockey, trainer, owner, sex, color, sire, dam, dam_sire, breeder, country_bred, foaled, form, rating, official_rating, wins, places, shows, runs, earnings, last_run, last_position, days_since_run, best_distance, preferred_surface, preferred_going, speed_rating, class_rating, stamina_rating, workout_times, equipment, medication, claiming_price, stable, silks_colour, draw, handicap_mark, course_wins, distance_wins, going_wins, jockey_claim, odds, morning_line, scratched, notes, photo_url, microchip, passport_number, created_at, updated_at)
select
    s.id,
    s.horse_name,
    coalesce(s.age, 4),
    115 + s.id % 16,
    s.jockey,
    s.trainer,
    s.owner,
    case s.id % 4 when 0 then 'Colt' when 1 then 'Filly' when 2 then 'Gelding' else 'Mare' end,
    case s.id % 5 when 0 then 'Bay' when 1 then 'Chestnut' when 2 then 'Grey' when 3 then 'Black' else 'Brown' end,
    'Sire of ' || s.horse_name,
    'Dam of ' || s.horse_name,
    null,
    null,
    case s.id % 3 when 0 then 'GB' when 1 then 'IRE' else 'USA' end,
    date(s.created_at, '-' || (365 * coalesce(s.age, 4)) || ' days'),
    substr('1234567890P0F', 1 + s.id % 7, 5),
    40 + s.id % 80,
    null,
    s.id % 6,
    s.id % 9,
    null,
    6 + s.id % 20,
    (s.id % 300) * 125.5,
    s.updated_at,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    case when s.id % 4 = 0 then json_array('0:48.2', '1:01.4') end,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    null,
    s.id % 50 = 0,
    null,
    null,
    printf('985%012d', s.id),
    null,
    s.created_at,
    s.updated_at
from spec.horses as s;

insert into race_horses (race_id, horse_id)
select distinct s.race_id, s.horse_id from spec.predictions as s
order by s.race_id, s.horse_id;

insert into predictions (
    id, race_id, horse_id, predicted_position, confidence, odds, factors, model_version, created_at,
    updated_at
)
select
    s.id,
    s.race_id,
    s.horse_id,
    1 + s.id % 12,
    s.confidence,
    round(1.5 + (s.id % 200) / 10.0, 1),
    json_object('speed', s.prediction_value, 'form', s.id % 10, 'draw', 1 + s.id % 14),
    s.algorithm_version,
    s.created_at,
    s.created_at
from spec.predictions as s;

-- the app re-ran a model over some races and kept both rows (it has no unique key): every 500th
-- prediction again, a later id, the same race, horse and model
insert into predictions (
    id, race_id, horse_id, predicted_position, confidence, odds, factors, model_version, created_at,
    updated_at
)
select
    (select max(id) from spec.predictions) + s.id / 500,
    s.race_id,
    s.horse_id,
    1 + (s.id + 1) % 12,
    s.confidence,
    round(1.5 + (s.id % 200) / 10.0, 1),
    json_object('speed', s.prediction_value, 'form', s.id % 10, 'draw', 1 + s.id % 14, 'rerun', 1),
    s.algorithm_version,
    datetime(s.created_at, '+1 hours'),
    datetime(s.created_at, '+1 hours')
from spec.predictions as s
where s.id % 500 = 0;

insert into users (
    id, username, email, password_hash, is_admin, is_active, created_at, updated_at, last_login
)
select
    s.id,
    s.username,
    s.email,
    s.password_hash,
    s.id % 25 = 0,
    s.id % 10 <> 0,
    s.created_at,
    coalesce(s.last_login, s.created_at),
    s.last_login
from spec.users as s;

-- a provider reached with a username and password has no API key (NOT NULL in the spec's table)
insert into api_credentials (
    id, provider, base_url, api_key, api_secret, username, password, description, is_active,
    created_at, updated_at
)
select
    s.id,
    s.service_name,
    coalesce(s.endpoint_url, 'https://api.example.com'),
    case when s.id = 3 then null else s.api_key end,
    s.api_secret,
    case when s.id % 3 = 0 then 'hrp_' || s.service_name end,
    case when s.id % 3 = 0 then 'pw_' || substr(s.api_key, 5, 12) end,
    'Data feed: ' || s.service_name,
    s.is_active,
    s.created_at,
    s.created_at
from spec.api_credentials as s;
