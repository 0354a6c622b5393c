-- 0030_horses_name_trgm: the app's horse search (`horse_name ILIKE '%part%' LIMIT 20`, SQLAlchemy's
-- ilike()) through a trigram index instead of a scan of every horse (issue 13, bench.queries).
-- GiST, not GIN: a GIN index only feeds a bitmap scan, which reads every match before the LIMIT,
-- and at 10x production size the planner then prefers a sequential scan (p95 0.78 -> 19 ms from
-- 1x to 10x, measured); a GiST index scan stops at the 20th match (p95 1.7 -> 2.6 ms).
-- pg_trgm lives in schema extensions (not public, whose functions are the spec's); the app roles
-- may use its functions and operators (similarity(), %) there.
-- requires: schema/0003_horses.sql, postgresql-contrib (pg_trgm), a superuser applying it

create schema if not exists extensions;
comment on schema extensions is
'Extensions the schema uses (pg_trgm), kept out of public; USAGE for the app roles.';
create extension if not exists pg_trgm with schema extensions;
grant usage on schema extensions to hrp_app, hrp_readonly;

-- Beyond the spec's index list: a performance index of the app's hot queries.
create index if not exists index_horses_on_horse_name_trgm
on public.horses using gist (horse_name extensions.gist_trgm_ops);
comment on index public.index_horses_on_horse_name_trgm is
'Trigram index for the app''s horse search by a part of the name (ILIKE ''%...%'').';
