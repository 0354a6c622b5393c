-- pgTAP tests for roles/roles.sql: the five roles exist with exactly the attributes the spec (and
-- issue 14 for hrp_monitor) gives them; the only membership is hrp_monitor's in pg_monitor, and no
-- other role holds a role of theirs.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(12);

select has_role('hrp_owner', 'role hrp_owner exists');
select has_role('hrp_app', 'role hrp_app exists');
select has_role('hrp_readonly', 'role hrp_readonly exists');
select has_role('hrp_backup', 'role hrp_backup exists');
select has_role('hrp_monitor', 'role hrp_monitor exists');

select is(
    (
        select
            string_agg(
                format(
                    '%s login=%s super=%s createdb=%s createrole=%s replication=%s bypassrls=%s',
                    rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,
                    rolbypassrls
                ),
                '; ' order by rolname
            )
        from pg_catalog.pg_roles
        where rolname in ('hrp_owner', 'hrp_app', 'hrp_readonly', 'hrp_backup', 'hrp_monitor')
    ),
    'hrp_app login=t super=f createdb=f createrole=f replication=f bypassrls=f; '
    || 'hrp_backup login=t super=f createdb=f createrole=f replication=t bypassrls=f; '
    || 'hrp_monitor login=t super=f createdb=f createrole=f replication=f bypassrls=f; '
    || 'hrp_owner login=f super=f createdb=f createrole=f replication=f bypassrls=f; '
    || 'hrp_readonly login=t super=f createdb=f createrole=f replication=f bypassrls=f',
    'login, superuser, createdb, createrole, replication, bypassrls are exactly the spec''s'
);
select results_eq(
    $$
    select m.roleid::regrole::text, m.member::regrole::text
    from pg_catalog.pg_auth_members as m
    where
        m.member in (select oid from pg_catalog.pg_roles where rolname like 'hrp\_%')
        or m.roleid in (select oid from pg_catalog.pg_roles where rolname like 'hrp\_%')
    $$,
    $$ values ('pg_monitor', 'hrp_monitor') $$,
    'no role membership to or from the HRP roles but hrp_monitor''s in pg_monitor'
);
select isnt(
    shobj_description('hrp_owner'::regrole, 'pg_authid'), null, 'hrp_owner has a comment'
);
select isnt(
    shobj_description('hrp_app'::regrole, 'pg_authid'), null, 'hrp_app has a comment'
);
select isnt(
    shobj_description('hrp_readonly'::regrole, 'pg_authid'), null, 'hrp_readonly has a comment'
);
select isnt(
    shobj_description('hrp_backup'::regrole, 'pg_authid'), null, 'hrp_backup has a comment'
);
select isnt(
    shobj_description('hrp_monitor'::regrole, 'pg_authid'), null, 'hrp_monitor has a comment'
);

select * from finish();
rollback;
