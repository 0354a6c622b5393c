-- pgTAP tests for functions/maintenance_common.sql: the extensions, run and finding records, the
-- self connection (used for real: a query through dblink), the disk usage of the data directory
-- and the days-left arithmetic.
-- Safe against a loaded database: everything it writes is rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(24);

select is(
    hrp_maintenance.ensure_extensions(), array[]::text[],
    'every extension the jobs use is available on the test cluster'
);
select set_eq(
    $$
    select x.extname::text from pg_catalog.pg_extension as x
    where x.extnamespace = 'hrp_maintenance'::regnamespace
    $$,
    array['dblink', 'pgstattuple', 'pg_repack'],
    'dblink, pgstattuple and pg_repack live in schema hrp_maintenance'
);

select is(
    hrp_maintenance.conninfo_quote('it''s a \ path'), '''it\''s a \\ path''',
    'conninfo_quote escapes quotes and backslashes'
);
select matches(
    hrp_maintenance.self_conninfo(),
    '^host=''/[^'']+'' port=\d+ dbname=''[^'']+'' user=''[^'']+'' '
    || 'application_name=hrp_maintenance$',
    'self_conninfo names the unix socket, port, database and user'
);
select is(
    (
        select d.db
        from hrp_maintenance.dblink(
            hrp_maintenance.self_conninfo(), 'select current_database()::text'
        ) as d (db text)
    ),
    current_database()::text,
    'a job reaches this database through dblink over the socket, without a password'
);

select ok(
    hrp_maintenance.start_run('pgtap_common') > 0, 'start_run opens a run and returns its id'
);
select lives_ok(
    $$select hrp_maintenance.add_finding(
        (select max(run_id) from hrp_maintenance.runs where job = 'pgtap_common'),
        'disk_usage', 'pgtap', '{"size_bytes": 1}'
    )$$,
    'add_finding records a finding'
);
select is(
    hrp_maintenance.finish_run(
        (
            select max(run_id) from hrp_maintenance.runs
            where job = 'pgtap_common'
        ), '{"n": 1}'
    ),
    (
        select max(run_id) from hrp_maintenance.runs
        where job = 'pgtap_common'
    ),
    'finish_run returns the run id'
);
select results_eq(
    $$
    select finished_at is not null, details
    from hrp_maintenance.runs where job = 'pgtap_common'
    $$,
    $$values (true, '{"n": 1}'::jsonb)$$,
    'finish_run sets finished_at and merges the summary into details'
);

select ok(
    (
        select size_bytes > 0 and avail_bytes between 0 and size_bytes
        from hrp_maintenance.disk_usage()
    ),
    'disk_usage reads the data directory''s file system: size > 0, 0 <= available <= size'
);
select is(
    (select data_directory from hrp_maintenance.disk_usage()), current_setting('data_directory'),
    'disk_usage is about the data directory'
);

select is(
    hrp_maintenance.days_until(80, 1000, 500, 10), 30.0,
    '50 % used, 10 B/day: 30 days to 80 %'
);
select is(hrp_maintenance.days_until(90, 1000, 500, 10), 40.0, '... and 40 days to 90 %');
select is(hrp_maintenance.days_until(80, 1000, 150, 10), 0::numeric, 'already above 80 %: 0 days');
select is(hrp_maintenance.days_until(80, 1000, 500, 0), null, 'no growth: no date');
select is(hrp_maintenance.days_until(80, 1000, 500, -5), null, 'shrinking: no date');

select ok(
    hrp_maintenance.is_project_relation('public.predictions'::regclass),
    'the spec''s tables are looked after'
);
select ok(
    not hrp_maintenance.is_project_relation('pg_catalog.pg_class'::regclass),
    'catalogs are not'
);
select ok(
    not hrp_maintenance.is_project_relation(
        (
            select c.oid from pg_catalog.pg_class as c
            inner join pg_catalog.pg_depend as d on c.oid = d.objid and d.deptype = 'e'
            where c.relkind in ('r', 'v')
            order by c.oid
            limit 1
        )
    ),
    'an extension''s own relations are not'
);

-- the monitoring role reads pg_cron's record of the jobs, and runs nothing else here
select is(
    (select count(*)::int from hrp_maintenance.cron_job_runs()),
    0,
    'cron_job_runs: no pg_cron job runs in this (unscheduled) database'
);
-- (each statement switches role inside pgTAP's subtransaction, which a failure rolls back, role
-- included: the roles cannot reach pgTAP's functions in schema public)
select lives_ok(
    'set local role hrp_monitor; select * from hrp_maintenance.cron_job_runs(); reset role',
    'hrp_monitor may read the jobs'' runs (SECURITY DEFINER, through dblink)'
);
select throws_ok(
    'set local role hrp_monitor; select hrp_maintenance.disk_usage()', '42501', null,
    'hrp_monitor may run no other maintenance function'
);
select throws_ok(
    'set local role hrp_app; select * from hrp_maintenance.cron_job_runs()', '42501', null,
    'hrp_app may not even read the jobs'' runs'
);
select is_empty(
    $$
    select p.proname
    from pg_catalog.pg_proc as p
    cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
    where
        p.pronamespace = 'hrp_maintenance'::regnamespace and a.grantee = 0
        and not exists (
            select 1 from pg_catalog.pg_depend as d where d.objid = p.oid and d.deptype = 'e'
        )
    $$,
    'PUBLIC may execute no maintenance function'
);

select * from finish();
rollback;
