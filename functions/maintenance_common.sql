-- maintenance_common: what the maintenance jobs share (issue 15): the extensions they use, the
-- run and finding records, the connection a job opens to run VACUUM (which no function can run
-- itself), the disk usage of the data directory's file system, and the days-left arithmetic.
-- Every function here runs with its caller's rights; only superusers may execute them (the jobs
-- run as the superuser that scheduled them).
-- requires: schema/0020_maintenance.sql

-- The extensions, each only where the server has it: dblink (VACUUM from a job), pgstattuple (bloat
-- figures), pg_repack (online rebuilds; its objects live in its own schema `repack`). Called again
-- by every deploy, so that a package a DBA installs later is picked up without a change to this
-- file. pg_stat_statements (the weekly slow statements) is functions/monitoring.sql's, in schema
-- hrp_monitor; the weekly job finds it wherever it is.
create or replace function hrp_maintenance.ensure_extensions()
returns text[]
language plpgsql
as $$
declare
    wanted record;
    missing text[] := array[]::text[];
    preloaded constant text[] := string_to_array(
        replace(current_setting('shared_preload_libraries'), ' ', ''), ','
    );
begin
    for wanted in
        select e.name, e.schema_name, e.needs_preload
        from (
            values
            ('dblink', 'hrp_maintenance', false),
            ('pgstattuple', 'hrp_maintenance', false),
            ('pg_repack', 'hrp_maintenance', false)
        ) as e (name, schema_name, needs_preload)
    loop
        if exists (select 1 from pg_catalog.pg_extension as x where x.extname = wanted.name) then
            continue;
        end if;
        if not exists (
            select 1 from pg_catalog.pg_available_extensions as a where a.name = wanted.name
        ) or (wanted.needs_preload and not wanted.name = any(preloaded)) then
            missing := missing || wanted.name::text;
            continue;
        end if;
        if wanted.schema_name is null then
            execute format('create extension %I', wanted.name);
        else
            execute format('create extension %I with schema %I', wanted.name, wanted.schema_name);
        end if;
    end loop;
    return missing;
end;
$$;
comment on function hrp_maintenance.ensure_extensions() is
'Creates the extensions the maintenance jobs use that this server can provide (dblink,
pgstattuple, pg_repack); returns the names of those it cannot.';

do $extensions$
declare
    missing text[] := hrp_maintenance.ensure_extensions();
begin
    if cardinality(missing) > 0 then
        raise notice 'maintenance: not available on this server: % (the jobs skip what needs them)',
        array_to_string(missing, ', ');
    end if;
end;
$extensions$;

create or replace function hrp_maintenance.start_run(job text, details jsonb default '{}')
returns bigint
language sql
as $$
    insert into hrp_maintenance.runs (job, details) values (job, details) returning run_id;
$$;
comment on function hrp_maintenance.start_run(text, jsonb) is
'Opens the run record of a job (in the job''s transaction); returns its run_id.';

create or replace function hrp_maintenance.finish_run(run_id bigint, details jsonb default '{}')
returns bigint
language sql
as $$
    update hrp_maintenance.runs as r
    set finished_at = clock_timestamp(), details = r.details || finish_run.details
    where r.run_id = finish_run.run_id
    returning r.run_id;
$$;
comment on function hrp_maintenance.finish_run(bigint, jsonb) is
'Closes a run record: finish time, and the summary merged into its details; returns the run_id.';

create or replace function hrp_maintenance.add_finding(
    run_id bigint, kind text, object text, figures jsonb
)
returns void
language sql
as $$
    insert into hrp_maintenance.findings (run_id, kind, object, figures)
    values (run_id, kind, object, coalesce(figures, '{}'));
$$;
comment on function hrp_maintenance.add_finding(bigint, text, text, jsonb) is
'Records one finding of a run.';

create or replace function hrp_maintenance.is_project_relation(rel oid)
returns boolean
language sql
stable
as $$
    select
        n.nspname not in ('pg_catalog', 'information_schema', 'cron', 'repack')
        and n.nspname not like 'pg\_toast%'
        and n.nspname not like 'pg\_temp%'
        and not exists (
            select 1 from pg_catalog.pg_depend as d
            where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e'
        )
    from pg_catalog.pg_class as c
    inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    where c.oid = rel;
$$;
comment on function hrp_maintenance.is_project_relation(oid) is
'True for a table or index the jobs look after: not a catalog, TOAST, temporary or extension
object.';

create or replace function hrp_maintenance.conninfo_quote(conninfo_value text)
returns text
language sql
immutable
as $$
    select '''' || replace(replace(conninfo_value, '\', '\\'), '''', '\''') || '''';
$$;
comment on function hrp_maintenance.conninfo_quote(text) is
'A value quoted for a libpq conninfo string (single quotes, backslash escapes).';

-- VACUUM cannot run inside a function or a transaction block, and pg_cron runs a job's command as
-- one transaction: a job runs VACUUM (and ANALYZE, so that its lock is held only for that table's
-- work, not until the job ends) through a dblink connection to this same database. It goes over
-- the server's first unix socket as the job's user: the superuser's peer login over the socket
-- (conf/pg_hba.conf.template), which needs no password.
create or replace function hrp_maintenance.self_conninfo()
returns text
language plpgsql
stable
as $$
declare
    socket_dir constant text := btrim(
        split_part(current_setting('unix_socket_directories'), ',', 1)
    );
begin
    if socket_dir = '' then
        raise exception 'maintenance: this server has no unix socket (unix_socket_directories is '
        'empty): a job cannot connect to it to run VACUUM';
    end if;
    return format(
        'host=%s port=%s dbname=%s user=%s application_name=hrp_maintenance',
        hrp_maintenance.conninfo_quote(socket_dir), current_setting('port'),
        hrp_maintenance.conninfo_quote(current_database()),
        hrp_maintenance.conninfo_quote(current_user::text)
    );
end;
$$;
comment on function hrp_maintenance.self_conninfo() is
'Conninfo of this database over the server''s first unix socket as the current (super)user: where
the jobs run VACUUM and ANALYZE through dblink.';

-- The file system of the data directory, as df sees it (COPY FROM PROGRAM, superuser only: there is
-- no SQL function for it). The disk alerts of the spec (80 %, 90 %) are on this file system.
create or replace function hrp_maintenance.disk_usage()
returns table (data_directory text, size_bytes bigint, used_bytes bigint, avail_bytes bigint)
language plpgsql
as $$
declare
    datadir constant text := current_setting('data_directory');
    shell_path constant text := '''' || replace(datadir, '''', '''\''''') || '''';
begin
    if to_regclass('pg_temp.hrp_disk_usage') is null then
        create temp table hrp_disk_usage (
            size_bytes bigint, used_bytes bigint, avail_bytes bigint
        ) on commit drop;
    end if;
    truncate pg_temp.hrp_disk_usage;
    execute format(
        'copy pg_temp.hrp_disk_usage from program %L',
        'df -P -B1 ' || shell_path || ' | awk ''NR == 2 {print $2 "\t" $3 "\t" $4}'''
    );
    return query
    select datadir, d.size_bytes, d.used_bytes, d.avail_bytes from pg_temp.hrp_disk_usage as d;
end;
$$;
comment on function hrp_maintenance.disk_usage() is
'Size, used and available bytes of the file system holding the data directory (df).';

create or replace function hrp_maintenance.days_until(
    threshold_percent numeric, size_bytes bigint, avail_bytes bigint, growth_bytes_per_day numeric
)
returns numeric
language sql
immutable
as $$
    -- used as the alert sees it: what is not available (df's reserved blocks count as used)
    select case
        when size_bytes is null or size_bytes <= 0 then null
        when (size_bytes - avail_bytes) >= threshold_percent / 100 * size_bytes then 0
        when growth_bytes_per_day is null or growth_bytes_per_day <= 0 then null
        else round(
            (threshold_percent / 100 * size_bytes - (size_bytes - avail_bytes))
            / growth_bytes_per_day,
            1
        )
    end;
$$;
comment on function hrp_maintenance.days_until(numeric, bigint, bigint, numeric) is
'Days until the file system reaches threshold_percent used at the given growth: 0 when it already
has, NULL when it does not grow.';

-- The daily and monthly jobs record one sample each; growth is measured between samples.
create or replace function hrp_maintenance.record_disk_usage(
    run_id bigint, warning_percent numeric default 80, critical_percent numeric default 90
)
returns jsonb
language plpgsql
as $$
declare
    now_usage record;
    earlier record;
    database_bytes constant bigint := pg_catalog.pg_database_size(current_database());
    days numeric;
    growth numeric;
    database_growth numeric;
    figures jsonb;
begin
    select * into strict now_usage from hrp_maintenance.disk_usage();
    -- the growth reference: the oldest sample of the last 31 days, else the newest one before
    select f.found_at, f.figures into earlier
    from hrp_maintenance.findings as f
    where
        f.kind = 'disk_usage' and f.object = current_database()
        and f.found_at < clock_timestamp() - interval '1 hour'
    order by f.found_at >= clock_timestamp() - interval '31 days' desc,
        case when f.found_at >= clock_timestamp() - interval '31 days' then f.found_at end asc,
        f.found_at desc
    limit 1;
    if found then
        days := extract(epoch from clock_timestamp() - earlier.found_at) / 86400;
        growth := round(
            (
                (now_usage.size_bytes - now_usage.avail_bytes)
                - ((earlier.figures ->> 'size_bytes')::bigint
                    - (earlier.figures ->> 'avail_bytes')::bigint)
            ) / days
        );
        database_growth := round(
            (database_bytes - (earlier.figures ->> 'database_bytes')::bigint) / days
        );
    end if;
    figures := jsonb_build_object(
        'data_directory', now_usage.data_directory,
        'database_bytes', database_bytes,
        'size_bytes', now_usage.size_bytes,
        'used_bytes', now_usage.used_bytes,
        'avail_bytes', now_usage.avail_bytes,
        'used_percent', round(
            100.0 * (now_usage.size_bytes - now_usage.avail_bytes) / nullif(now_usage.size_bytes, 0), 1
        ),
        'since', earlier.found_at,
        'used_growth_bytes_per_day', growth,
        'database_growth_bytes_per_day', database_growth,
        'warning_percent', warning_percent,
        'critical_percent', critical_percent,
        'days_to_warning', hrp_maintenance.days_until(
            warning_percent, now_usage.size_bytes, now_usage.avail_bytes, growth
        ),
        'days_to_critical', hrp_maintenance.days_until(
            critical_percent, now_usage.size_bytes, now_usage.avail_bytes, growth
        )
    );
    perform hrp_maintenance.add_finding(run_id, 'disk_usage', current_database(), figures);
    return figures;
end;
$$;
comment on function hrp_maintenance.record_disk_usage(bigint, numeric, numeric) is
'Records a disk_usage finding: database size, file system size/used/available, growth per day
since the oldest sample of the last 31 days, days until the warning and critical thresholds.';

create or replace function hrp_maintenance.cron_jobs()
returns json
language sql
stable
as $$
    select coalesce(
        json_agg(
            json_build_object(
                'jobname', s.job_name || '@' || current_database(),
                'schedule', s.schedule,
                'command', s.command
            )
            order by s.job_name
        ),
        '[]'
    )
    from hrp_maintenance.schedule as s;
$$;
comment on function hrp_maintenance.cron_jobs() is
'The schedule as pg_cron jobs of this database (jobname <job_name>@<database>, schedule, command):
what deploy hands to data/maintenance/schedule_in_cron.sql in the cron database.';

-- pg_cron's record of this database's jobs, for the monitoring role: it lives in the cron database
-- (cron.job_run_details), which the exporter does not connect to. SECURITY DEFINER (owned by the
-- deploying superuser) reads it there through dblink; no argument, no text the caller chooses.
-- No row when pg_cron is not loaded or its extension not created.
create or replace function hrp_maintenance.cron_job_runs()
returns table (
    jobname text,
    active boolean,
    runs bigint,
    failed_runs bigint,
    last_status text,
    last_end timestamptz
)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    cron_database constant text := current_setting('cron.database_name', true);
begin
    if cron_database is null
        or not exists (select 1 from pg_database as d where d.datname = cron_database) then
        return;
    end if;
    return query
    select r.jobname, r.active, r.runs, r.failed_runs, r.last_status, r.last_end
    from hrp_maintenance.dblink(
        replace(
            hrp_maintenance.self_conninfo(),
            'dbname=' || hrp_maintenance.conninfo_quote(current_database()),
            'dbname=' || hrp_maintenance.conninfo_quote(cron_database)
        ),
        format(
            'select j.jobname::text, j.active, count(d.runid), count(d.runid) filter ('
            '    where d.status = ''failed''), (array_agg(d.status order by d.runid desc))[1],'
            '    max(d.end_time)'
            ' from cron.job as j left join cron.job_run_details as d on d.jobid = j.jobid'
            ' where j.database = %L'
            ' group by j.jobname, j.active',
            current_database()
        )
    ) as r (
        jobname text, active boolean, runs bigint, failed_runs bigint, last_status text,
        last_end timestamptz
    );
exception
    when undefined_table then
        return;  -- pg_cron loaded, its extension not created (yet) in the cron database
end;
$$;
comment on function hrp_maintenance.cron_job_runs() is
'This database''s pg_cron jobs with their runs and failed runs so far, the last status and end
(cron.job_run_details, read in the cron database): what the exporter counts for the monitoring.';

-- Only superusers run the maintenance functions (the jobs run as the superuser that scheduled
-- them); the monitoring role gets the schema and cron_job_runs() alone. Every functions/
-- maintenance_*.sql file ends with this revoke (a function gets EXECUTE for PUBLIC when created).
revoke execute on all functions in schema hrp_maintenance from public;
do $monitor$
begin
    if exists (select 1 from pg_catalog.pg_roles where rolname = 'hrp_monitor') then
        grant usage on schema hrp_maintenance to hrp_monitor;
        grant execute on function hrp_maintenance.cron_job_runs() to hrp_monitor;
    end if;
end;
$monitor$;
