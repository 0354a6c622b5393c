-- maintenance_weekly: the weekly report (issue 15; the spec's weekly "Analyze slow queries",
-- "Review index usage" and its unused-index query): unused indexes, duplicate indexes, table and
-- index bloat, and the top slow statements of the week from pg_stat_statements, recorded as
-- findings; then this database's pg_stat_statements entries are reset, so each report covers one
-- week. A part whose extension the server lacks is skipped and the run's details say so.
-- Bloat is measured, not estimated: pgstattuple_approx for tables (it reads only the pages the
-- visibility map does not mark all-visible) and pgstatindex for B-tree indexes (reads the index).
-- requires: functions/maintenance_common.sql

create or replace function hrp_maintenance.unused_indexes()
returns table (
    index_name regclass, table_name regclass, index_scans bigint, size_bytes bigint,
    stats_since timestamptz
)
language sql
stable
as $$
    select
        s.indexrelid::regclass,
        s.relid::regclass,
        s.idx_scan,
        pg_catalog.pg_relation_size(s.indexrelid),
        (select d.stats_reset from pg_catalog.pg_stat_database as d
            where d.datname = current_database())
    from pg_catalog.pg_stat_user_indexes as s
    inner join pg_catalog.pg_index as i on s.indexrelid = i.indexrelid
    where
        s.idx_scan = 0
        -- an index that enforces a key or backs a constraint is used by every write
        and not i.indisunique
        and not i.indisexclusion
        and not exists (
            select 1 from pg_catalog.pg_constraint as k where k.conindid = s.indexrelid
        )
        and hrp_maintenance.is_project_relation(s.indexrelid)
    order by pg_catalog.pg_relation_size(s.indexrelid) desc, 1;
$$;
comment on function hrp_maintenance.unused_indexes() is
'Indexes never scanned since the statistics were reset (stats_since; NULL: since the database was
created) that enforce no key or constraint: the spec''s unused-index query, with sizes. Scans on
standbys are not counted here.';

create or replace function hrp_maintenance.duplicate_indexes()
returns table (index_name regclass, duplicate_of regclass, table_name regclass, size_bytes bigint)
language sql
stable
as $$
    select
        i.indexrelid::regclass,
        k.indexrelid::regclass,
        i.indrelid::regclass,
        pg_catalog.pg_relation_size(i.indexrelid)
    from pg_catalog.pg_index as i
    inner join pg_catalog.pg_class as ic on i.indexrelid = ic.oid
    inner join pg_catalog.pg_index as k
        on
            i.indrelid = k.indrelid
            and i.indexrelid <> k.indexrelid
            and i.indkey = k.indkey
            and i.indclass = k.indclass
            and i.indcollation = k.indcollation
            and i.indoption = k.indoption
            and i.indisunique = k.indisunique
            and coalesce(pg_catalog.pg_get_expr(i.indexprs, i.indrelid), '')
            = coalesce(pg_catalog.pg_get_expr(k.indexprs, k.indrelid), '')
            and coalesce(pg_catalog.pg_get_expr(i.indpred, i.indrelid), '')
            = coalesce(pg_catalog.pg_get_expr(k.indpred, k.indrelid), '')
    inner join pg_catalog.pg_class as kc on k.indexrelid = kc.oid
    where
        ic.relam = kc.relam
        and hrp_maintenance.is_project_relation(i.indexrelid)
        -- of each identical pair, name the one to drop: not the constraint's, else the newer
        and (
            exists (select 1 from pg_catalog.pg_constraint as c where c.conindid = k.indexrelid)
            and not exists (
                select 1 from pg_catalog.pg_constraint as c where c.conindid = i.indexrelid
            )
            or (
                exists (select 1 from pg_catalog.pg_constraint as c where c.conindid = k.indexrelid)
                = exists (
                    select 1 from pg_catalog.pg_constraint as c where c.conindid = i.indexrelid
                )
                and i.indexrelid > k.indexrelid
            )
        )
    order by 3, 1;
$$;
comment on function hrp_maintenance.duplicate_indexes() is
'Indexes identical to another index of the same table (method, columns, operator classes,
collations, options, expressions, predicate, uniqueness): index_name is the one that can go (not a
constraint''s), duplicate_of the one to keep.';

create or replace function hrp_maintenance.bloat(
    min_percent numeric default 20, min_bytes bigint default 1048576
)
returns table (
    object_name regclass, object_kind text, size_bytes bigint, bloat_bytes bigint,
    bloat_percent numeric
)
language plpgsql
as $$
declare
    have_pgstattuple constant boolean := exists (
        select 1 from pg_catalog.pg_extension where extname = 'pgstattuple'
    );
begin
    if not have_pgstattuple then
        raise exception 'hrp_maintenance.bloat: the extension pgstattuple is not installed here';
    end if;
    return query
    with measured as (
        -- tables: free space and dead tuples (what a rewrite gives back)
        select
            c.oid::regclass as object_name,
            'table' as object_kind,
            a.table_len as size_bytes,
            (a.approx_free_space + a.dead_tuple_len)::bigint as bloat_bytes
        from pg_catalog.pg_class as c
        cross join lateral hrp_maintenance.pgstattuple_approx(c.oid) as a
        where
            c.relkind in ('r', 'm') and c.relpersistence <> 't'
            and hrp_maintenance.is_project_relation(c.oid)
        union all
        -- B-tree indexes: leaf pages below the 90 % a fresh build packs them to
        select
            c.oid::regclass,
            'index',
            s.index_size,
            case
                when s.leaf_pages = 0 or s.avg_leaf_density = 'NaN' then 0
                else greatest(
                    0,
                    round(s.leaf_pages * current_setting('block_size')::bigint
                        * (1 - s.avg_leaf_density / 90))
                )::bigint
            end
        from pg_catalog.pg_class as c
        inner join pg_catalog.pg_am as am on c.relam = am.oid
        cross join lateral hrp_maintenance.pgstatindex(c.oid) as s
        where
            c.relkind = 'i' and am.amname = 'btree' and c.relpersistence <> 't'
            and hrp_maintenance.is_project_relation(c.oid)
    )

    select
        m.object_name,
        m.object_kind,
        m.size_bytes,
        m.bloat_bytes,
        round(100.0 * m.bloat_bytes / nullif(m.size_bytes, 0), 1)
    from measured as m
    where
        m.bloat_bytes >= min_bytes
        and coalesce(100.0 * m.bloat_bytes / nullif(m.size_bytes, 0), 0) >= min_percent
    order by m.bloat_bytes desc, 1;
end;
$$;
comment on function hrp_maintenance.bloat(numeric, bigint) is
'Tables and B-tree indexes whose reclaimable space is at least min_percent of their size and
min_bytes: tables free space + dead tuples (pgstattuple_approx), indexes the leaf space below a
fresh build''s 90 % density (pgstatindex). What invoke maintenance.repack rebuilds.';

create or replace function hrp_maintenance.slow_statements(top_n integer default 10)
returns table (
    queryid bigint, calls bigint, total_ms numeric, mean_ms numeric, max_ms numeric,
    rows_returned bigint, shared_blocks_read bigint, query text
)
language plpgsql
as $$
declare
    home text;
begin
    select n.nspname into home
    from pg_catalog.pg_extension as x
    inner join pg_catalog.pg_namespace as n on x.extnamespace = n.oid
    where x.extname = 'pg_stat_statements';
    if home is null then
        raise exception 'hrp_maintenance.slow_statements: pg_stat_statements is not installed here';
    end if;
    return query execute format(
        'select s.queryid, s.calls, round(s.total_exec_time::numeric, 3),'
        ' round(s.mean_exec_time::numeric, 3), round(s.max_exec_time::numeric, 3), s.rows,'
        ' s.shared_blks_read, left(s.query, 2000)'
        ' from %I.pg_stat_statements as s'
        ' inner join pg_catalog.pg_database as d on s.dbid = d.oid'
        ' where d.datname = current_database()'
        ' order by s.total_exec_time desc, s.queryid limit %s',
        home, top_n
    );
end;
$$;
comment on function hrp_maintenance.slow_statements(integer) is
'The top_n statements of this database by total execution time since the last reset
(pg_stat_statements; constants are already replaced by $n), with calls, mean and max ms.';

create or replace function hrp_maintenance.weekly_report(
    top_statements integer default 10,
    bloat_min_percent numeric default 20,
    bloat_min_bytes bigint default 1048576,
    reset_statements boolean default true
)
returns bigint
language plpgsql
as $$
declare
    this_run bigint := hrp_maintenance.start_run(
        'weekly_report',
        jsonb_build_object(
            'top_statements', top_statements, 'bloat_min_percent', bloat_min_percent,
            'bloat_min_bytes', bloat_min_bytes
        )
    );
    found_row record;
    tally jsonb := '{}';
    part_count bigint;
    skipped jsonb := '{}';
    statements_home text;
begin
    insert into hrp_maintenance.findings (run_id, kind, object, figures)
    select
        this_run, 'unused_index', u.index_name::text,
        jsonb_build_object(
            'table', u.table_name::text, 'index_scans', u.index_scans,
            'size_bytes', u.size_bytes, 'stats_since', u.stats_since
        )
    from hrp_maintenance.unused_indexes() as u;
    get diagnostics part_count = row_count;
    tally := tally || jsonb_build_object('unused_index', part_count);

    insert into hrp_maintenance.findings (run_id, kind, object, figures)
    select
        this_run, 'duplicate_index', d.index_name::text,
        jsonb_build_object(
            'duplicate_of', d.duplicate_of::text, 'table', d.table_name::text,
            'size_bytes', d.size_bytes
        )
    from hrp_maintenance.duplicate_indexes() as d;
    get diagnostics part_count = row_count;
    tally := tally || jsonb_build_object('duplicate_index', part_count);

    if exists (select 1 from pg_catalog.pg_extension where extname = 'pgstattuple') then
        insert into hrp_maintenance.findings (run_id, kind, object, figures)
        select
            this_run, b.object_kind || '_bloat', b.object_name::text,
            jsonb_build_object(
                'size_bytes', b.size_bytes, 'bloat_bytes', b.bloat_bytes,
                'bloat_percent', b.bloat_percent
            )
        from hrp_maintenance.bloat(bloat_min_percent, bloat_min_bytes) as b;
        get diagnostics part_count = row_count;
        tally := tally || jsonb_build_object('bloat', part_count);
    else
        skipped := skipped || '{"bloat": "pgstattuple is not installed"}';
    end if;

    select n.nspname into statements_home
    from pg_catalog.pg_extension as x
    inner join pg_catalog.pg_namespace as n on x.extnamespace = n.oid
    where x.extname = 'pg_stat_statements';
    if statements_home is not null then
        for found_row in select * from hrp_maintenance.slow_statements(top_statements) loop
            perform hrp_maintenance.add_finding(
                this_run, 'slow_statement', found_row.queryid::text,
                jsonb_build_object(
                    'calls', found_row.calls, 'total_ms', found_row.total_ms,
                    'mean_ms', found_row.mean_ms, 'max_ms', found_row.max_ms,
                    'rows', found_row.rows_returned,
                    'shared_blocks_read', found_row.shared_blocks_read,
                    'query', found_row.query
                )
            );
        end loop;
        tally := tally || jsonb_build_object(
            'slow_statement',
            (select count(*) from hrp_maintenance.findings as f where f.run_id = this_run
                and f.kind = 'slow_statement')
        );
        -- last: not transactional, so nothing after it can fail and lose the week's figures
        if reset_statements then
            execute format(
                'select %I.pg_stat_statements_reset(0, oid, 0) from pg_catalog.pg_database'
                ' where datname = current_database()',
                statements_home
            );
            tally := tally || '{"statements_reset": true}';
        end if;
    else
        skipped := skipped || jsonb_build_object(
            'slow_statement', 'pg_stat_statements is not installed in this database (it must be in '
            || 'shared_preload_libraries; deploy creates it then)'
        );
    end if;
    return hrp_maintenance.finish_run(this_run, tally || jsonb_build_object('skipped', skipped));
end;
$$;
comment on function hrp_maintenance.weekly_report(integer, numeric, bigint, boolean) is
'Weekly job: findings unused_index, duplicate_index, table_bloat / index_bloat (above the
thresholds), slow_statement (top by total time), then this database''s pg_stat_statements entries
reset (unless reset_statements is false); returns the run_id.';

-- Superusers only (functions/maintenance_common.sql).
revoke execute on all functions in schema hrp_maintenance from public;
