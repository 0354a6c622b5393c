-- monitoring: what the monitoring role hrp_monitor reads beyond pg_monitor (issue 14). Schema
-- hrp_monitor holds pg_stat_statements (the spec's query-performance source) and
-- hrp_monitor.pgbackrest_backups(): the newest backups of the pgBackRest stanza this server
-- archives its WAL to. postgres_exporter runs conf/monitoring/postgres_exporter_queries.yml as
-- hrp_monitor, whose search_path ("$user", public) finds the schema of its own name.
-- Only hrp_monitor (and superusers) get USAGE on the schema; the extension itself revokes
-- pg_stat_statements_reset() from PUBLIC.
-- pg_stat_statements must be in shared_preload_libraries (conf/base.conf; a restart): without it
-- this file only says so and the statement metrics stay empty until a DBA preloads it and deploy
-- re-runs. An existing pg_stat_statements in another schema is left where it is (the exporter then
-- cannot see it: move it with `alter extension pg_stat_statements set schema hrp_monitor`).
-- requires: roles/roles.sql (role hrp_monitor)

create schema if not exists hrp_monitor;
revoke all on schema hrp_monitor from public;
grant usage on schema hrp_monitor to hrp_monitor;

comment on schema hrp_monitor is
'Monitoring: pg_stat_statements and the functions the monitoring role hrp_monitor runs.';

do $pg_stat_statements$
begin
    if 'pg_stat_statements' = any(
        string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')
    ) then
        create extension if not exists pg_stat_statements with schema hrp_monitor;
    else
        raise notice
            'pg_stat_statements is not in shared_preload_libraries: no statement statistics '
            'for %. Add it (server restart needed), then run deploy again.', current_database();
    end if;
end;
$pg_stat_statements$;

-- pgBackRest's view of the backups, for the "last successful backup older than 26 h" alert. The
-- stanza is the one archive_command pushes to (conf/replication-primary.conf:
-- `pgbackrest --config-path=... --stanza=... --pg1-path=... archive-push %p`), asked with the same
-- options (but --pg*: info refuses them) and `--output=json info`. COPY FROM PROGRAM needs a
-- superuser: the function is SECURITY DEFINER, owned by the deploying superuser, takes no argument
-- and runs no text hrp_monitor could choose (archive_command is a superuser's setting). It runs on
-- the primary only (a standby returns no row: temporary tables are refused during recovery). A row
-- with status -1 says the server does not archive to pgBackRest, -2 that `pgbackrest info` failed
-- (the error is raised as a warning into the server log); both have times 0, so the backup alert
-- fires.
create or replace function hrp_monitor.pgbackrest_backups()
returns table (
    stanza text,
    status_code integer,
    last_full_backup_time double precision,
    last_backup_time double precision
)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $function$
declare
    command text := current_setting('archive_command');
    info jsonb;
begin
    if pg_is_in_recovery() then
        return;
    end if;
    if current_setting('archive_mode') = 'off'
        or command !~ '^pgbackrest .*--stanza=\S+ .*archive-push %p$' then
        return query select null::text, -1, 0::float8, 0::float8;
        return;
    end if;
    -- info takes the repository options, not the instance's (--pg1-path)
    command := regexp_replace(
        regexp_replace(command, ' archive-push %p$', ' --output=json info'), ' --pg\d+-\S+', '', 'g'
    );
    begin
        create temporary table if not exists hrp_pgbackrest_output (
            line_no bigint generated always as identity,
            line text
        ) on commit drop;
        truncate hrp_pgbackrest_output;
        -- CSV with a delimiter and a quote that never occur: every line arrives as it was
        -- (text format would interpret the backslashes of JSON escapes).
        execute format(
            'copy hrp_pgbackrest_output (line) from program %L '
            'with (format csv, delimiter e''\x01'', quote e''\x02'')',
            command
        );
        select string_agg(o.line, e'\n' order by o.line_no)::jsonb into info
        from hrp_pgbackrest_output as o;
    exception when others then
        raise warning 'hrp_monitor.pgbackrest_backups: % failed: %', command, sqlerrm;
        return query select
            substring(command from '--stanza=(\S+)'), -2, 0::float8, 0::float8;
        return;
    end;
    return query
    select
        s.value ->> 'name',
        (s.value -> 'status' ->> 'code')::integer,
        coalesce(max((b.value -> 'timestamp' ->> 'stop')::float8) filter (
            where b.value ->> 'type' = 'full'
        ), 0),
        coalesce(max((b.value -> 'timestamp' ->> 'stop')::float8), 0)
    from jsonb_array_elements(info) as s (value)
    left join lateral jsonb_array_elements(s.value -> 'backup') as b (value) on true
    group by s.value ->> 'name', s.value -> 'status' ->> 'code';
end;
$function$;

revoke all on function hrp_monitor.pgbackrest_backups() from public;
grant execute on function hrp_monitor.pgbackrest_backups() to hrp_monitor;

comment on function hrp_monitor.pgbackrest_backups() is
'Newest full and any backups of the pgBackRest stanza archive_command pushes to (Unix seconds).';
