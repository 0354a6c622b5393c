-- roles: the cluster-wide roles of the HRP platform (the spec's "Database Users"), plus a NOLOGIN
-- owner role. Roles belong to the cluster, not to the database: each is created by a guarded DO
-- block testing pg_roles (never dropped), then its attributes are (re)asserted, so a re-run also
-- repairs drift. No password here: the harness sets them as SCRAM verifiers after apply
-- (hrp_harness/platform/passwords.py), from HRP_*_PASSWORD or a generated 0600 secrets file.
--   hrp_owner     NOLOGIN, owns the schema objects (roles/grants.sql hands them over)
--   hrp_app       the application: DML and sequences only
--   hrp_readonly  reporting: SELECT only
--   hrp_backup    REPLICATION for base backups and WAL streaming, CONNECT to the database
--   hrp_monitor   the monitoring exporter (issue 14): member of pg_monitor (reads statistics and
--                 settings, nothing of the data), CONNECT to the database
-- requires: a superuser (or CREATEROLE and REPLICATION) applying it

do $roles$
declare
    wanted constant text[] := array[
        'hrp_owner', 'hrp_app', 'hrp_readonly', 'hrp_backup', 'hrp_monitor'
    ];
    role_name text;
begin
    foreach role_name in array wanted loop
        if not exists (select 1 from pg_catalog.pg_roles where rolname = role_name) then
            begin
                execute format('create role %I', role_name);
            exception when duplicate_object then
                -- another database of this cluster applied the plan at the same moment
                null;
            end;
        end if;
    end loop;
end;
$roles$;

-- Attributes, asserted on every run. Nobody but hrp_backup replicates; nobody creates roles or
-- databases or bypasses row security; the owner cannot log in.
alter role hrp_owner
with nologin nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit;
alter role hrp_app
with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit;
alter role hrp_readonly
with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit;
alter role hrp_backup
with login replication nosuperuser nocreatedb nocreaterole nobypassrls inherit;
alter role hrp_monitor
with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit;
-- pg_monitor: pg_read_all_stats, pg_read_all_settings, pg_stat_scan_tables (every session's
-- statistics and query text, database sizes, settings), and no table's rows. Re-granting an
-- existing membership only raises a notice.
grant pg_monitor to hrp_monitor;

comment on role hrp_owner is
'HRP: owns the schema objects; NOLOGIN, used only through the deploying superuser.';
comment on role hrp_app is
'HRP application: SELECT, INSERT, UPDATE, DELETE on tables, USAGE and SELECT on sequences.';
comment on role hrp_readonly is
'HRP reporting: SELECT on tables and views.';
comment on role hrp_backup is
'HRP backups: REPLICATION (base backups, WAL streaming) and CONNECT to the database.';
comment on role hrp_monitor is
'HRP monitoring (postgres_exporter): pg_monitor member, CONNECT, schema hrp_monitor.';
