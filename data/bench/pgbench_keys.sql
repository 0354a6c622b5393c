-- pgbench_keys: key tables bench.load's pgbench scripts draw their text parameters from (pgbench
-- draws only numbers: `\set k random(1, :n_users)`, then the app's query takes
-- `(select username from bench.user_keys where k = :k)` for its :username). Built in the
-- benchmark's throwaway database only, from the loaded rows; hrp_app reads them.
-- requires: the spec's tables, loaded; hrp_app

create schema if not exists bench;
comment on schema bench is 'bench.load: key tables of the pgbench scripts (throwaway database).';

create table bench.user_keys as
select
    username,
    email,
    row_number() over (order by id) as k
from public.users;
alter table bench.user_keys add primary key (k);
comment on table bench.user_keys is 'Usernames and emails by number, for the login scripts.';

create table bench.trainer_keys as
select
    trainer,
    row_number() over (order by trainer) as k
from (
    select distinct trainer from public.horses
    where trainer is not null
) as trainers;
alter table bench.trainer_keys add primary key (k);
comment on table bench.trainer_keys is 'Trainers by number, for the trainer JOIN script.';

create table bench.service_keys as
select
    service_name,
    row_number() over (order by service_name) as k
from public.api_credentials
where is_active;
alter table bench.service_keys add primary key (k);
comment on table bench.service_keys is 'Active services by number, for the credentials script.';

-- a part of 4 to 6 letters of a horse's name, upper or lower case, as the search box sends it
create table bench.search_keys as
select
    case when id % 2 = 0 then upper(part) else lower(part) end as pattern,
    row_number() over (order by id) as k
from (
    select
        id,
        '%' || substr(horse_name, 1 + (id % 7)::int, 4 + (id % 3)::int) || '%' as part
    from public.horses
    where id % 10 = 0
    order by id
    limit 5000
) as parts;
alter table bench.search_keys add primary key (k);
comment on table bench.search_keys is 'Name parts by number, for the horse search script.';

create table bench.ranges as
select
    min(r.race_date) as first_day,
    max(r.race_date) - min(r.race_date) as n_days,
    max(r.id) as max_race_id,
    (select max(h.id) from public.horses as h) as max_horse_id,
    (select max(p.id) from public.predictions as p) as max_prediction_id,
    (select count(*) from bench.user_keys) as n_users,
    (select count(*) from bench.trainer_keys) as n_trainers,
    (select count(*) from bench.service_keys) as n_services,
    (select count(*) from bench.search_keys) as n_patterns
from public.races as r;
comment on table bench.ranges is 'The ranges the scripts draw numbers from (pgbench -D).';

grant usage on schema bench to hrp_app;
grant select on all tables in schema bench to hrp_app;
