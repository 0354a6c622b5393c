-- pgTAP tests for functions/monitoring.sql: schema hrp_monitor is hrp_monitor's alone (and the
-- superuser's), pg_stat_statements lives in it, pgbackrest_backups() is a SECURITY DEFINER
-- function only hrp_monitor may run, and hrp_monitor reads statistics but no table of the
-- application and cannot reset the statistics.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(17);

select has_schema('hrp_monitor', 'schema hrp_monitor exists');
select has_extension(
    'hrp_monitor', 'pg_stat_statements', 'pg_stat_statements is installed in schema hrp_monitor'
);
select schema_privs_are(
    'hrp_monitor', 'hrp_monitor', array['USAGE'], 'hrp_monitor has USAGE (no CREATE) on its schema'
);
select
    schema_privs_are(
        'hrp_monitor', role_name, array[]::text[],
        role_name || ' has no privilege on schema hrp_monitor'
    )
from unnest(array['hrp_app', 'hrp_readonly', 'hrp_backup', 'hrp_owner']) as role_name;
select is_empty(
    $$
    select a.privilege_type
    from pg_catalog.pg_namespace as n, aclexplode(n.nspacl) as a
    where n.nspname = 'hrp_monitor' and a.grantee = 0
    $$,
    'PUBLIC has no privilege on schema hrp_monitor'
);

select is_definer(
    'hrp_monitor', 'pgbackrest_backups', array[]::name[],
    'pgbackrest_backups() is SECURITY DEFINER (COPY FROM PROGRAM needs a superuser)'
);
select is(
    (
        select p.proconfig
        from pg_catalog.pg_proc as p
        where p.oid = 'hrp_monitor.pgbackrest_backups()'::regprocedure
    ),
    array['search_path=pg_catalog, pg_temp'],
    'pgbackrest_backups() pins its search_path'
);
select function_privs_are(
    'hrp_monitor', 'pgbackrest_backups', array[]::name[], 'hrp_monitor', array['EXECUTE'],
    'hrp_monitor may run pgbackrest_backups()'
);
select function_privs_are(
    'hrp_monitor', 'pgbackrest_backups', array[]::name[], 'hrp_app', array[]::text[],
    'hrp_app may not run pgbackrest_backups()'
);
-- Without a pgBackRest archive_command (the test cluster archives nothing) the function says so.
select
    case
        when current_setting('archive_command') !~ '^pgbackrest '
            then results_eq(
                'select * from hrp_monitor.pgbackrest_backups()',
                $$ values (null::text, -1, 0::float8, 0::float8) $$,
                'pgbackrest_backups(): status -1 and times 0 without a pgBackRest archive_command'
            )
        else skip('this server archives to pgBackRest', 1)
    end;

-- As hrp_monitor (each statement switches role inside pgTAP's subtransaction, which a failure
-- rolls back, role included: hrp_monitor cannot reach pgTAP's functions in schema public).
select lives_ok(
    'set local role hrp_monitor; select count(*) from pg_stat_statements; reset role',
    'hrp_monitor reads pg_stat_statements through its search_path'
);
select lives_ok(
    'set local role hrp_monitor; '
    'select count(*) from pg_catalog.pg_stat_activity where query is not null; reset role',
    'hrp_monitor reads pg_stat_activity'
);
select throws_ok(
    'set local role hrp_monitor; select count(*) from public.users',
    '42501', 'permission denied for schema public',
    'hrp_monitor reads no table of the application'
);
select throws_ok(
    'set local role hrp_monitor; select hrp_monitor.pg_stat_statements_reset()', '42501', null,
    'hrp_monitor cannot reset pg_stat_statements'
);

select * from finish();
rollback;
