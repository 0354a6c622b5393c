-- pgTAP tests for schema/0020_maintenance.sql: the maintenance schema, its three tables, their keys
-- and checks, and that no application role can reach it.
-- Safe against a loaded database: fixtures are rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(19);

select has_schema('hrp_maintenance', 'schema hrp_maintenance exists');
select isnt(
    obj_description('hrp_maintenance'::regnamespace, 'pg_namespace'), null,
    'schema hrp_maintenance has a comment'
);
select columns_are(
    'hrp_maintenance', 'schedule', array['job_name', 'schedule', 'command', 'description'],
    'hrp_maintenance.schedule has job_name, schedule, command, description'
);
select columns_are(
    'hrp_maintenance', 'runs', array['run_id', 'job', 'started_at', 'finished_at', 'details'],
    'hrp_maintenance.runs has run_id, job, started_at, finished_at, details'
);
select columns_are(
    'hrp_maintenance', 'findings',
    array['finding_id', 'run_id', 'found_at', 'kind', 'object', 'figures'],
    'hrp_maintenance.findings has the issue''s time, kind, object, figures'
);
select col_type_is(
    'hrp_maintenance', 'findings', 'figures', 'jsonb', 'findings.figures is jsonb'
);
select col_is_pk('hrp_maintenance', 'schedule', 'job_name', 'schedule is keyed by job_name');
select fk_ok(
    'hrp_maintenance', 'findings', 'run_id', 'hrp_maintenance', 'runs', 'run_id',
    'findings.run_id references runs'
);
select has_index(
    'hrp_maintenance', 'findings', 'index_findings_on_kind_and_object_and_found_at',
    'findings are indexed on (kind, object, found_at) for the growth look-ups'
);
select is_empty(
    $$
    select c.relname
    from pg_catalog.pg_class as c
    where
        c.relnamespace = 'hrp_maintenance'::regnamespace and c.relkind = 'r'
        and obj_description(c.oid, 'pg_class') is null
        and not exists (
            select 1 from pg_catalog.pg_depend as d
            where d.objid = c.oid and d.deptype = 'e'
        )
    $$,
    'every table of schema hrp_maintenance has a comment'
);

insert into hrp_maintenance.runs (job) values ('pgtap_job');
select throws_ok(
    $$insert into hrp_maintenance.findings (run_id, kind, object)
    values ((select max(run_id) from hrp_maintenance.runs), 'no_such_kind', 'x')$$,
    '23514', null, 'a finding of an unknown kind is refused (check_findings_kind)'
);
select lives_ok(
    $$insert into hrp_maintenance.findings (run_id, kind, object)
    values ((select max(run_id) from hrp_maintenance.runs), 'table_size', 'public.races')$$,
    'a finding of a known kind goes in'
);
select throws_ok(
    $$insert into hrp_maintenance.runs (job) values ('Drop Table')$$,
    '23514', null, 'a job name that is not lower-case snake_case is refused'
);
select throws_ok(
    $$insert into hrp_maintenance.schedule values ('pgtap_job', '0 3 * *', 'select 1', 'x')$$,
    '23514', null, 'a schedule without five cron fields is refused'
);
select throws_ok(
    $$update hrp_maintenance.runs set finished_at = started_at - interval '1 second'
    where job = 'pgtap_job'$$,
    '23514', null, 'a run cannot finish before it started'
);
delete from hrp_maintenance.runs
where job = 'pgtap_job';
select is(
    (
        select count(*)::int
        from hrp_maintenance.findings
        where
            object = 'public.races' and kind = 'table_size'
            and run_id not in (select r.run_id from hrp_maintenance.runs as r)
    ),
    0,
    'deleting a run deletes its findings (on delete cascade)'
);

select schema_privs_are(
    'hrp_maintenance',
    'hrp_app',
    array[]::text[],
    'hrp_app has no privilege on schema hrp_maintenance'
);
select schema_privs_are(
    'hrp_maintenance', 'hrp_readonly', array[]::text[],
    'hrp_readonly has no privilege on schema hrp_maintenance'
);
select is_empty(
    $$
    select a.privilege_type
    from pg_catalog.pg_namespace as n
    cross join lateral aclexplode(n.nspacl) as a
    where n.nspname = 'hrp_maintenance' and a.grantee = 0
    $$,
    'PUBLIC has no privilege on schema hrp_maintenance'
);

select * from finish();
rollback;
