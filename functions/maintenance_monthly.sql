-- maintenance_monthly: the monthly capacity report (issue 15; the spec's monthly "Capacity
-- planning"): the size of every table (with its TOAST) and index, its growth since the previous
-- report, the disk usage of the data directory's file system and the days until the spec's disk
-- alerts (warning 80 %, critical 90 %) at the growth measured since the oldest daily sample of the
-- last 31 days.
-- requires: functions/maintenance_common.sql

create or replace function hrp_maintenance.monthly_capacity(
    warning_percent numeric default 80, critical_percent numeric default 90
)
returns bigint
language plpgsql
as $$
declare
    this_run bigint := hrp_maintenance.start_run(
        'monthly_capacity',
        jsonb_build_object('warning_percent', warning_percent, 'critical_percent', critical_percent)
    );
    objects bigint;
    disk jsonb;
begin
    insert into hrp_maintenance.findings (run_id, kind, object, figures)
    select
        this_run,
        sized.kind,
        sized.object_name,
        jsonb_build_object(
            'bytes', sized.bytes,
            'previous_bytes', (previous.figures ->> 'bytes')::bigint,
            'previous_at', previous.found_at,
            'growth_bytes', sized.bytes - (previous.figures ->> 'bytes')::bigint,
            'growth_bytes_per_day', round(
                (sized.bytes - (previous.figures ->> 'bytes')::bigint)
                / nullif(extract(epoch from clock_timestamp() - previous.found_at) / 86400, 0)
            )
        )
    from (
        select
            case when c.relkind = 'i' then 'index_size' else 'table_size' end as kind,
            c.oid::regclass::text as object_name,
            case
                when c.relkind = 'i' then pg_catalog.pg_relation_size(c.oid)
                else pg_catalog.pg_table_size(c.oid)
            end as bytes
        from pg_catalog.pg_class as c
        where
            c.relkind in ('r', 'm', 'i') and c.relpersistence <> 't'
            and hrp_maintenance.is_project_relation(c.oid)
    ) as sized
    left join lateral (
        -- the same object in the previous capacity report
        select f.figures, f.found_at
        from hrp_maintenance.findings as f
        inner join hrp_maintenance.runs as r on f.run_id = r.run_id
        where
            r.job = 'monthly_capacity' and r.run_id < this_run
            and f.kind = sized.kind and f.object = sized.object_name
        order by f.found_at desc
        limit 1
    ) as previous on true;
    get diagnostics objects = row_count;
    disk := hrp_maintenance.record_disk_usage(this_run, warning_percent, critical_percent);
    return hrp_maintenance.finish_run(
        this_run,
        jsonb_build_object(
            'objects', objects,
            'database_bytes', disk -> 'database_bytes',
            'used_percent', disk -> 'used_percent',
            'days_to_warning', disk -> 'days_to_warning',
            'days_to_critical', disk -> 'days_to_critical'
        )
    );
end;
$$;
comment on function hrp_maintenance.monthly_capacity(numeric, numeric) is
'Monthly job: findings table_size / index_size (bytes, growth since the previous report, per day)
and disk_usage (file system, growth per day, days to the warning and critical thresholds);
returns the run_id.';

-- Superusers only (functions/maintenance_common.sql).
revoke execute on all functions in schema hrp_maintenance from public;
