-- The steps of one SQLite -> PostgreSQL load, called by hrp_harness/migration/.
-- Mapping, on connections of their own (the target is not written): per target table map_begin
-- (its view from the mapping and the catalog, functions/migration_map.sql, and an empty work
-- table) -> map_rows (predictions in parts on several connections) -> map_end; mark_duplicates of
-- the parents, mark_orphans and mark_duplicates of predictions. Then ONE transaction, so a load
-- commits completely or not at all:
--   begin_run -> guard_target -> sync_quarantine -> [drop_keys] -> apply_table (parents first for
--   upserts, children first for deletes) -> [remove_quarantined] -> [restore_keys] -> sync_extras,
--   copy_unmapped -> finish_table (checksums, sequences, accounting) -> finish_run.
-- Each step returns what it did (rows, or the counts of apply_table); nothing passes through
-- session settings. Work tables are UNLOGGED scratch tables hrp_migration_work.<table>; the staged
-- text rows (hrp_migration_stage.<source table>) come from pgloader.
-- requires: schema/0012_migration_mapping.sql, functions/migration_parse.sql,
-- functions/migration_map.sql, the spec's tables (public.races, horses, predictions, users,
-- api_credentials).
-- Repeatable (CREATE OR REPLACE).

create or replace function hrp_migration.begin_run(
    p_mode text, p_source_path text, p_source_sha256 text, p_source_timezone text,
    p_max_quarantine bigint
)
returns bigint
language plpgsql
as $$
declare
    v_run bigint;
begin
    -- the declared source time zone, read by the mapping views; validated here (raises if unknown)
    perform now() at time zone p_source_timezone;
    perform set_config('hrp.source_timezone', p_source_timezone, true);
    insert into hrp_migration.runs (mode, source_path, source_sha256, source_timezone, max_quarantine)
    values (p_mode, p_source_path, p_source_sha256, p_source_timezone, p_max_quarantine)
    returning run_id into v_run;
    return v_run;
end
$$;
comment on function hrp_migration.begin_run(text, text, text, text, bigint) is
'Starts a load: records the run, declares the source time zone for the mapping views.';

-- The source table that feeds a target table, and its id column, in this load's mapping.
create or replace function hrp_migration.source_of(
    p_table text, out source_table text, out id_column text
)
language sql stable
as $$
    select m.source_table, lower(m.source_column)
    from hrp_migration.column_map as m
    where m.target_table = p_table and m.target_column = 'id'
$$;
comment on function hrp_migration.source_of(text) is
'The source table of a target table in the current mapping (hrp_migration.column_map), and the
(lower-case, as staged) name of its id column.';

-- Staged rows -> typed work table hrp_migration_work.<table> (UNLOGGED scratch, rebuilt by every
-- load) through the mapping view, plus the rows the preflight kept out of pgloader (reason set,
-- original row kept as JSON). map_begin / map_rows / map_end let the loader map predictions in
-- parts on several connections at once, before the load's transaction (the work tables derive from
-- the staged rows only; the target is written in the transaction). map_table does all three.
drop function if exists hrp_migration.map_begin(text);
create or replace function hrp_migration.map_begin(p_table text)
returns void
language plpgsql
as $$
begin
    -- the view: made by the loader for all tables before its transaction (build_mapped_views), or
    -- here when missing
    if to_regclass(format('hrp_migration.%I', p_table || '_mapped')) is null then
        perform hrp_migration.build_mapped_view(p_table);
    end if;
    execute format('drop table if exists hrp_migration_work.%I', p_table);
    execute format(
        'create unlogged table hrp_migration_work.%I as
         select *, null::jsonb as reject_row from hrp_migration.%I with no data',
        p_table, p_table || '_mapped'
    );
end
$$;
comment on function hrp_migration.map_begin(text) is
'Creates the empty work table hrp_migration_work.<table> (scratch, UNLOGGED) from the table''s
mapping view (built first when missing).';

create or replace function hrp_migration.map_rows(p_table text, p_part bigint, p_parts bigint)
returns bigint
language plpgsql
-- the text form the canonical-value shortcut compares with (any other style is correct too, only
-- slower: no staged ISO text equals it, every row takes the rules)
set datestyle = 'ISO, YMD'
as $$
declare
    v_rows bigint;
    v_sql text;
    v_from bigint;
    v_to bigint;
begin
    -- the part: a range of the staged table's blocks (the last part runs to its end), read by the
    -- mapping view from these settings as a TID range scan; other tables map whole
    if p_parts < 1 or p_part < 0 or p_part >= p_parts then
        raise exception 'map_rows: part % of % does not exist', p_part, p_parts;
    end if;
    if p_parts > 1 and p_table <> 'predictions' then
        raise exception 'map_rows: only predictions is mapped in parts, not %', p_table;
    end if;
    select
        p_part * b.blocks / p_parts,
        case when p_part = p_parts - 1 then null else (p_part + 1) * b.blocks / p_parts end
    into v_from, v_to
    from (
        select
            pg_relation_size(format('hrp_migration_stage.%I', (hrp_migration.source_of(p_table)).source_table))
            / current_setting('block_size')::bigint as blocks
    ) as b;
    perform set_config('hrp.map_from_block', v_from::text, true);
    perform set_config('hrp.map_to_block', coalesce(v_to::text, ''), true);
    v_sql := format(
        'insert into hrp_migration_work.%I select *, null::jsonb from hrp_migration.%I',
        p_table, p_table || '_mapped'
    );
    -- the canonical-value shortcut first (plain casts of values already in their target's form)
    perform set_config('hrp.map_canonical', 'on', true);
    begin
        execute v_sql;
        get diagnostics v_rows = row_count;
    exception when data_exception then
        -- a staged value that is no number or date at all made a cast of the shortcut raise (the
        -- insert is undone with this block): the part again, by the rules only
        perform set_config('hrp.map_canonical', 'off', true);
        execute v_sql;
        get diagnostics v_rows = row_count;
    end;
    perform set_config('hrp.map_canonical', 'off', true);
    perform set_config('hrp.map_from_block', '', true);
    perform set_config('hrp.map_to_block', '', true);
    return v_rows;
end
$$;
comment on function hrp_migration.map_rows(text, bigint, bigint) is
'Maps part p_part of p_parts (block ranges of the staged table; only predictions is split) of
the staged rows of a target table into its work table. Orphans (mark_orphans) and duplicates
(mark_duplicates) are marked afterwards, over the whole work table.';

-- p_analyze false: no statistics for the work table (a bulk load into an empty target only scans
-- it whole; the merge path's joins want them)
drop function if exists hrp_migration.map_end(text, boolean);
create or replace function hrp_migration.map_end(p_table text, p_analyze boolean default true)
returns bigint
language plpgsql
as $$
declare
    v_source text := (hrp_migration.source_of(p_table)).source_table;
    v_rows bigint;
    v_want bigint;
begin
    execute format(
        'insert into hrp_migration_work.%I (source_id, id, reason, norms, reject_row)
         select source_id, hrp_migration.parse_int(source_id), reason, ''{}'', source_row::jsonb
         from hrp_migration_stage.hrp_preflight_rejects where source_table = %L',
        p_table, v_source
    );
    if p_analyze then
        -- the statistics serve join planning (row counts, distinct keys): a small sample does
        perform set_config('default_statistics_target', '10', true);
        execute format('analyze hrp_migration_work.%I', p_table);
    end if;
    execute format('select count(*) from hrp_migration_work.%I', p_table) into v_rows;
    -- every staged row and every preflight reject is in the work table (the parts of a table
    -- mapped in parts must cover it)
    execute format(
        'select (select count(*) from hrp_migration_stage.%I)
              + (select count(*) from hrp_migration_stage.hrp_preflight_rejects where source_table = %L)',
        v_source, v_source
    ) into v_want;
    if v_rows <> v_want then
        raise exception 'mapping lost rows of %: % staged or rejected, % in the work table',
            p_table, v_want, v_rows;
    end if;
    return v_rows;
end
$$;
comment on function hrp_migration.map_end(text, boolean) is
'Adds the preflight rejects of a table''s source to its work table, analyzes it (unless p_analyze
is false), checks that it holds every staged and rejected row; returns its row count.';

create or replace function hrp_migration.map_table(p_table text)
returns bigint
language plpgsql
as $$
begin
    perform hrp_migration.map_begin(p_table);
    perform hrp_migration.map_rows(p_table, 0, 1);
    return hrp_migration.map_end(p_table);
end
$$;
comment on function hrp_migration.map_table(text) is
'Builds the work table hrp_migration_work.<table>: every source row (staged or preflight-rejected)
with its typed target values, failed rules (reason) and normalisations (norms).';

-- Staging and work tables hold copies of the source (personal data included): emptied after every
-- load, committed or failed. Fingerprint generations no committed run adopted (a failed load's)
-- go too.
create or replace function hrp_migration.clear_stage()
returns void
language plpgsql
as $$
declare
    v_table text;
begin
    for v_table in
        select format('%I.%I', n.nspname, c.relname) from pg_class as c
        inner join pg_namespace as n on c.relnamespace = n.oid
        where n.nspname in ('hrp_migration_stage', 'hrp_migration_work') and c.relkind = 'r'
    loop
        execute format('truncate %s', v_table);
    end loop;
    for v_table in
        select c.relname from pg_inherits as i inner join pg_class as c on i.inhrelid = c.oid
        where
            i.inhparent = 'hrp_migration.row_fingerprints'::regclass
            and c.relname not in (
                select 'row_fingerprints_' || r.fingerprint_generation from hrp_migration.runs as r
                where r.fingerprint_generation is not null
            )
    loop
        execute format('drop table hrp_migration.%I', v_table);
    end loop;
end
$$;
comment on function hrp_migration.clear_stage() is
'Empties every staging and work table (they hold copies of the source rows) and drops the row
fingerprints no committed run adopted.';

-- Orphans: a row that passes its own rules but whose parent (a foreign key of the target table to
-- another target table, from the catalog) does not exist or does not migrate is quarantined,
-- naming the parent. Runs once the parents' work tables are complete (duplicates marked) and
-- before the table's own duplicates are marked (a duplicate group's lowest id must be a row that
-- migrates).
drop function if exists hrp_migration.mark_orphans();
create or replace function hrp_migration.mark_orphans(p_table text default 'predictions')
returns bigint
language plpgsql
-- the work tables may have no statistics yet: hash joins suit any size
set enable_nestloop = off
as $$
declare
    v_rows bigint := 0;
    v_joins text;
    v_reasons text;
    v_where text;
begin
    select
        string_agg(format(
            'left join hrp_migration_work.%1$I as p%2$s on w.%3$I = p%2$s.%4$I', f.parent, f.n, f.col, f.parent_col
        ), ' '),
        string_agg(format(
            'case when w.%1$I is not null and p%2$s.%4$I is null then format(%5$L, w.%1$I) '
            'when p%2$s.reason is not null then format(%6$L, w.%1$I) end',
            f.col, f.n, f.parent, f.parent_col,
            f.col || ': ' || f.parent || ' id %s does not exist',
            f.col || ': parent ' || f.parent || ' id %s is quarantined'
        ), ', '),
        string_agg(format(
            '(w.%1$I is not null and (p%2$s.%3$I is null or p%2$s.reason is not null))',
            f.col, f.n, f.parent_col
        ), ' or ')
    into v_joins, v_reasons, v_where
    from (
        select
            row_number() over (order by c.conname) as n,
            a.attname::text as col,
            pc.relname::text as parent,
            pa.attname::text as parent_col
        from pg_constraint as c
        inner join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
        inner join pg_class as pc on c.confrelid = pc.oid
        inner join pg_attribute as pa on pa.attrelid = c.confrelid and pa.attnum = c.confkey[1]
        where
            c.conrelid = format('public.%I', p_table)::regclass and c.contype = 'f'
            and cardinality(c.conkey) = 1
            and pc.relnamespace = 'public'::regnamespace
            and pc.relname = any(hrp_migration.target_tables())
            and exists (
                select from hrp_migration.column_map as m
                where m.target_table = p_table and m.target_column = a.attname
            )
    ) as f;
    if v_joins is null then
        return 0;
    end if;
    execute format(
        'update hrp_migration_work.%1$I as m set reason = o.reason
         from (
             select w.ctid as row_tid, concat_ws(''; '', %2$s) as reason
             from hrp_migration_work.%1$I as w %3$s
             where w.reason is null and (%4$s)
         ) as o
         where m.ctid = o.row_tid',
        p_table, v_reasons, v_joins, v_where
    );
    get diagnostics v_rows = row_count;
    return v_rows;
end
$$;
comment on function hrp_migration.mark_orphans(text) is
'Quarantines the rows of a target table whose parent (a foreign key to another target table) does
not exist or does not migrate, naming the parent; returns how many.';

-- Duplicates on a target unique key (from the catalog: UNIQUE constraints and unique indexes but
-- the primary key), text compared case-insensitively: the row with the lowest source id migrates,
-- the others are quarantined naming it. Over the whole work table (after every part is mapped).
drop function if exists hrp_migration.mark_duplicates(text);
create or replace function hrp_migration.mark_duplicates(p_table text)
returns bigint
language plpgsql
-- the work table has no statistics yet (see map_end): without them the planner takes it for tiny
-- and picks nested loops (quadratic here); hash joins suit any size
set enable_nestloop = off
as $$
declare
    v_key record;
    v_rows bigint := 0;
    v_step bigint;
    v_found boolean;
begin
    -- per key: the expression (lower() of text columns), its label, and a prefix of its non-text
    -- columns, cheaper to group by: when no two rows share them, no two rows share the key
    for v_key in
        select
            string_agg(k.expr, ', ' order by k.n) as expr,
            case when count(*) = 1 then min(k.expr)
                else '(' || string_agg(k.expr, ', ' order by k.n) || ')' end as label,
            case when bool_or(k.is_text) and not bool_and(k.is_text)
                then string_agg(k.col, ', ' order by k.n) filter (where not k.is_text) end as prefix
        from pg_index as x
        cross join lateral (
            select
                u.n,
                format('%I', a.attname) as col,
                a.atttypid in ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) as is_text,
                case when a.atttypid in ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
                    then format('lower(%I)', a.attname) else format('%I', a.attname) end as expr,
                exists (
                    select from hrp_migration.column_map as m
                    where m.target_table = p_table and m.target_column = a.attname
                ) as loaded
            from unnest(x.indkey::int2 []) with ordinality as u (attnum, n)
            inner join pg_attribute as a on a.attrelid = x.indrelid and u.attnum = a.attnum
        ) as k
        where
            x.indrelid = format('public.%I', p_table)::regclass and x.indisunique
            and not x.indisprimary and x.indexprs is null and x.indpred is null
        group by x.indexrelid
        having bool_and(k.loaded)
        order by min(x.indexrelid::regclass::text)
    loop
        -- one aggregate pass finds whether the key has duplicates at all; the update (a second
        -- pass) runs only then
        if v_key.prefix is not null then
            execute format(
                'select exists (select from hrp_migration_work.%1$I where reason is null
                                group by %2$s having count(*) > 1)',
                p_table, v_key.prefix
            ) into v_found;
            continue when not v_found;
        end if;
        execute format(
            'select exists (select from hrp_migration_work.%1$I where reason is null
                            group by %2$s having count(*) > 1)',
            p_table, v_key.expr
        ) into v_found;
        continue when not v_found;
        execute format(
            'update hrp_migration_work.%1$I as m set reason = format(%2$L, d.keep)
             from (
                 select id, min(id) over (partition by %3$s) as keep
                 from hrp_migration_work.%1$I
                 where reason is null and (%3$s) in (
                     select %3$s from hrp_migration_work.%1$I where reason is null
                     group by %3$s having count(*) > 1
                 )
             ) as d
             where m.id = d.id and d.id <> d.keep',
            p_table, 'duplicate of ' || p_table || ' id %s on ' || v_key.label || ' (lowest id kept)',
            v_key.expr
        );
        get diagnostics v_step = row_count;
        v_rows := v_rows + v_step;
    end loop;
    return v_rows;
end
$$;
comment on function hrp_migration.mark_duplicates(text) is
'Quarantines all but the lowest-id row of each group of rows sharing a unique key of the target
table (from the catalog; text compared case-insensitively).';

-- The quarantine holds the current state: entries no longer quarantined (row now migrates or left
-- the source) go, unchanged entries stay with the run that first quarantined them, new ones come.
-- p_table: a target table (its work table's quarantined rows), or a source table no target takes
-- (its preflight rejects: the rows pgloader could not carry into its copy).
drop function if exists hrp_migration.sync_quarantine(bigint, text);
create or replace function hrp_migration.sync_quarantine(p_run bigint, p_table text)
returns bigint
language plpgsql
as $$
declare
    v_source_table text;
    v_id_column text;
    v_rows bigint;
begin
    select s.source_table, s.id_column into v_source_table, v_id_column from hrp_migration.source_of(p_table) as s;
    if v_source_table is null then  -- an unmapped source table: its rejects only
        v_source_table := p_table;
        create temp table m_q on commit drop as
        select hrp_migration.parse_int(r.source_id) as source_id, r.reason, null as stage_id,
            r.source_row::jsonb as source_row
        from hrp_migration_stage.hrp_preflight_rejects as r
        where r.source_table = p_table;
    else
        -- the quarantined rows first (usually few), then their staged originals: joining the staged
        -- table in one statement made the planner hash all of it (500k predictions) for no row
        execute format(
            'create temp table m_q on commit drop as
             select m.id as source_id, m.reason, m.source_id as stage_id, m.reject_row as source_row
             from hrp_migration_work.%I as m
             where m.reason is not null',
            p_table
        );
        if exists (select from pg_temp.m_q as n where n.source_row is null) then
            analyze pg_temp.m_q;  -- its true size: a hash join once there are more than a few rows
            execute format(
                'update pg_temp.m_q as n set source_row = to_jsonb(s)
                 from hrp_migration_stage.%I as s
                 where s.%I = n.stage_id and n.source_row is null',
                v_source_table, v_id_column
            );
        end if;
    end if;
    delete from hrp_migration.quarantine as q
    where
        q.source_table = v_source_table
        and not exists (
            select from pg_temp.m_q as n
            where
                n.source_id is not distinct from q.source_id
                and n.reason = q.reason and n.source_row = q.source_row
        );
    insert into hrp_migration.quarantine (run_id, source_table, source_id, reason, source_row)
    select p_run, v_source_table, n.source_id, n.reason, n.source_row
    from pg_temp.m_q as n
    where not exists (
        select from hrp_migration.quarantine as q
        where
            q.source_table = v_source_table and q.source_id is not distinct from n.source_id
            and q.reason = n.reason and q.source_row = n.source_row
    );
    select count(*) into v_rows from pg_temp.m_q;
    drop table pg_temp.m_q;
    return v_rows;
end
$$;
comment on function hrp_migration.sync_quarantine(bigint, text) is
'Makes hrp_migration.quarantine for one source table (of a target table, or unmapped) equal to this
load''s quarantined rows (idempotent); returns how many.';

-- Bulk path: the loader inserts predictions while their orphans and duplicates are still being
-- marked on a connection of its own; the rows marked meanwhile leave the target again here (the
-- loader takes them off the inserted count).
create or replace function hrp_migration.remove_quarantined(p_table text)
returns bigint
language plpgsql
as $$
declare
    v_rows bigint;
begin
    execute format(
        'delete from public.%1$I as t
         where t.id in (select m.id from hrp_migration_work.%1$I as m where m.reason is not null)',
        p_table
    );
    get diagnostics v_rows = row_count;
    return v_rows;
end
$$;
comment on function hrp_migration.remove_quarantined(text) is
'Deletes from the target table the rows its work table now quarantines (orphans and duplicates
marked after the insert); returns how many.';

-- The target columns a load writes: those the mapping feeds, in the table's order.
create or replace function hrp_migration.load_columns(p_table text)
returns text[]
language sql stable
as $$
    select array_agg(a.attname::text order by a.attnum)
    from pg_attribute as a
    where
        a.attrelid = format('public.%I', p_table)::regclass
        and a.attnum > 0 and not a.attisdropped
        and exists (
            select from hrp_migration.column_map as m
            where m.target_table = p_table and m.target_column = a.attname
        )
$$;
comment on function hrp_migration.load_columns(text) is
'Columns of public.<table> that the load writes (the others keep their defaults).';

-- Unique keys whose values may move between existing rows (two horses swap names, a cycle of
-- emails): PostgreSQL checks a non-deferrable UNIQUE constraint row by row, so one UPDATE of such
-- rows would fail half-way. Before its update, apply_table moves the changed rows' key out of the
-- way: one column of the key is set to a placeholder unique per id that passes the column's type
-- and CHECKs, then the update writes the final values. The spec's DDL stays as it is, and no
-- parent is deleted (that would cascade). Every UNIQUE key of the five tables has its entry (a
-- pgTAP test compares this list with the catalog).
create or replace function hrp_migration.moving_keys()
returns table (table_name text, key_columns text[], moved_column text, placeholder text)
language sql immutable
as $$
    values
    ('horses', array['horse_name'], 'horse_name', '~hrp-moving-%s'),
    ('users', array['username'], 'username', '~hrp-moving-%s'),
    -- valid_email: the placeholder is an address (RFC 2606's reserved .invalid top-level domain)
    ('users', array['email'], 'email', 'hrp-moving-%s@hrp.invalid'),
    ('api_credentials', array['service_name'], 'service_name', '~hrp-moving-%s'),
    -- varchar(20): '~' and at most 16 hexadecimal digits
    ('predictions', array['race_id', 'horse_id', 'algorithm_version'], 'algorithm_version', '~%s')
$$;
comment on function hrp_migration.moving_keys() is
'The unique keys of the five tables, the column apply_table moves out of the way for rows whose
key changes, and its placeholder (format() of to_hex(id)).';

create or replace function hrp_migration.displace_moving_keys(p_table text)
returns bigint
language plpgsql
as $$
declare
    v_key record;
    v_rows bigint := 0;
    v_step bigint;
begin
    for v_key in
        select k.* from hrp_migration.moving_keys() as k
        where k.table_name = p_table and k.key_columns <@ hrp_migration.load_columns(p_table)
    loop
        execute format(
            'update public.%1$I as t set %3$I = format(%4$L, to_hex(t.id))
             from hrp_migration_work.%2$I as m
             where m.id = t.id and m.reason is null and (%5$s) is distinct from (%6$s)',
            p_table, p_table, v_key.moved_column, v_key.placeholder,
            (select string_agg(format('t.%I', c), ', ') from unnest(v_key.key_columns) as c),
            (select string_agg(format('m.%I', c), ', ') from unnest(v_key.key_columns) as c)
        );
        get diagnostics v_step = row_count;
        v_rows := v_rows + v_step;
    end loop;
    return v_rows;
end
$$;
comment on function hrp_migration.displace_moving_keys(text) is
'Sets the moved column of every row whose unique key the load changes to a placeholder unique per
id (hrp_migration.moving_keys), so that keys swapped or cycled among rows apply in one update.';

-- Target <- migrating rows of the work table. p_step: 'delete' (rows not migrating any more),
-- 'upsert' (update changed rows, insert new ones), 'insert' (the bulk path: an empty target).
-- Returns {"inserted", "updated", "deleted"}. The target's user triggers (the spec's
-- update_<table>_updated_at) are disabled around the writes so source timestamps are kept.
drop function if exists hrp_migration.apply_table(text, text);
create or replace function hrp_migration.apply_table(p_table text, p_step text)
returns jsonb
language plpgsql
as $$
declare
    v_cols text[] := hrp_migration.load_columns(p_table);
    v_list text;
    v_mlist text;
    v_set text;
    v_trg text[];
    v_t text;
    v_inserted bigint := 0;
    v_updated bigint := 0;
    v_deleted bigint := 0;
begin
    select string_agg(format('%I', c), ', '), string_agg(format('m.%I', c), ', '),
           string_agg(format('%1$I = m.%1$I', c), ', ') filter (where c <> 'id')
    into v_list, v_mlist, v_set
    from unnest(v_cols) as c;
    select array_agg(t.tgname::text) into v_trg
    from pg_trigger as t
    where t.tgrelid = format('public.%I', p_table)::regclass and not t.tgisinternal and t.tgenabled <> 'D';
    foreach v_t in array coalesce(v_trg, '{}') loop
        execute format('alter table public.%I disable trigger %I', p_table, v_t);
    end loop;
    if p_step = 'delete' then
        execute format(
            'delete from public.%1$I as t where not exists (
                 select from hrp_migration_work.%1$I as m where m.id = t.id and m.reason is null)',
            p_table);
        get diagnostics v_deleted = row_count;
    elsif p_step = 'upsert' then
        perform hrp_migration.displace_moving_keys(p_table);
        if v_set is not null then
            execute format(
                'update public.%1$I as t set %2$s from hrp_migration_work.%1$I as m
                 where m.id = t.id and m.reason is null and (%3$s) is distinct from (%4$s)',
                p_table, v_set,
                (select string_agg(format('t.%I', c), ', ') from unnest(v_cols) as c), v_mlist);
            get diagnostics v_updated = row_count;
        end if;
        execute format(
            'insert into public.%1$I (%2$s) select %3$s from hrp_migration_work.%1$I as m
             where m.reason is null and not exists (select from public.%1$I as t where t.id = m.id)',
            p_table, v_list, v_mlist);
        get diagnostics v_inserted = row_count;
    elsif p_step = 'insert' then  -- the bulk path: empty target
        execute format(
            'insert into public.%1$I (%2$s) select %3$s from hrp_migration_work.%1$I as m where m.reason is null',
            p_table, v_list, v_mlist);
        get diagnostics v_inserted = row_count;
    else
        raise exception 'apply_table: unknown step %', p_step;
    end if;
    foreach v_t in array coalesce(v_trg, '{}') loop
        execute format('alter table public.%I enable trigger %I', p_table, v_t);
    end loop;
    return jsonb_build_object('inserted', v_inserted, 'updated', v_updated, 'deleted', v_deleted);
end
$$;
comment on function hrp_migration.apply_table(text, text) is
'Writes the migrating rows of hrp_migration_work.<table> into public.<table> (delete / upsert /
insert), user triggers disabled so the source created_at/updated_at are kept; returns the counts
{"inserted", "updated", "deleted"}.';

-- Nothing of the source is dropped: the values of the source columns no target column takes (and
-- those a rule keeps whole, date_part) go to hrp_migration.source_extras, per source row,
-- refreshed by every load (the current source; a table without such columns keeps no entry).
create or replace function hrp_migration.sync_extras(p_table text)
returns bigint
language plpgsql
as $$
declare
    v_source record := hrp_migration.source_of(p_table);
    v_object text;
    v_rows bigint := 0;
begin
    delete from hrp_migration.source_extras where source_table = v_source.source_table;
    select string_agg(format('%L, s.%I', s.source_column, lower(s.source_column)), ', ' order by s.ordinal)
    into v_object
    from hrp_migration.source_columns as s
    where
        s.source_table = v_source.source_table
        and (s.target_column is null or exists (
            select from hrp_migration.column_map as m
            where m.source_table = s.source_table and m.source_column = s.source_column
                and m.rule = 'date_part'
        ));
    if v_object is not null then
        -- jsonb_build_object takes at most 100 arguments: build in parts of 50 columns
        execute format(
            'insert into hrp_migration.source_extras (source_table, source_id, extra_values)
             select %L, s.%I::bigint, %s from hrp_migration_stage.%I as s',
            v_source.source_table, v_source.id_column,
            (
                select string_agg(format('jsonb_build_object(%s)', part), ' || ')
                from (
                    select string_agg(format('%L, s.%I', c.source_column, lower(c.source_column)), ', '
                        order by c.ordinal) as part
                    from (
                        select s.*, (row_number() over (order by s.ordinal) - 1) / 50 as chunk
                        from hrp_migration.source_columns as s
                        where
                            s.source_table = v_source.source_table
                            and (s.target_column is null or exists (
                                select from hrp_migration.column_map as m
                                where m.source_table = s.source_table
                                    and m.source_column = s.source_column and m.rule = 'date_part'
                            ))
                    ) as c
                    group by c.chunk
                ) as parts
            ),
            v_source.source_table
        );
        get diagnostics v_rows = row_count;
    end if;
    return v_rows;
end
$$;
comment on function hrp_migration.sync_extras(text) is
'Refreshes hrp_migration.source_extras for the source table of a target table: per staged row, the
values of its columns no target column takes (and those date_part keeps whole); returns how many
rows.';

-- Source tables no target table takes: copied whole (as staged, all text) into
-- hrp_migration_unmapped, replacing the previous load's copy. Returns {table: rows}.
create or replace function hrp_migration.copy_unmapped()
returns jsonb
language plpgsql
as $$
declare
    v_table text;
    v_rows bigint;
    v_result jsonb := '{}';
begin
    for v_table in
        select distinct s.source_table from hrp_migration.source_columns as s
        where s.target_table is null
        order by 1
    loop
        execute format('drop table if exists hrp_migration_unmapped.%I', v_table);
        execute format(
            'create table hrp_migration_unmapped.%I as select * from hrp_migration_stage.%I', v_table, v_table
        );
        execute format(
            'comment on table hrp_migration_unmapped.%I is %L', v_table,
            'The source table ' || v_table || ', which no target table takes: every row, as text, '
            || 'as of the last load.'
        );
        get diagnostics v_rows = row_count;
        execute format('select count(*) from hrp_migration_unmapped.%I', v_table) into v_rows;
        v_result := v_result || jsonb_build_object(v_table, v_rows);
    end loop;
    return v_result;
end
$$;
comment on function hrp_migration.copy_unmapped() is
'Copies each source table no target table takes into hrp_migration_unmapped (all rows, text),
replacing the previous copy; returns the row count per table.';
