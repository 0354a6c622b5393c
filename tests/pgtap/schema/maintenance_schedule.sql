-- pgTAP tests for schema/0021_maintenance_schedule.sql: the three jobs of the issue, each calling
-- a function that exists, at the times the README and `invoke maintenance.window` state (UTC).
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(5);

select set_eq(
    $$select job_name, schedule from hrp_maintenance.schedule$$,
    $$
    values
    ('daily_vacuum_analyze', '30 3 * * *'),
    ('weekly_report', '0 3 * * 0'),
    ('monthly_capacity', '0 2 1 * *')
    $$,
    'the daily, weekly and monthly jobs: daily 03:30, Sundays 03:00, the 1st 02:00'
);
select is_empty(
    $$
    select s.job_name
    from hrp_maintenance.schedule as s
    where
        s.command !~ '^select hrp_maintenance\.[a-z_]+\(\)$'
        or not exists (
            select 1 from pg_catalog.pg_proc as p
            where
                p.pronamespace = 'hrp_maintenance'::regnamespace
                and p.proname = substring(s.command from 'hrp_maintenance\.([a-z_]+)')
                and p.pronargdefaults = p.pronargs
        )
    $$,
    'every command is one call of a maintenance function whose arguments all have defaults'
);
select is_empty(
    $$
    select s.job_name from hrp_maintenance.schedule as s
    where s.command <> 'select hrp_maintenance.' || s.job_name || '()'
    $$,
    'every job calls the function of its own name'
);
select is(
    (select json_array_length(hrp_maintenance.cron_jobs())),
    (select count(*)::int from hrp_maintenance.schedule),
    'cron_jobs() gives one pg_cron job per schedule row'
);
select is(
    (
        select array_agg(j ->> 'jobname' order by j ->> 'jobname')
        from json_array_elements(hrp_maintenance.cron_jobs()) as j
    ),
    (
        select array_agg(s.job_name || '@' || current_database() order by s.job_name)
        from hrp_maintenance.schedule as s
    ),
    'the pg_cron job names are <job_name>@<database>'
);

select * from finish();
rollback;
