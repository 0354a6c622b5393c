-- pgTAP tests for functions/maintenance_weekly.sql: unused indexes (never the ones enforcing a
-- key), duplicate indexes (which one can go), bloat figures, slow statements, and the job run
-- once. The run here does not reset pg_stat_statements (reset_statements => false), so that
-- `invoke verify` against a live database leaves its week's statistics alone; the reset is
-- tested on a throwaway database (tests/test_maintenance.py).
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(14);

select ok(
    exists (
        select 1 from hrp_maintenance.unused_indexes()
        where index_name = 'public.idx_predictions_confidence'::regclass
    ),
    'a never scanned index is unused (idx_predictions_confidence on a fresh database)'
);
select is_empty(
    $$
    select u.index_name from hrp_maintenance.unused_indexes() as u
    inner join pg_catalog.pg_index as i on u.index_name = i.indexrelid
    where i.indisunique or i.indisprimary
    $$,
    'an index enforcing a primary or unique key is never reported unused'
);
select is_empty(
    $$
    select u.index_name from hrp_maintenance.unused_indexes() as u
    where not hrp_maintenance.is_project_relation(u.index_name)
    $$,
    'catalog and extension indexes are not reported'
);

select is_empty(
    $$select * from hrp_maintenance.duplicate_indexes()$$,
    'the deployed schema has no duplicate index (the spec''s four duplicates are left out)'
);
create index pgtap_duplicate_races_date on public.races (race_date);
create index pgtap_duplicate_username on public.users (username);
select set_eq(
    $$select index_name::text, duplicate_of::text from hrp_maintenance.duplicate_indexes()$$,
    $$values ('pgtap_duplicate_races_date', 'idx_races_date')$$,
    'an identical index is reported as the one to drop, naming the one to keep'
);
create unique index pgtap_duplicate_unique_username on public.users (username);
select set_eq(
    $$select index_name::text, duplicate_of::text from hrp_maintenance.duplicate_indexes()$$,
    $$values ('pgtap_duplicate_races_date', 'idx_races_date'),
    ('pgtap_duplicate_unique_username', 'users_username_key')$$,
    'a unique index identical to a constraint''s is reported, the constraint''s kept'
);

select ok(
    (
        select bool_and(b.bloat_percent between 0 and 100 and b.bloat_bytes <= b.size_bytes)
        from hrp_maintenance.bloat(0, 0) as b
    ),
    'bloat figures are sane: 0-100 %, reclaimable <= size'
);
select ok(
    exists (
        select 1 from hrp_maintenance.bloat(0, 0)
        where object_name = 'public.races'::regclass and object_kind = 'table'
    )
    and exists (
        select 1 from hrp_maintenance.bloat(0, 0)
        where object_name = 'public.races_pkey'::regclass and object_kind = 'index'
    ),
    'bloat covers tables and B-tree indexes'
);
select is_empty(
    $$select * from hrp_maintenance.bloat(20, 1048576)$$,
    'a fresh database has nothing bloated above 20 % and 1 MB'
);

-- pg_stat_statements replaces constants by $n (the marker is a column alias) and tracks no
-- utility statement (track_utility off): a query returning no row
select 1 as pgtap_weekly_marker
where false;
select ok(
    exists (
        select 1 from hrp_maintenance.slow_statements(10000)
        where query like '%pgtap_weekly_marker%' and calls >= 1
    ),
    'slow_statements sees this database''s statements (pg_stat_statements)'
);

select isnt(
    hrp_maintenance.weekly_report(3, 0, 0, false),
    null,
    'the weekly job runs and returns its run id'
);
select set_has(
    $$
    select distinct f.kind from hrp_maintenance.findings as f
    where f.run_id = (select max(r.run_id) from hrp_maintenance.runs as r)
    $$,
    $$values ('unused_index'), ('duplicate_index'), ('table_bloat'), ('index_bloat'),
    ('slow_statement')$$,
    'it recorded every kind of the weekly report'
);
select is(
    (
        select count(*)::int from hrp_maintenance.findings as f
        where
            f.run_id = (select max(r.run_id) from hrp_maintenance.runs as r)
            and f.kind = 'slow_statement'
    ),
    3,
    'it recorded the top statements, as many as asked for (3)'
);
select ok(
    exists (
        select 1 from hrp_maintenance.slow_statements(10000)
        where query like '%pgtap_weekly_marker%'
    ),
    'without reset_statements the week''s statistics stay'
);

select * from finish();
rollback;
