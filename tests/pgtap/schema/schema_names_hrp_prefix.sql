-- pgTAP tests for schema/0031_schema_names_hrp_prefix.sql: the project's schemas are hrp_<domain>,
-- the old names are gone, the privileges followed the renames, the maintenance schedule calls the
-- renamed functions, nothing of the project still names an old schema, and a second run of the
-- file changes nothing.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(41);

select has_schema('hrp_migration', 'schema hrp_migration exists');
select has_schema('hrp_migration_stage', 'schema hrp_migration_stage exists');
select has_schema('hrp_migration_work', 'schema hrp_migration_work exists');
select has_schema('hrp_migration_unmapped', 'schema hrp_migration_unmapped exists');
select has_schema('hrp_maintenance', 'schema hrp_maintenance exists');
select hasnt_schema('migration', 'schema migration is gone (renamed hrp_migration)');
select hasnt_schema(
    'migration_stage', 'schema migration_stage is gone (renamed hrp_migration_stage)'
);
select hasnt_schema(
    'migration_work', 'schema migration_work is gone (renamed hrp_migration_work)'
);
select hasnt_schema(
    'migration_unmapped', 'schema migration_unmapped is gone (renamed hrp_migration_unmapped)'
);
select hasnt_schema('maintenance', 'schema maintenance is gone (renamed hrp_maintenance)');

-- The privileges followed the renames: the schemas are the superuser's; only the monitoring role
-- reaches hrp_maintenance (USAGE, for cron_job_runs()).
select
    schema_privs_are(
        schema_name, role_name,
        case
            when schema_name = 'hrp_maintenance' and role_name = 'hrp_monitor'
                then array['USAGE']
            else array[]::text[]
        end,
        role_name || ' has '
        || case
            when schema_name = 'hrp_maintenance' and role_name = 'hrp_monitor' then 'USAGE only'
            else 'no privilege'
        end
        || ' on schema ' || schema_name
    )
from
    unnest(array[
        'hrp_migration', 'hrp_migration_stage', 'hrp_migration_work', 'hrp_migration_unmapped',
        'hrp_maintenance'
    ]) as schema_name,
    unnest(array['hrp_app', 'hrp_readonly', 'hrp_backup', 'hrp_monitor', 'hrp_owner']) as role_name;
select is_empty(
    $$
    select n.nspname, a.privilege_type
    from pg_catalog.pg_namespace as n
    cross join lateral aclexplode(n.nspacl) as a
    where n.nspname like 'hrp\_m%' and a.grantee = 0
    $$,
    'PUBLIC has no privilege on the renamed schemas'
);

select is_empty(
    $$
    select s.job_name from hrp_maintenance.schedule as s
    where s.command !~ '^select hrp_maintenance\.[a-z_]+\(\)$'
    $$,
    'every job of the schedule calls a function of schema hrp_maintenance'
);
select is_empty(
    $$
    select p.oid::regprocedure
    from pg_catalog.pg_proc as p
    where
        p.pronamespace in (
            'hrp_migration'::regnamespace, 'hrp_maintenance'::regnamespace,
            'hrp_anonymize'::regnamespace, 'hrp_monitor'::regnamespace, 'public'::regnamespace
        )
        and (
            p.prosrc ~ '\m(migration|maintenance)(_stage|_work|_unmapped)?\.'
            or array_to_string(p.proconfig, ',') ~ '\m(migration|maintenance)\M'
        )
    $$,
    'no function of the project names an old schema in its body or settings'
);
select is_empty(
    $$
    select c.oid::regclass
    from pg_catalog.pg_class as c
    where
        c.relkind in ('v', 'm')
        and c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        and pg_get_viewdef(c.oid) ~ '\m(migration|maintenance)(_stage|_work|_unmapped)?\.'
    $$,
    'no view names an old schema'
);

-- A second run: the guard finds nothing to rename and the schedule is left as it is.
-- noqa: disable=PRS
\ir ../../../schema/0031_schema_names_hrp_prefix.sql
-- noqa: enable=PRS
select is(
    (
        select count(*)::int from pg_catalog.pg_namespace
        where nspname in (
            'hrp_migration', 'hrp_migration_stage', 'hrp_migration_work',
            'hrp_migration_unmapped', 'hrp_maintenance'
        )
    ),
    5,
    'a second run of the file keeps the five schemas'
);
select is(
    (
        select count(*)::int from hrp_maintenance.schedule
        where command = 'select hrp_maintenance.' || job_name || '()'
    ),
    3,
    'a second run of the file leaves the three jobs'' commands as they are'
);

select * from finish();
rollback;
