-- pgTAP tests for roles/grants.sql: for every role, exactly the spec's privileges on every table,
-- view, sequence and schema; hrp_owner owns the schema objects; PUBLIC has nothing; and the
-- default privileges give tables and sequences created later (by the deploying superuser or by
-- hrp_owner) the same grants. (Database CONNECT is checked by tests/test_security.py: a database
-- cloned from a template does not inherit its ACL.)
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(80);

-- Tables and views: 7 relations x 4 roles.
select
    table_privs_are(
        'public', relation, 'hrp_app', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
        'hrp_app has SELECT, INSERT, UPDATE, DELETE on ' || relation
    )
from unnest(array[
    'races', 'horses', 'predictions', 'users', 'api_credentials',
    'horse_performance_summary', 'race_statistics'
]) as relation;
select
    table_privs_are(
        'public', relation, 'hrp_readonly', array['SELECT'],
        'hrp_readonly has SELECT only on ' || relation
    )
from unnest(array[
    'races', 'horses', 'predictions', 'users', 'api_credentials',
    'horse_performance_summary', 'race_statistics'
]) as relation;
select
    table_privs_are(
        'public', relation, 'hrp_backup', array[]::text[],
        'hrp_backup has no privilege on ' || relation
    )
from unnest(array[
    'races', 'horses', 'predictions', 'users', 'api_credentials',
    'horse_performance_summary', 'race_statistics'
]) as relation;

select
    table_privs_are(
        'public', relation, 'hrp_monitor', array[]::text[],
        'hrp_monitor has no privilege on ' || relation
    )
from unnest(array[
    'races', 'horses', 'predictions', 'users', 'api_credentials',
    'horse_performance_summary', 'race_statistics'
]) as relation;

-- Sequences: 5 x 4 roles.
select
    sequence_privs_are(
        'public', sequence_name, 'hrp_app', array['USAGE', 'SELECT'],
        'hrp_app has USAGE, SELECT on ' || sequence_name
    )
from unnest(array[
    'races_id_seq', 'horses_id_seq', 'predictions_id_seq', 'users_id_seq',
    'api_credentials_id_seq'
]) as sequence_name;
select
    sequence_privs_are(
        'public', sequence_name, 'hrp_readonly', array[]::text[],
        'hrp_readonly has no privilege on ' || sequence_name
    )
from unnest(array[
    'races_id_seq', 'horses_id_seq', 'predictions_id_seq', 'users_id_seq',
    'api_credentials_id_seq'
]) as sequence_name;
select
    sequence_privs_are(
        'public', sequence_name, 'hrp_backup', array[]::text[],
        'hrp_backup has no privilege on ' || sequence_name
    )
from unnest(array[
    'races_id_seq', 'horses_id_seq', 'predictions_id_seq', 'users_id_seq',
    'api_credentials_id_seq'
]) as sequence_name;

select
    sequence_privs_are(
        'public', sequence_name, 'hrp_monitor', array[]::text[],
        'hrp_monitor has no privilege on ' || sequence_name
    )
from unnest(array[
    'races_id_seq', 'horses_id_seq', 'predictions_id_seq', 'users_id_seq',
    'api_credentials_id_seq'
]) as sequence_name;

-- Schemas: public, and the private schemas, for every role.
select schema_privs_are(
    'public', 'hrp_app', array['USAGE'], 'hrp_app has USAGE (no CREATE) on schema public'
);
select schema_privs_are(
    'public', 'hrp_readonly', array['USAGE'],
    'hrp_readonly has USAGE (no CREATE) on schema public'
);
select schema_privs_are(
    'public', 'hrp_backup', array[]::text[], 'hrp_backup has no privilege on schema public'
);
select schema_privs_are(
    'public', 'hrp_monitor', array[]::text[], 'hrp_monitor has no privilege on schema public'
);
select schema_privs_are(
    'public', 'hrp_owner', array['USAGE', 'CREATE'],
    'hrp_owner has USAGE and CREATE on schema public'
);
select
    schema_privs_are(
        schema_name, role_name, array[]::text[],
        role_name || ' has no privilege on private schema ' || schema_name
    )
from
    unnest(array['hrp_deploy', 'hrp_anonymize']) as schema_name,
    unnest(array['hrp_app', 'hrp_readonly', 'hrp_backup', 'hrp_monitor', 'hrp_owner']) as role_name;

-- PUBLIC.
select is_empty(
    $$
    select a.privilege_type
    from pg_catalog.pg_namespace as n, aclexplode(n.nspacl) as a
    where n.nspname in ('public', 'hrp_deploy', 'hrp_anonymize') and a.grantee = 0
    $$,
    'PUBLIC has no privilege on schemas public, hrp_deploy, hrp_anonymize'
);
select is_empty(
    $$
    select c.relname, a.privilege_type
    from pg_catalog.pg_class as c, aclexplode(c.relacl) as a
    where
        c.relnamespace = 'public'::regnamespace and a.grantee = 0
        and not exists (
            select 1 from pg_catalog.pg_depend as d
            where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
        )
    $$,
    'PUBLIC has no privilege on any table, view or sequence of schema public (but pgTAP''s)'
);

-- Ownership.
select table_owner_is('public', relation, 'hrp_owner', relation || ' is owned by hrp_owner')
from unnest(array['races', 'horses', 'predictions', 'users', 'api_credentials']) as relation;
select view_owner_is('public', relation, 'hrp_owner', relation || ' is owned by hrp_owner')
from unnest(array['horse_performance_summary', 'race_statistics']) as relation;
select is_empty(
    $$
    select c.oid::regclass::text from pg_catalog.pg_class as c
    where
        c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
        and c.relowner <> 'hrp_owner'::regrole
        and not exists (
            select 1 from pg_catalog.pg_depend as d
            where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
        )
    union all
    select p.oid::regprocedure::text from pg_catalog.pg_proc as p
    where
        p.pronamespace = 'public'::regnamespace and p.proowner <> 'hrp_owner'::regrole
        and not exists (
            select 1 from pg_catalog.pg_depend as d
            where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
        )
    union all
    select t.oid::regtype::text from pg_catalog.pg_type as t
    where
        t.typnamespace = 'public'::regnamespace and t.typtype in ('e', 'd')
        and t.typowner <> 'hrp_owner'::regrole
        and not exists (
            select 1 from pg_catalog.pg_depend as d
            where d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e'
        )
    $$,
    'every relation, function and type of schema public is owned by hrp_owner'
);
select schema_owner_is('hrp_deploy', current_user, 'hrp_deploy stays with the superuser');

-- Default privileges: a table and its sequence created later, by the deploying superuser ...
create table public.pgtap_later_by_superuser (id bigserial primary key);
select table_privs_are(
    'public', 'pgtap_later_by_superuser', 'hrp_app', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'a table the superuser creates later: hrp_app gets SELECT, INSERT, UPDATE, DELETE'
);
select table_privs_are(
    'public', 'pgtap_later_by_superuser', 'hrp_readonly', array['SELECT'],
    'a table the superuser creates later: hrp_readonly gets SELECT'
);
select sequence_privs_are(
    'public', 'pgtap_later_by_superuser_id_seq', 'hrp_app', array['USAGE', 'SELECT'],
    'a sequence the superuser creates later: hrp_app gets USAGE, SELECT'
);
-- ... and by hrp_owner.
set local role hrp_owner;
create table public.pgtap_later_by_owner (id bigserial primary key);
reset role;
select table_privs_are(
    'public', 'pgtap_later_by_owner', 'hrp_app', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    'a table hrp_owner creates later: hrp_app gets SELECT, INSERT, UPDATE, DELETE'
);
select table_privs_are(
    'public', 'pgtap_later_by_owner', 'hrp_readonly', array['SELECT'],
    'a table hrp_owner creates later: hrp_readonly gets SELECT'
);
select sequence_privs_are(
    'public', 'pgtap_later_by_owner_id_seq', 'hrp_app', array['USAGE', 'SELECT'],
    'a sequence hrp_owner creates later: hrp_app gets USAGE, SELECT'
);

select * from finish();
rollback;
