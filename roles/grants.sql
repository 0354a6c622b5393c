-- grants: ownership and privileges of the schema objects, as the spec's "Database Users" grants
-- them, made exact: whatever else was granted is revoked first, in the same transaction.
--   hrp_owner     owns every table, view, sequence, function and type of schema public;
--                 USAGE and CREATE on it
--   hrp_app       USAGE on public; SELECT, INSERT, UPDATE, DELETE on tables; USAGE, SELECT on
--                 sequences. It owns nothing, so it cannot ALTER or DROP, and has no CREATE.
--   hrp_readonly  USAGE on public; SELECT on tables and views
--   hrp_backup    CONNECT only (its REPLICATION attribute is in roles/roles.sql)
--   hrp_monitor   CONNECT only here (pg_monitor membership: roles/roles.sql; its schema
--                 hrp_monitor: functions/monitoring.sql)
--   PUBLIC        no CREATE (nor USAGE) on schema public; no CONNECT or TEMP on the database
-- ALTER DEFAULT PRIVILEGES gives tables and sequences created later (by hrp_owner, or by the
-- deploying superuser) the same grants. The apply ledger (schema hrp_deploy) stays private.
-- Marked to re-run after any other file of deploy.plan is applied, so objects added later are
-- handed to hrp_owner too:
-- hrp:rerun-after-any-change
-- requires: roles/roles.sql, every schema/, functions/ and views/ file (it is last in the plan)

-- Ownership: everything of schema public that is not part of an extension.
do $owner$
declare
    object record;
begin
    for object in
        select
            case c.relkind
                when 'v' then 'view' when 'm' then 'materialized view'
                when 'S' then 'sequence' when 'f' then 'foreign table' else 'table'
            end as kind,
            c.oid::regclass::text as name
        from pg_catalog.pg_class as c
        where
            c.relnamespace = 'public'::regnamespace
            and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
            and c.relowner <> 'hrp_owner'::regrole
            -- a sequence owned by a column moves with its table
            and not exists (
                select 1 from pg_catalog.pg_depend as d
                where
                    d.classid = 'pg_class'::regclass and d.objid = c.oid
                    and d.deptype in ('a', 'i', 'e')
            )
    loop
        execute format('alter %s %s owner to hrp_owner', object.kind, object.name);
    end loop;
    for object in
        select p.oid::regprocedure::text as name, p.prokind
        from pg_catalog.pg_proc as p
        where
            p.pronamespace = 'public'::regnamespace
            and p.proowner <> 'hrp_owner'::regrole
            and not exists (
                select 1 from pg_catalog.pg_depend as d
                where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
            )
    loop
        execute format(
            'alter %s %s owner to hrp_owner',
            case object.prokind when 'p' then 'procedure' else 'function' end, object.name
        );
    end loop;
    for object in
        select t.oid::regtype::text as name
        from pg_catalog.pg_type as t
        where
            t.typnamespace = 'public'::regnamespace
            and t.typtype in ('e', 'd', 'c', 'r', 'm')
            and t.typowner <> 'hrp_owner'::regrole
            -- composite row types of tables and views move with their relation
            and (t.typrelid = 0 or (
                select c.relkind from pg_catalog.pg_class as c where c.oid = t.typrelid
            ) = 'c')
            and not exists (
                select 1 from pg_catalog.pg_depend as d
                where d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e'
            )
    loop
        execute format('alter type %s owner to hrp_owner', object.name);
    end loop;
end;
$owner$;

-- Schemas: public keeps its PostgreSQL 15 owner (pg_database_owner); nobody but the owner creates
-- in it. hrp_deploy (the ledger, pgaudit's event trigger functions) is the superuser's alone.
-- PUBLIC loses USAGE as well as CREATE: only the roles granted below reach the schema.
revoke all on schema public
from public, hrp_app, hrp_readonly, hrp_backup, hrp_monitor, hrp_owner;
grant usage on schema public to hrp_app, hrp_readonly;
-- The owner role creates what later files add when a deployer runs them as it (SET ROLE hrp_owner).
grant usage, create on schema public to hrp_owner;
revoke all on schema hrp_deploy
from public, hrp_app, hrp_readonly, hrp_backup, hrp_monitor, hrp_owner;

-- Tables, views and sequences: exactly the spec's privileges.
revoke all on all tables in schema public
from public, hrp_app, hrp_readonly, hrp_backup, hrp_monitor;
revoke all on all sequences in schema public
from public, hrp_app, hrp_readonly, hrp_backup, hrp_monitor;
grant select, insert, update, delete on all tables in schema public to hrp_app;
grant usage, select on all sequences in schema public to hrp_app;
grant select on all tables in schema public to hrp_readonly;

-- The same for objects created later, by the owner role or by the superuser deploying them.
do $defaults$
declare
    creator text;
begin
    foreach creator in array array['hrp_owner', current_user] loop
        execute format(
            'alter default privileges for role %I in schema public '
            'grant select, insert, update, delete on tables to hrp_app', creator
        );
        execute format(
            'alter default privileges for role %I in schema public '
            'grant usage, select on sequences to hrp_app', creator
        );
        execute format(
            'alter default privileges for role %I in schema public '
            'grant select on tables to hrp_readonly', creator
        );
    end loop;
end;
$defaults$;

-- The database: CONNECT for the four login roles only (CREATE DATABASE gives PUBLIC CONNECT and
-- TEMP). format('%I') quotes the name, whatever it is.
do $database$
begin
    execute format('revoke all on database %I from public', current_database());
    execute format(
        'grant connect on database %I to hrp_app, hrp_readonly, hrp_backup, hrp_monitor',
        current_database()
    );
end;
$database$;
