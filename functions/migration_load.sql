-- The steps of one SQLite -> PostgreSQL load (issue 3), called by hrp_harness/migrate.py.
-- Mapping, on connections of their own (the target is not written): map_table, predictions in parts
-- (map_begin -> map_rows ... -> map_end), then mark_duplicates of the parents, mark_orphans,
-- mark_duplicates of predictions. Then ONE transaction, so a load commits completely or not at all:
--   begin_run -> sync_quarantine -> [drop_keys] -> apply_table (parents first for upserts, children
--   first for deletes) -> [remove_quarantined] -> [restore_keys] -> finish_table (checksums,
--   sequences, accounting) -> finish_run.
-- Work tables are UNLOGGED scratch tables migration_stage.m_<table>; the staged text rows come from
-- pgloader.
-- requires: schema/0010_migration.sql, functions/migration_parse.sql, views/migration_mapped.sql,
-- the spec's tables (public.races, horses, predictions, users, api_credentials).
-- Repeatable (CREATE OR REPLACE).

create or replace function migration.begin_run(
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
    insert into migration.runs (mode, source_path, source_sha256, source_timezone, max_quarantine)
    values (p_mode, p_source_path, p_source_sha256, p_source_timezone, p_max_quarantine)
    returning run_id into v_run;
    return v_run;
end
$$;
comment on function migration.begin_run(text, text, text, text, bigint) is
'Starts a load: records the run, declares the source time zone for the mapping views.';

-- Staged rows -> typed work table migration_stage.m_<table> (UNLOGGED scratch, rebuilt by every
-- load) through the mapping view, plus the rows the preflight kept out of pgloader (reason set,
-- original row kept as JSON). map_begin / map_rows / map_end let the loader map predictions in
-- parts on several connections at once, before the load's transaction (the work tables derive
-- from the staged rows only; the target is written in the transaction). map_table does all three.
create or replace function migration.map_begin(p_table text)
returns void
language plpgsql
as $$
begin
    execute format('drop table if exists migration_stage.%I', 'm_' || p_table);
    execute format(
        'create unlogged table migration_stage.%I as
         select *, null::jsonb as reject_row from migration.%I with no data',
        'm_' || p_table, p_table || '_mapped'
    );
end
$$;
comment on function migration.map_begin(text) is
'Creates the empty work table migration_stage.m_<table> (scratch, UNLOGGED).';

create or replace function migration.map_rows(p_table text, p_part bigint, p_parts bigint)
returns bigint
language plpgsql
-- the text form the fast path of predictions_mapped compares with (any other style is correct too,
-- only slower: no staged ISO text equals it, every row takes the rules)
set datestyle = 'ISO, YMD'
as $$
declare
    v_rows bigint;
    v_sql text;
    v_from bigint;
    v_to bigint;
begin
    -- the part: a range of the staged table's blocks (the last part runs to its end), read by the
    -- mapping view of predictions from these settings as a TID range scan; other tables map whole
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
        select pg_relation_size('migration_stage.predictions') / current_setting('block_size')::bigint
            as blocks
    ) as b;
    perform set_config('hrp.map_from_block', v_from::text, true);
    perform set_config('hrp.map_to_block', coalesce(v_to::text, ''), true);
    v_sql := format(
        'insert into migration_stage.%I select *, null::jsonb from migration.%I',
        'm_' || p_table, p_table || '_mapped'
    );
    -- the fast paths of the mapping views first (canonical values by plain casts)
    perform set_config('hrp.map_fast', 'on', true);
    begin
        execute v_sql;
        get diagnostics v_rows = row_count;
    exception when data_exception then
        -- a staged value that is no number or date at all made a cast of a fast path raise (the
        -- insert is undone with this block): the part again, by the rules only
        perform set_config('hrp.map_fast', 'off', true);
        execute v_sql;
        get diagnostics v_rows = row_count;
    end;
    perform set_config('hrp.map_fast', 'off', true);
    perform set_config('hrp.map_from_block', '', true);
    perform set_config('hrp.map_to_block', '', true);
    return v_rows;
end
$$;
comment on function migration.map_rows(text, bigint, bigint) is
'Maps part p_part of p_parts (block ranges of the staged table; only predictions is split) of
the staged rows of a table into its work table. Orphans (mark_orphans) and duplicates
(mark_duplicates) are marked afterwards, over the whole work table.';

-- p_analyze false: no statistics for the work table (a bulk load into an empty target only scans
-- it whole; the merge path's joins want them)
drop function if exists migration.map_end(text);
create or replace function migration.map_end(p_table text, p_analyze boolean default true)
returns bigint
language plpgsql
as $$
declare
    v_rows bigint;
    v_want bigint;
begin
    execute format(
        'insert into migration_stage.%I (source_id, id, reason, norms, reject_row)
         select source_id, migration.parse_int(source_id), reason, ''{}'', source_row::jsonb
         from migration_stage.hrp_preflight_rejects where source_table = %L',
        'm_' || p_table, p_table
    );
    if p_analyze then
        -- the statistics serve join planning (row counts, distinct keys): a small sample does
        perform set_config('default_statistics_target', '10', true);
        execute format('analyze migration_stage.%I', 'm_' || p_table);
    end if;
    execute format('select count(*) from migration_stage.%I', 'm_' || p_table) into v_rows;
    -- every staged row and every preflight reject is in the work table (the parts of a table
    -- mapped in parts must cover it)
    execute format(
        'select (select count(*) from migration_stage.%I)
              + (select count(*) from migration_stage.hrp_preflight_rejects where source_table = %L)',
        p_table, p_table
    ) into v_want;
    if v_rows <> v_want then
        raise exception 'mapping lost rows of %: % staged or rejected, % in the work table',
            p_table, v_want, v_rows;
    end if;
    return v_rows;
end
$$;
comment on function migration.map_end(text, boolean) is
'Adds the preflight rejects of a table to its work table, analyzes it (unless p_analyze is false),
checks that it holds every staged and rejected row; returns its row count.';

create or replace function migration.map_table(p_table text)
returns bigint
language plpgsql
as $$
begin
    perform migration.map_begin(p_table);
    perform migration.map_rows(p_table, 0, 1);
    return migration.map_end(p_table);
end
$$;
comment on function migration.map_table(text) is
'Builds the work table migration_stage.m_<table>: every source row (staged or preflight-rejected)
with its typed target values, failed rules (reason) and normalisations (norms).';

-- Staging and work tables hold copies of the source (personal data included): emptied after every
-- load, committed or failed. Fingerprint generations no committed run adopted (a failed load's)
-- go too.
create or replace function migration.clear_stage()
returns void
language plpgsql
as $$
declare
    v_table text;
begin
    for v_table in
        select c.relname from pg_class as c
        where c.relnamespace = 'migration_stage'::regnamespace and c.relkind = 'r'
    loop
        execute format('truncate migration_stage.%I', v_table);
    end loop;
    for v_table in
        select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
        where
            i.inhparent = 'migration.row_fingerprints'::regclass
            and c.relname not in (
                select 'row_fingerprints_' || r.fingerprint_generation from migration.runs as r
                where r.fingerprint_generation is not null
            )
    loop
        execute format('drop table migration.%I', v_table);
    end loop;
end
$$;
comment on function migration.clear_stage() is
'Empties every staging and work table (they hold copies of the source rows) and drops the row
fingerprints no committed run adopted.';

-- Orphans: a prediction that passes its own rules but whose race or horse does not exist or does
-- not migrate is quarantined, naming the parent. Runs once the parents' work tables are complete
-- (duplicates marked) and before the duplicates of predictions are marked (a duplicate group's
-- lowest id must be a row that migrates).
drop function if exists migration.mark_orphans(bigint, bigint);
create or replace function migration.mark_orphans()
returns bigint
language plpgsql
-- the work tables may have no statistics yet: hash joins suit any size
set enable_nestloop = off
as $$
declare
    v_rows bigint;
begin
    update migration_stage.m_predictions as m
    set reason = o.reason
    from (
        select
            p.ctid as row_tid,
            concat_ws(
                '; ',
                case
                    when r.id is null then format('race_id: races id %s does not exist', p.race_id)
                    when r.reason is not null
                        then format('race_id: parent races id %s is quarantined', p.race_id)
                end,
                case
                    when h.id is null then format('horse_id: horses id %s does not exist', p.horse_id)
                    when h.reason is not null
                        then format('horse_id: parent horses id %s is quarantined', p.horse_id)
                end
            ) as reason
        from migration_stage.m_predictions as p
        left join migration_stage.m_races as r on p.race_id = r.id
        left join migration_stage.m_horses as h on p.horse_id = h.id
        where
            p.reason is null
            and (r.id is null or r.reason is not null or h.id is null or h.reason is not null)
    ) as o
    where m.ctid = o.row_tid;
    get diagnostics v_rows = row_count;
    return v_rows;
end
$$;
comment on function migration.mark_orphans() is
'Quarantines the predictions whose race or horse does not exist or does not migrate, naming the
parent; returns how many.';

-- Duplicates on a target unique key (compared case-insensitively where the value is a name):
-- the row with the lowest source id migrates, the others are quarantined naming it. Over the whole
-- work table (after every part of predictions is mapped).
drop function if exists migration.mark_duplicates(text, bigint, bigint);
create or replace function migration.mark_duplicates(p_table text)
returns bigint
language plpgsql
-- the work table has no statistics yet (see map_end): without them the planner takes it for tiny
-- and picks nested loops (quadratic here); hash joins suit any size
set enable_nestloop = off
as $$
declare
    v_key text;
    v_label text;
    v_prefix text;
    v_rows bigint := 0;
    v_step bigint;
    v_found boolean;
begin
    -- prefix: leading columns of the key, cheaper to group by (no lower() of text): when no two
    -- rows share them, no two rows share the key
    for v_key, v_label, v_prefix in
        select k.expr, k.label, k.prefix from (values
            ('horses', 'lower(horse_name)', 'lower(horse_name)', null),
            ('users', 'lower(username)', 'lower(username)', null),
            ('users', 'lower(email)', 'lower(email)', null),
            ('api_credentials', 'lower(service_name)', 'lower(service_name)', null),
            ('predictions', 'race_id, horse_id, lower(algorithm_version)',
             '(race_id, horse_id, lower(algorithm_version))', 'race_id, horse_id')
        ) as k (tbl, expr, label, prefix)
        where k.tbl = p_table
    loop
        -- v_key comes from the constant list above, never from input. One aggregate pass finds
        -- whether the key has duplicates at all; the update (a second pass) runs only then.
        if v_prefix is not null then
            execute format(
                'select exists (select from migration_stage.%1$I where reason is null
                                group by %2$s having count(*) > 1)',
                'm_' || p_table, v_prefix
            ) into v_found;
            continue when not v_found;
        end if;
        execute format(
            'select exists (select from migration_stage.%1$I where reason is null
                            group by %2$s having count(*) > 1)',
            'm_' || p_table, v_key
        ) into v_found;
        continue when not v_found;
        execute format(
            'update migration_stage.%1$I as m set reason = format(%2$L, d.keep)
             from (
                 select id, min(id) over (partition by %3$s) as keep
                 from migration_stage.%1$I
                 where reason is null and (%3$s) in (
                     select %3$s from migration_stage.%1$I where reason is null
                     group by %3$s having count(*) > 1
                 )
             ) as d
             where m.id = d.id and d.id <> d.keep',
            'm_' || p_table,
            'duplicate of ' || p_table || ' id %s on ' || v_label || ' (lowest id kept)',
            v_key
        );
        get diagnostics v_step = row_count;
        v_rows := v_rows + v_step;
    end loop;
    return v_rows;
end
$$;
comment on function migration.mark_duplicates(text) is
'Quarantines all but the lowest-id row of each group of rows sharing a target unique key
(horse_name, username, email, service_name case-insensitively; predictions on race, horse and
lower(algorithm_version)).';

-- The quarantine holds the current state: entries no longer quarantined (row now migrates or left
-- the source) go, unchanged entries stay with the run that first quarantined them, new ones come.
create or replace function migration.sync_quarantine(p_run bigint, p_table text)
returns bigint
language plpgsql
as $$
declare
    v_rows bigint;
begin
    -- the quarantined rows first (usually few), then their staged originals: joining the staged
    -- table in one statement made the planner hash all of it (500k predictions) for no row
    execute format(
        'create temp table m_q on commit drop as
         select m.id as source_id, m.reason, m.source_id as stage_id, m.reject_row as source_row
         from migration_stage.%I as m
         where m.reason is not null',
        'm_' || p_table
    );
    if exists (select from pg_temp.m_q as n where n.source_row is null) then
        analyze pg_temp.m_q;  -- its true size: a hash join once there are more than a few rows
        execute format(
            'update pg_temp.m_q as n set source_row = to_jsonb(s)
             from migration_stage.%I as s
             where s.id = n.stage_id and n.source_row is null',
            p_table
        );
    end if;
    delete from migration.quarantine as q
    where
        q.source_table = p_table
        and not exists (
            select from pg_temp.m_q as n
            where
                n.source_id is not distinct from q.source_id
                and n.reason = q.reason and n.source_row = q.source_row
        );
    insert into migration.quarantine (run_id, source_table, source_id, reason, source_row)
    select p_run, p_table, n.source_id, n.reason, n.source_row
    from pg_temp.m_q as n
    where not exists (
        select from migration.quarantine as q
        where
            q.source_table = p_table and q.source_id is not distinct from n.source_id
            and q.reason = n.reason and q.source_row = n.source_row
    );
    select count(*) into v_rows from pg_temp.m_q;
    drop table pg_temp.m_q;
    return v_rows;
end
$$;
comment on function migration.sync_quarantine(bigint, text) is
'Makes migration.quarantine for one table equal to this load''s quarantined rows (idempotent).';

-- Bulk path: the loader inserts predictions while their orphans and duplicates are still being
-- marked on a connection of its own; the rows marked meanwhile leave the target again here (and the
-- count of inserted rows drops by as many).
create or replace function migration.remove_quarantined(p_table text)
returns bigint
language plpgsql
as $$
declare
    v_rows bigint;
begin
    execute format(
        'delete from public.%1$I as t
         where t.id in (select m.id from migration_stage.%2$I as m where m.reason is not null)',
        p_table, 'm_' || p_table
    );
    get diagnostics v_rows = row_count;
    perform set_config(
        'hrp.inserted_' || p_table,
        (coalesce(nullif(current_setting('hrp.inserted_' || p_table, true), ''), '0')::bigint
        - v_rows)::text,
        true
    );
    return v_rows;
end
$$;
comment on function migration.remove_quarantined(text) is
'Deletes from the target table the rows its work table now quarantines (orphans and duplicates
marked after the insert); returns how many.';

-- The target columns a load writes: those of the mapping view that the target table has.
create or replace function migration.load_columns(p_table text)
returns text[]
language sql stable
as $$
    select array_agg(a.attname::text order by a.attnum)
    from pg_attribute as a
    where
        a.attrelid = format('public.%I', p_table)::regclass
        and a.attnum > 0 and not a.attisdropped
        and exists (
            select from pg_attribute as v
            where
                v.attrelid = format('migration.%I', p_table || '_mapped')::regclass
                and v.attname = a.attname
        )
$$;
comment on function migration.load_columns(text) is
'Columns of public.<table> that the load writes (the target-only ones keep their defaults).';

-- Unique keys whose values may move between existing rows (two horses swap names, a cycle of
-- emails): PostgreSQL checks a non-deferrable UNIQUE constraint row by row, so one UPDATE of such
-- rows would fail half-way. Before its update, apply_table moves the changed rows' key out of the
-- way: one column of the key is set to a placeholder unique per id that passes the column's type
-- and CHECKs, then the update writes the final values. The spec's DDL stays as it is, and no
-- parent is deleted (that would cascade). Every UNIQUE key of the five tables has its entry (a
-- pgTAP test compares this list with the catalog).
create or replace function migration.moving_keys()
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
comment on function migration.moving_keys() is
'The unique keys of the five tables, the column apply_table moves out of the way for rows whose
key changes, and its placeholder (format() of to_hex(id)).';

create or replace function migration.displace_moving_keys(p_table text)
returns bigint
language plpgsql
as $$
declare
    v_key record;
    v_rows bigint := 0;
    v_step bigint;
begin
    for v_key in select k.* from migration.moving_keys() as k where k.table_name = p_table loop
        execute format(
            'update public.%1$I as t set %3$I = format(%4$L, to_hex(t.id))
             from migration_stage.%2$I as m
             where m.id = t.id and m.reason is null and (%5$s) is distinct from (%6$s)',
            p_table, 'm_' || p_table, v_key.moved_column, v_key.placeholder,
            (select string_agg(format('t.%I', c), ', ') from unnest(v_key.key_columns) as c),
            (select string_agg(format('m.%I', c), ', ') from unnest(v_key.key_columns) as c)
        );
        get diagnostics v_step = row_count;
        v_rows := v_rows + v_step;
    end loop;
    return v_rows;
end
$$;
comment on function migration.displace_moving_keys(text) is
'Sets the moved column of every row whose unique key the load changes to a placeholder unique per
id (migration.moving_keys), so that keys swapped or cycled among rows apply in one update.';

-- Target <- migrating rows of m_<table>. p_step: 'delete' (rows not migrating any more), 'upsert'
-- (update changed rows, insert new ones). The target's user triggers (the spec's
-- update_<table>_updated_at) are disabled around the writes so source timestamps are kept.
create or replace function migration.apply_table(p_table text, p_step text)
returns bigint
language plpgsql
as $$
declare
    v_cols text[] := migration.load_columns(p_table);
    v_list text;
    v_mlist text;
    v_set text;
    v_trg text[];
    v_t text;
    v_rows bigint := 0;
    v_step bigint;
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
                 select from migration_stage.%2$I as m where m.id = t.id and m.reason is null)',
            p_table, 'm_' || p_table);
        get diagnostics v_rows = row_count;
    elsif p_step = 'upsert' then
        perform migration.displace_moving_keys(p_table);
        execute format(
            'update public.%1$I as t set %3$s from migration_stage.%2$I as m
             where m.id = t.id and m.reason is null and (%4$s) is distinct from (%5$s)',
            p_table, 'm_' || p_table, v_set,
            (select string_agg(format('t.%I', c), ', ') from unnest(v_cols) as c), v_mlist);
        get diagnostics v_step = row_count;
        v_rows := v_step;
        perform set_config('hrp.updated_' || p_table, v_step::text, true);
        execute format(
            'insert into public.%1$I (%3$s) select %4$s from migration_stage.%2$I as m
             where m.reason is null and not exists (select from public.%1$I as t where t.id = m.id)',
            p_table, 'm_' || p_table, v_list, v_mlist);
        get diagnostics v_step = row_count;
        perform set_config('hrp.inserted_' || p_table, v_step::text, true);
        v_rows := v_rows + v_step;
    elsif p_step = 'insert' then  -- fast path: empty target
        execute format(
            'insert into public.%1$I (%3$s) select %4$s from migration_stage.%2$I as m where m.reason is null',
            p_table, 'm_' || p_table, v_list, v_mlist);
        get diagnostics v_rows = row_count;
        perform set_config('hrp.inserted_' || p_table, v_rows::text, true);
    else
        raise exception 'apply_table: unknown step %', p_step;
    end if;
    if p_step = 'delete' then
        perform set_config('hrp.deleted_' || p_table, v_rows::text, true);
    end if;
    foreach v_t in array coalesce(v_trg, '{}') loop
        execute format('alter table public.%I enable trigger %I', p_table, v_t);
    end loop;
    return v_rows;
end
$$;
comment on function migration.apply_table(text, text) is
'Writes the migrating rows of m_<table> into public.<table> (delete / upsert / insert),
user triggers disabled so the source created_at/updated_at are kept.';
