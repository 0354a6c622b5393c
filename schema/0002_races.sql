-- 0002_races: one row per race (meeting date, track, type, distance, surface,
-- weather), the parent of predictions.
-- requires: schema/0001_enums.sql

create table if not exists public.races (
    id bigserial primary key,
    race_name varchar(255) not null,
    race_date date not null,
    track_name varchar(100),
    race_type public.race_type_enum,
    distance numeric(6, 2) constraint check_races_distance_positive check (distance > 0),
    surface public.surface_enum default 'dirt',
    weather_conditions jsonb,
    created_at timestamptz default current_timestamp,
    updated_at timestamptz default current_timestamp
);

comment on table public.races is
'Races a prediction can be made for; deleting a race deletes its predictions.';
comment on column public.races.race_date is
'Date the race is run (local date of the meeting).';
comment on column public.races.track_name is
'Name of the racecourse.';
comment on column public.races.distance is
'Race distance in metres, strictly positive (at most 9999.99).';
comment on column public.races.weather_conditions is
'Weather at race time, a JSON object such as {"temperature_c": 18, "condition": "rain"}.';
comment on column public.races.created_at is
'When the row was inserted.';
comment on column public.races.updated_at is
'When the row was last updated; maintained by trigger update_races_updated_at.';

-- Per-table indexes.
create index if not exists idx_races_date on public.races (race_date);
create index if not exists idx_races_track on public.races (track_name);
create index if not exists idx_races_type on public.races (race_type);
create index if not exists idx_races_weather_gin on public.races using gin (weather_conditions);

-- Composite index for the date + track query pattern.
create index if not exists idx_races_date_track on public.races (race_date, track_name);
