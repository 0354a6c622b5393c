-- pgTAP tests for functions/maintenance_daily.sql: the rule (each branch), the candidates, and
-- the job run for real on races: through dblink it VACUUMs (ANALYZE) the table (the vacuum count
-- moves),
-- records a finding and a disk sample; a table another session holds a lock on is skipped, not
-- waited for. The VACUUM and ANALYZE really run (in their own sessions, committed: harmless);
-- the run records are rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(16);

-- the rule
select is(
    (hrp_maintenance.vacuum_analyze_action(1000, 200, 0, true)).action, 'vacuum_analyze',
    '200 dead of 1200 tuples (>= 50 + 5 % = 110): vacuum_analyze'
);
select is(
    (hrp_maintenance.vacuum_analyze_action(1000, 200, 0, true)).reason,
    '200 dead tuples >= 50 + 0.05 of 1200 tuples', 'the reason says why, with the figures'
);
select is(
    (hrp_maintenance.vacuum_analyze_action(1000, 90, 0, true)).action, null,
    '90 dead of 1090 (< 50 + 54.5): nothing'
);
select is(
    (hrp_maintenance.vacuum_analyze_action(10, 0, 0, false)).action, 'analyze',
    'rows but never analyzed: analyze'
);
select is(
    (hrp_maintenance.vacuum_analyze_action(0, 0, 0, false)).action, null,
    'empty and never analyzed: nothing'
);
select is(
    (hrp_maintenance.vacuum_analyze_action(1000, 0, 100, true)).action, 'analyze',
    '100 rows changed of 1000 (>= 50 + 5 %): analyze'
);
select is(
    (hrp_maintenance.vacuum_analyze_action(1000, 0, 99, true)).action, null,
    '99 rows changed of 1000: nothing'
);
select is(
    (hrp_maintenance.vacuum_analyze_action(1000, 0, 10, true, 5, 0, 50, 0.05)).action, 'analyze',
    'the thresholds are parameters'
);

select is_empty(
    $$
    select c.table_name from hrp_maintenance.vacuum_analyze_candidates() as c
    where not hrp_maintenance.is_project_relation(c.table_name)
    $$,
    'candidates are only project tables'
);
select results_eq(
    $$
    select table_name::text, action::text
    from hrp_maintenance.vacuum_analyze_candidates(array['public.races'::regclass], 0, 0, 0, 0)
    $$,
    $$values ('races', 'vacuum_analyze')$$,
    'only_tables limits the candidates; zero thresholds make races due'
);

-- a real run on races
select pg_stat_clear_snapshot();
create temp table counts_before as
select pg_stat_get_vacuum_count('public.races'::regclass) as vacuums;
select isnt(
    hrp_maintenance.daily_vacuum_analyze(array['public.races'::regclass], 0, 0, 0, 0), null,
    'the daily job runs and returns its run id'
);
select pg_stat_clear_snapshot();
select cmp_ok(
    pg_stat_get_vacuum_count('public.races'::regclass), '>',
    (select vacuums from counts_before),
    'races was vacuumed (its vacuum count moved)'
);
select results_eq(
    $$
    select f.kind::text, f.object::text, (f.figures ->> 'done')::boolean
    from hrp_maintenance.findings as f
    where f.run_id = (select max(r.run_id) from hrp_maintenance.runs as r)
    order by f.kind
    $$,
    $$values ('disk_usage', current_database()::text collate "default", null::boolean),
    ('vacuum_analyze', 'races', true)$$,
    'the run recorded the vacuum (done) and a disk usage sample'
);
select results_eq(
    $$
    select finished_at is not null, (details ->> 'vacuum_analyze')::int, (details ->> 'skipped')::int
    from hrp_maintenance.runs where run_id = (select max(run_id) from hrp_maintenance.runs)
    $$,
    $$values (true, 1, 0)$$,
    'the run is finished with its tally'
);

-- a conflicting lock (this transaction's): skipped at once, recorded as skipped
lock table public.races in share update exclusive mode;
select lives_ok(
    $$select hrp_maintenance.daily_vacuum_analyze(array['public.races'::regclass], 0, 0, 0, 0)$$,
    'the job does not wait for a table another session has locked'
);
select results_eq(
    $$
    select (f.figures ->> 'done')::boolean, (f.figures ->> 'skipped')::text
    from hrp_maintenance.findings as f
    where f.run_id = (select max(r.run_id) from hrp_maintenance.runs as r) and f.kind = 'vacuum_analyze'
    $$,
    $$values (false, 'a conflicting lock was held (SKIP_LOCKED)')$$,
    'the locked table is recorded as skipped'
);

select * from finish();
rollback;
