-- pgTAP tests for functions/maintenance_monthly.sql: the job run against a report of 30 days ago
-- (fixture): every table and index sized, growth since then, the disk's growth per day and the
-- days left to 80 % and 90 % as days_until computes them.
-- Safe against a loaded database: the fixture and the run are rolled back.
-- noqa: disable=AL03
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(9);

-- Fixture: a capacity report 30 days ago, races 1 MB smaller then, and the disk 30 GB less used.
insert into hrp_maintenance.runs (job, started_at, finished_at)
values ('monthly_capacity', now() - interval '30 days', now() - interval '30 days');
insert into hrp_maintenance.findings (run_id, found_at, kind, object, figures)
select
    (select max(r.run_id) from hrp_maintenance.runs as r),
    clock_timestamp() - interval '30 days',
    'table_size',
    'races',
    jsonb_build_object('bytes', pg_table_size('public.races') - 1048576);
insert into hrp_maintenance.findings (run_id, found_at, kind, object, figures)
select
    (select max(r.run_id) from hrp_maintenance.runs as r),
    clock_timestamp() - interval '30 days',
    'disk_usage',
    current_database(),
    jsonb_build_object(
        'size_bytes', d.size_bytes, 'avail_bytes', d.avail_bytes + 30 * 1000000000::bigint,
        'database_bytes', pg_database_size(current_database())
    )
from hrp_maintenance.disk_usage() as d;

select isnt(
    hrp_maintenance.monthly_capacity(), null,
    'the monthly job runs and returns its run id'
);
create temp table this_run as
select max(run_id) as run_id from hrp_maintenance.runs;

select is(
    (
        select count(*)::int from hrp_maintenance.findings as f
        where
            f.run_id = (select t.run_id from this_run as t)
            and f.kind in ('table_size', 'index_size')
    ),
    (
        select count(*)::int from pg_catalog.pg_class as c
        where
            c.relkind in ('r', 'm', 'i') and c.relpersistence <> 't'
            and hrp_maintenance.is_project_relation(c.oid)
    ),
    'one size finding per project table and index'
);
select results_eq(
    $$
    select (f.figures ->> 'bytes')::bigint, (f.figures ->> 'growth_bytes')::bigint
    from hrp_maintenance.findings as f
    where f.run_id = (select t.run_id from this_run as t) and f.kind = 'table_size' and f.object = 'races'
    $$,
    $$values (pg_table_size('public.races'), 1048576::bigint)$$,
    'races: its size now, and 1 MB growth since the report of 30 days ago'
);
select ok(
    (
        select (f.figures ->> 'growth_bytes_per_day')::numeric between 34952 and 34953
        from hrp_maintenance.findings as f
        where
            f.run_id = (select t.run_id from this_run as t)
            and f.kind = 'table_size'
            and f.object = 'races'
    ),
    'growth per day: 1 MB / 30 days'
);
select ok(
    (
        select (f.figures ->> 'growth_bytes') is null
        from hrp_maintenance.findings as f
        where
            f.run_id = (select t.run_id from this_run as t) and f.kind = 'table_size'
            and f.object = 'horses'
    ),
    'a table the last report did not have: no growth figure'
);
select ok(
    (
        select (f.figures ->> 'used_growth_bytes_per_day')::numeric between 0.99e9 and 1.01e9
        from hrp_maintenance.findings as f
        where f.run_id = (select t.run_id from this_run as t) and f.kind = 'disk_usage'
    ),
    'disk: about 1 GB/day more used (30 GB in 30 days)'
);
select results_eq(
    $$
    select
        (f.figures ->> 'days_to_warning')::numeric,
        (f.figures ->> 'days_to_critical')::numeric
    from hrp_maintenance.findings as f
    where f.run_id = (select t.run_id from this_run as t) and f.kind = 'disk_usage'
    $$,
    $$
    select
        hrp_maintenance.days_until(80, (f.figures ->> 'size_bytes')::bigint,
            (f.figures ->> 'avail_bytes')::bigint, (f.figures ->> 'used_growth_bytes_per_day')::numeric),
        hrp_maintenance.days_until(90, (f.figures ->> 'size_bytes')::bigint,
            (f.figures ->> 'avail_bytes')::bigint, (f.figures ->> 'used_growth_bytes_per_day')::numeric)
    from hrp_maintenance.findings as f
    where f.run_id = (select t.run_id from this_run as t) and f.kind = 'disk_usage'
    $$,
    'days to the 80 % and 90 % thresholds at that growth'
);
select ok(
    (
        select
            (f.figures ->> 'days_to_warning')::numeric
            < (f.figures ->> 'days_to_critical')::numeric
            or (f.figures ->> 'days_to_critical')::numeric = 0
        from hrp_maintenance.findings as f
        where f.run_id = (select t.run_id from this_run as t) and f.kind = 'disk_usage'
    ),
    'the warning comes before the critical threshold'
);
select results_eq(
    $$
    select (details ->> 'objects')::int > 0, details ? 'days_to_warning'
    from hrp_maintenance.runs where run_id = (select t.run_id from this_run as t)
    $$,
    $$values (true, true)$$,
    'the run''s details summarise objects and days left'
);

select * from finish();
rollback;
