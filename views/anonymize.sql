-- anonymize: the non-production copy of the compliance section ("PII data anonymized in
-- non-production"). One view per table of schema public in schema hrp_anonymize, same columns in
-- the same order, with the PII replaced: usernames, emails, password hashes, first and last
-- names, API keys and secrets (and the free-form api_credentials.metadata, which may hold
-- secrets). `invoke anonymize` COPYs from these views on the source into the tables of a freshly
-- deployed target, so the PII never leaves the source.
-- Replacements are deterministic (a function of the row id only: the same source gives the same
-- copy), unique where the column is (the id is), and keep valid_email's shape; ids, foreign keys
-- and row counts are unchanged. Jockey, trainer and owner names are public racing records and
-- are kept. A table without a view here is refused by the copy, never copied raw.
-- One tight family in one file: a view per spec table, all in schema hrp_anonymize.
-- requires: functions/anonymize.sql (schema hrp_anonymize, hrp_anonymize.pseudonym),
-- schema/0002_races.sql .. schema/0006_api_credentials.sql

create or replace view hrp_anonymize.races as
select
    id,
    race_name,
    race_date,
    track_name,
    race_type,
    distance,
    surface,
    weather_conditions,
    created_at,
    updated_at
from public.races;

comment on view hrp_anonymize.races is
'public.races unchanged: no PII.';

create or replace view hrp_anonymize.horses as
select
    id,
    horse_name,
    age,
    weight,
    jockey,
    trainer,
    owner, -- noqa: RF04
    pedigree,
    performance_stats,
    created_at,
    updated_at
from public.horses;

comment on view hrp_anonymize.horses is
'public.horses unchanged: jockey, trainer and owner are public racing records.';

create or replace view hrp_anonymize.predictions as
select
    id,
    race_id,
    horse_id,
    prediction_value,
    confidence,
    algorithm_version,
    model_features,
    prediction_metadata,
    created_at,
    updated_at
from public.predictions;

comment on view hrp_anonymize.predictions is
'public.predictions unchanged: no PII.';

create or replace view hrp_anonymize.users as
select
    u.id,
    hrp_anonymize.pseudonym('user', u.id)::varchar(50) as username,
    (hrp_anonymize.pseudonym('user', u.id) || '@example.invalid')::varchar(255) as email,
    -- not a hash any password matches: nobody can log in to the copy with a real password
    (
        '!anonymized!'
        || encode(sha256(convert_to(hrp_anonymize.pseudonym('password', u.id), 'UTF8')), 'hex')
    )::varchar(255) as password_hash,
    (case when u.first_name is not null then hrp_anonymize.pseudonym('first', u.id) end
    )::varchar(50) as first_name,
    (case when u.last_name is not null then hrp_anonymize.pseudonym('last', u.id) end
    )::varchar(50) as last_name,
    u.is_active,
    u.is_admin,
    u.preferences,
    u.created_at,
    u.updated_at,
    u.last_login
from public.users as u;

comment on view hrp_anonymize.users is
'public.users with username, email, password_hash, first_name and last_name replaced.';

create or replace view hrp_anonymize.api_credentials as
select
    c.id,
    c.service_name,
    hrp_anonymize.pseudonym('api_key', c.id) as api_key,
    case when c.api_secret is not null then hrp_anonymize.pseudonym('api_secret', c.id) end
        as api_secret,
    c.endpoint_url,
    c.rate_limit,
    c.rate_limit_window,
    c.is_active,
    '{}'::jsonb as metadata,
    c.created_at,
    c.updated_at,
    c.expires_at
from public.api_credentials as c;

comment on view hrp_anonymize.api_credentials is
'public.api_credentials with api_key and api_secret replaced and metadata emptied.';
