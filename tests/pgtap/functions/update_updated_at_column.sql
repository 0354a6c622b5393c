-- pgTAP tests for functions/update_updated_at_column.sql: the trigger function,
-- its five BEFORE UPDATE triggers, and that an UPDATE on each of the five tables
-- sets updated_at to now() (the transaction start; this file is one transaction,
-- so rows are inserted with an old updated_at) and leaves created_at alone.
-- Safe against a loaded database: fixtures are named 'pgtap ...' and rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(20);

select has_function(
    'public', 'update_updated_at_column', array[]::name[],
    'function public.update_updated_at_column() exists'
);
select function_returns(
    'public', 'update_updated_at_column', array[]::name[], 'trigger',
    'update_updated_at_column() returns trigger'
);
select function_lang_is(
    'public', 'update_updated_at_column', array[]::name[], 'plpgsql',
    'update_updated_at_column() is written in plpgsql'
);
select isnt(
    obj_description('public.update_updated_at_column()'::regprocedure, 'pg_proc'), null,
    'update_updated_at_column() has a comment'
);

select has_trigger(
    'public', 'races', 'update_races_updated_at', 'races has trigger update_races_updated_at'
);
select trigger_is(
    'public', 'races', 'update_races_updated_at', 'public', 'update_updated_at_column',
    'update_races_updated_at calls update_updated_at_column()'
);
select has_trigger(
    'public', 'horses', 'update_horses_updated_at', 'horses has trigger update_horses_updated_at'
);
select trigger_is(
    'public', 'horses', 'update_horses_updated_at', 'public', 'update_updated_at_column',
    'update_horses_updated_at calls update_updated_at_column()'
);
select has_trigger(
    'public', 'predictions', 'update_predictions_updated_at',
    'predictions has trigger update_predictions_updated_at'
);
select trigger_is(
    'public', 'predictions', 'update_predictions_updated_at', 'public', 'update_updated_at_column',
    'update_predictions_updated_at calls update_updated_at_column()'
);
select has_trigger(
    'public', 'users', 'update_users_updated_at', 'users has trigger update_users_updated_at'
);
select trigger_is(
    'public', 'users', 'update_users_updated_at', 'public', 'update_updated_at_column',
    'update_users_updated_at calls update_updated_at_column()'
);
select has_trigger(
    'public', 'api_credentials', 'update_api_credentials_updated_at',
    'api_credentials has trigger update_api_credentials_updated_at'
);
select trigger_is(
    'public', 'api_credentials', 'update_api_credentials_updated_at',
    'public', 'update_updated_at_column',
    'update_api_credentials_updated_at calls update_updated_at_column()'
);
-- tgtype 19 = ROW (1) + BEFORE (2) + UPDATE (16).
select set_eq(
    $$
    select c.relname::text, t.tgname::text, t.tgtype::integer, t.tgenabled::text
    from pg_catalog.pg_trigger as t
    inner join pg_catalog.pg_class as c on t.tgrelid = c.oid
    inner join pg_catalog.pg_proc as p on t.tgfoid = p.oid
    inner join pg_catalog.pg_namespace as pn on p.pronamespace = pn.oid
    where pn.nspname = 'public' and p.proname = 'update_updated_at_column'
    $$,
    $$
    values
    ('races', 'update_races_updated_at', 19, 'O'),
    ('horses', 'update_horses_updated_at', 19, 'O'),
    ('predictions', 'update_predictions_updated_at', 19, 'O'),
    ('users', 'update_users_updated_at', 19, 'O'),
    ('api_credentials', 'update_api_credentials_updated_at', 19, 'O')
    $$,
    'exactly the five triggers use update_updated_at_column(), enabled, BEFORE UPDATE FOR EACH ROW'
);

-- Fixture: one row per table, created and last updated long ago.
insert into public.races (race_name, race_date, created_at, updated_at)
values ('pgtap trigger race', '2024-07-01', '2000-01-01', '2000-01-01');
insert into public.horses (horse_name, created_at, updated_at)
values ('pgtap trigger horse', '2000-01-01', '2000-01-01');
insert into public.predictions (
    race_id, horse_id, prediction_value, algorithm_version, created_at, updated_at
)
values (
    (
        select r.id from public.races as r
        where r.race_name = 'pgtap trigger race'
    ),
    (
        select h.id from public.horses as h
        where h.horse_name = 'pgtap trigger horse'
    ),
    0.5, 'pgtap v1', '2000-01-01', '2000-01-01'
);
insert into public.users (username, email, password_hash, created_at, updated_at)
values ('pgtap trigger user', 'pgtap.trigger@example.com', 'x', '2000-01-01', '2000-01-01');
insert into public.api_credentials (service_name, api_key, created_at, updated_at)
values ('pgtap trigger service', 'pgtap-key', '2000-01-01', '2000-01-01');

update public.races set track_name = 'pgtap track'
where race_name = 'pgtap trigger race';
update public.horses set jockey = 'pgtap jockey'
where horse_name = 'pgtap trigger horse';
update public.predictions set confidence = 0.9
where race_id = (
    select r.id from public.races as r
    where r.race_name = 'pgtap trigger race'
);
update public.users set last_login = now()
where username = 'pgtap trigger user';
-- Even an UPDATE that sets updated_at itself gets it overwritten by the trigger.
update public.api_credentials set is_active = false, updated_at = '2001-01-01'
where service_name = 'pgtap trigger service';

select results_eq(
    $$
    select updated_at, created_at from public.races where race_name = 'pgtap trigger race'
    $$,
    $$values (now(), '2000-01-01'::timestamptz)$$,
    'updating a race sets updated_at to now() and keeps created_at'
);
select results_eq(
    $$
    select updated_at, created_at from public.horses where horse_name = 'pgtap trigger horse'
    $$,
    $$values (now(), '2000-01-01'::timestamptz)$$,
    'updating a horse sets updated_at to now() and keeps created_at'
);
select results_eq(
    $$
    select p.updated_at, p.created_at
    from public.predictions as p
    inner join public.races as r on p.race_id = r.id
    where r.race_name = 'pgtap trigger race'
    $$,
    $$values (now(), '2000-01-01'::timestamptz)$$,
    'updating a prediction sets updated_at to now() and keeps created_at'
);
select results_eq(
    $$
    select updated_at, created_at from public.users where username = 'pgtap trigger user'
    $$,
    $$values (now(), '2000-01-01'::timestamptz)$$,
    'updating a user sets updated_at to now() and keeps created_at'
);
select results_eq(
    $$
    select updated_at, created_at
    from public.api_credentials
    where service_name = 'pgtap trigger service'
    $$,
    $$values (now(), '2000-01-01'::timestamptz)$$,
    'updating a credential sets updated_at to now(), overriding an explicit value'
);

select * from finish();
rollback;
