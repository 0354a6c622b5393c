-- maintenance_daily: the daily job (issue 15; the spec's daily "Update statistics"): ANALYZE the
-- tables whose statistics are stale, VACUUM (ANALYZE) those whose dead tuples call for it, then a
-- disk usage sample for the monthly capacity report, and runs older than 400 days pruned.
-- Autovacuum does the same work on its own thresholds (20 % dead, 10 % changed); this job catches
-- up each night at lower ones, and analyzes partitioned tables, which autovacuum never does.
-- VACUUM and ANALYZE run through a dblink connection to this database
-- (hrp_maintenance.self_conninfo: no function can run VACUUM), one table at a time, with
-- SKIP_LOCKED: a table another session holds a conflicting lock on is skipped and recorded as
-- skipped, never waited for.
-- requires: functions/maintenance_common.sql

create or replace function hrp_maintenance.vacuum_analyze_action(
    live_tuples bigint,
    dead_tuples bigint,
    changes_since_analyze bigint,
    analyzed boolean,
    analyze_min_changes bigint default 50,
    analyze_scale numeric default 0.05,
    vacuum_min_dead bigint default 50,
    vacuum_scale numeric default 0.05,
    out action text,
    out reason text
)
language sql
immutable
as $$
    select
        case
            when dead_tuples >= vacuum_min_dead + vacuum_scale * (live_tuples + dead_tuples)
                then 'vacuum_analyze'
            when not analyzed and live_tuples > 0 then 'analyze'
            when changes_since_analyze >= analyze_min_changes + analyze_scale * live_tuples
                then 'analyze'
        end,
        case
            when dead_tuples >= vacuum_min_dead + vacuum_scale * (live_tuples + dead_tuples)
                then format(
                    '%s dead tuples >= %s + %s of %s tuples',
                    dead_tuples, vacuum_min_dead, vacuum_scale, live_tuples + dead_tuples
                )
            when not analyzed and live_tuples > 0 then 'never analyzed'
            when changes_since_analyze >= analyze_min_changes + analyze_scale * live_tuples
                then format(
                    '%s rows changed since the last analyze >= %s + %s of %s live tuples',
                    changes_since_analyze, analyze_min_changes, analyze_scale, live_tuples
                )
        end;
$$;
comment on function hrp_maintenance.vacuum_analyze_action(
    bigint, bigint, bigint, boolean, bigint, numeric, bigint, numeric
) is
'The daily rule: vacuum_analyze when dead tuples >= vacuum_min_dead + vacuum_scale x all tuples;
else analyze when never analyzed (with rows) or when rows changed since the last analyze >=
analyze_min_changes + analyze_scale x live tuples; else NULL. With the reason in words.';

create or replace function hrp_maintenance.vacuum_analyze_candidates(
    only_tables regclass[] default null,
    analyze_min_changes bigint default 50,
    analyze_scale numeric default 0.05,
    vacuum_min_dead bigint default 50,
    vacuum_scale numeric default 0.05
)
returns table (table_name regclass, action text, reason text, figures jsonb)
language sql
stable
as $$
    with leaf as (
        select
            s.relid::regclass as table_name,
            r.action,
            r.reason,
            jsonb_build_object(
                'live_tuples', s.n_live_tup,
                'dead_tuples', s.n_dead_tup,
                'changes_since_analyze', s.n_mod_since_analyze,
                'last_vacuum', greatest(s.last_vacuum, s.last_autovacuum),
                'last_analyze', greatest(s.last_analyze, s.last_autoanalyze)
            ) as figures
        from pg_catalog.pg_stat_user_tables as s
        inner join pg_catalog.pg_class as c on s.relid = c.oid
        cross join lateral hrp_maintenance.vacuum_analyze_action(
            s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
            coalesce(s.last_analyze, s.last_autoanalyze) is not null,
            analyze_min_changes, analyze_scale, vacuum_min_dead, vacuum_scale
        ) as r
        where
            c.relkind in ('r', 'm')
            and hrp_maintenance.is_project_relation(c.oid)
            and r.action is not null
    )

    select l.table_name, l.action, l.reason, l.figures
    from leaf as l
    where only_tables is null or l.table_name = any(only_tables)
    union all
    -- a partitioned table whose partitions are due: its own statistics (the planner's estimates
    -- over the whole table) come only from an ANALYZE of the partitioned table itself
    select
        p.partrelid::regclass,
        'analyze',
        'partitions are due (autovacuum never analyzes a partitioned table)',
        jsonb_build_object('partitions_due', count(*))
    from pg_catalog.pg_partitioned_table as p
    inner join leaf as l
        on l.table_name in (
            select t.relid from pg_catalog.pg_partition_tree(p.partrelid) as t where t.isleaf
        )
    where
        hrp_maintenance.is_project_relation(p.partrelid)
        and (only_tables is null or p.partrelid::regclass = any(only_tables))
        and not exists (select 1 from pg_catalog.pg_inherits as i where i.inhrelid = p.partrelid)
    group by p.partrelid;
$$;
comment on function hrp_maintenance.vacuum_analyze_candidates(
    regclass[], bigint, numeric, bigint, numeric
) is
'The tables the daily job would VACUUM (ANALYZE) or ANALYZE now, why, and their figures
(pg_stat_user_tables); only_tables limits it to those tables.';

create or replace function hrp_maintenance.daily_vacuum_analyze(
    only_tables regclass[] default null,
    analyze_min_changes bigint default 50,
    analyze_scale numeric default 0.05,
    vacuum_min_dead bigint default 50,
    vacuum_scale numeric default 0.05,
    keep_days integer default 400
)
returns bigint
language plpgsql
as $$
declare
    this_run bigint := hrp_maintenance.start_run(
        'daily_vacuum_analyze',
        jsonb_build_object(
            'analyze_min_changes', analyze_min_changes, 'analyze_scale', analyze_scale,
            'vacuum_min_dead', vacuum_min_dead, 'vacuum_scale', vacuum_scale
        )
    );
    link constant text := 'hrp_maintenance_' || pg_backend_pid();
    candidate record;
    counts_before bigint;
    counts_after bigint;
    started timestamptz;
    done boolean;
    tally jsonb := '{"vacuum_analyze": 0, "analyze": 0, "skipped": 0}';
    pruned bigint;
begin
    for candidate in
        select c.*
        from hrp_maintenance.vacuum_analyze_candidates(
            only_tables, analyze_min_changes, analyze_scale, vacuum_min_dead, vacuum_scale
        ) as c
        -- vacuums first; a partitioned table after its partitions
        order by c.action desc, (select p.relkind from pg_catalog.pg_class as p
            where p.oid = c.table_name) = 'p', c.table_name::text
    loop
        if not coalesce(link = any(hrp_maintenance.dblink_get_connections()), false) then
            perform hrp_maintenance.dblink_connect(link, hrp_maintenance.self_conninfo());
        end if;
        counts_before := pg_catalog.pg_stat_get_vacuum_count(candidate.table_name)
            + pg_catalog.pg_stat_get_analyze_count(candidate.table_name);
        started := clock_timestamp();
        perform hrp_maintenance.dblink_exec(
            link,
            format(
                case candidate.action
                    when 'vacuum_analyze' then 'vacuum (analyze, skip_locked) %s'
                    else 'analyze (skip_locked) %s'
                end,
                candidate.table_name
            )
        );
        perform pg_catalog.pg_stat_clear_snapshot();
        counts_after := pg_catalog.pg_stat_get_vacuum_count(candidate.table_name)
            + pg_catalog.pg_stat_get_analyze_count(candidate.table_name);
        done := counts_after > counts_before;
        perform hrp_maintenance.add_finding(
            this_run, candidate.action, candidate.table_name::text,
            candidate.figures || jsonb_build_object(
                'reason', candidate.reason,
                'done', done,
                'skipped', case when not done then 'a conflicting lock was held (SKIP_LOCKED)' end,
                'seconds', round(extract(epoch from clock_timestamp() - started)::numeric, 3)
            )
        );
        tally := case
            when done then jsonb_set(
                tally, array[candidate.action], to_jsonb((tally ->> candidate.action)::int + 1)
            )
            else jsonb_set(tally, '{skipped}', to_jsonb((tally ->> 'skipped')::int + 1))
        end;
    end loop;
    if coalesce(link = any(hrp_maintenance.dblink_get_connections()), false) then
        perform hrp_maintenance.dblink_disconnect(link);
    end if;
    perform hrp_maintenance.record_disk_usage(this_run);
    -- the job's own records only: runs (with their findings) older than keep_days
    delete from hrp_maintenance.runs as r
    where r.started_at < clock_timestamp() - make_interval(days => keep_days);
    get diagnostics pruned = row_count;
    return hrp_maintenance.finish_run(this_run, tally || jsonb_build_object('runs_pruned', pruned));
end;
$$;
comment on function hrp_maintenance.daily_vacuum_analyze(
    regclass[], bigint, numeric, bigint, numeric, integer
) is
'Daily job: VACUUM (ANALYZE) / ANALYZE each candidate table (vacuum_analyze_candidates) through
dblink with SKIP_LOCKED, a finding per table (done or skipped), a disk usage sample, maintenance
runs older than keep_days removed; returns the run_id.';

-- Superusers only (functions/maintenance_common.sql).
revoke execute on all functions in schema hrp_maintenance from public;
