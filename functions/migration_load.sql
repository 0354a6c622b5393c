-- The steps of one SQLite -> PostgreSQL load (issue 3), called in order by the loader
-- (hrp_harness/migrate.py) inside ONE transaction, so a load commits completely or not at all:
--   begin_run -> map_table (parents first) -> mark_orphans -> mark_duplicates -> record_table
--   -> sync_quarantine -> [drop_keys] -> apply_table (parents first for upserts, children first for
--   deletes) -> [restore_keys] -> finish_table (checksums, sequences, accounting) -> finish_run.
-- Work tables are temporary (m_<table>, dropped at commit); the staged text rows come from pgloader.
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

-- Staged rows -> typed work table m_<table> (temp, dropped at commit) through the mapping view,
-- plus the rows the preflight kept out of pgloader (reason set, original row kept as JSON).
create or replace function migration.map_table(p_table text)
returns bigint
language plpgsql
as $$
declare
    v_rows bigint;
begin
    execute format('drop table if exists pg_temp.%I', 'm_' || p_table);
    execute format(
        'create temp table %I on commit drop as select *, null::jsonb as reject_row from migration.%I',
        'm_' || p_table, p_table || '_mapped'
    );
    execute format(
        'insert into pg_temp.%I (source_id, id, reason, norms, reject_row)
         select source_id, migration.parse_int(source_id), reason, ''{}'', source_row::jsonb
         from migration_stage.hrp_preflight_rejects where source_table = %L',
        'm_' || p_table, p_table
    );
    execute format('create index on pg_temp.%I (id)', 'm_' || p_table);
    execute format('analyze pg_temp.%I', 'm_' || p_table);
    execute format('select count(*) from pg_temp.%I', 'm_' || p_table) into v_rows;
    return v_rows;
end
$$;
comment on function migration.map_table(text) is
'Builds the temp work table m_<table>: every source row (staged or preflight-rejected) with its typed
target values, failed rules (reason) and normalisations (norms).';

-- Children of rows that do not migrate are quarantined, naming the parent (predictions only).
create or replace function migration.mark_orphans()
returns bigint
language plpgsql
as $$
declare
    v_rows bigint;
begin
    update pg_temp.m_predictions as m
    set reason = x.reason
    from (
        select
            p.id,
            concat_ws('; ',
                case
                    when r.id is null then format('race_id: races id %s does not exist', p.race_id)
                    when r.reason is not null then format('race_id: parent races id %s is quarantined', p.race_id)
                end,
                case
                    when h.id is null then format('horse_id: horses id %s does not exist', p.horse_id)
                    when h.reason is not null then format('horse_id: parent horses id %s is quarantined', p.horse_id)
                end
            ) as reason
        from pg_temp.m_predictions as p
        left join pg_temp.m_races as r on r.id = p.race_id
        left join pg_temp.m_horses as h on h.id = p.horse_id
        where
            p.reason is null
            and (r.id is null or r.reason is not null or h.id is null or h.reason is not null)
    ) as x
    where m.id = x.id and m.reason is null;
    get diagnostics v_rows = row_count;
    return v_rows;
end
$$;
comment on function migration.mark_orphans() is
'Quarantines predictions whose race or horse does not exist or does not migrate, naming the parent.';

-- Duplicates on a target unique key (compared case-insensitively where the value is a name):
-- the row with the lowest source id migrates, the others are quarantined naming it.
create or replace function migration.mark_duplicates(p_table text)
returns bigint
language plpgsql
as $$
declare
    v_key text;
    v_label text;
    v_rows bigint := 0;
    v_step bigint;
begin
    for v_key, v_label in
        select k.expr, k.label from (values
            ('horses', 'lower(horse_name)', 'lower(horse_name)'),
            ('users', 'lower(username)', 'lower(username)'),
            ('users', 'lower(email)', 'lower(email)'),
            ('api_credentials', 'lower(service_name)', 'lower(service_name)'),
            ('predictions', 'race_id, horse_id, lower(algorithm_version)',
             '(race_id, horse_id, lower(algorithm_version))')
        ) as k (tbl, expr, label)
        where k.tbl = p_table
    loop
        -- v_key comes from the constant list above, never from input
        execute format(
            'update pg_temp.%1$I as m set reason = format(%2$L, d.keep)
             from (
                 select id, min(id) over (partition by %3$s) as keep
                 from pg_temp.%1$I
                 where reason is null and (%3$s) in (
                     select %3$s from pg_temp.%1$I where reason is null
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
    execute format(
        'create temp table m_q on commit drop as
         select m.id as source_id, m.reason,
                coalesce(m.reject_row, to_jsonb(s) ) as source_row
         from pg_temp.%1$I as m
         left join migration_stage.%2$I as s on s.id = m.source_id and m.reject_row is null
         where m.reason is not null',
        'm_' || p_table, p_table
    );
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

-- Fast path for an empty target: drop the keys, indexes and foreign keys of the tables (their
-- definitions and comments kept in m_keys), bulk insert, then restore_keys() re-creates them, all
-- inside the load's transaction (DDL is transactional: a failed load restores them untouched).
create or replace function migration.drop_keys(p_tables text[])
returns bigint
language plpgsql
as $$
declare
    v_rec record;
    v_rows bigint := 0;
begin
    create temp table m_keys (
        seq int generated always as identity, kind text, tbl regclass, name text, ddl text,
        comment text
    ) on commit drop;
    -- foreign keys on or referencing the tables
    insert into m_keys (kind, tbl, name, ddl, comment)
    select 'fk', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid),
           obj_description(c.oid, 'pg_constraint')
    from pg_constraint as c
    where c.contype = 'f' and (c.conrelid = any(select format('public.%I', t)::regclass from unnest(p_tables) as t)
        or c.confrelid = any(select format('public.%I', t)::regclass from unnest(p_tables) as t));
    -- primary keys and unique constraints
    insert into m_keys (kind, tbl, name, ddl, comment)
    select 'key', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid),
           obj_description(c.oid, 'pg_constraint')
    from pg_constraint as c
    where c.contype in ('p', 'u')
        and c.conrelid = any(select format('public.%I', t)::regclass from unnest(p_tables) as t);
    -- other indexes
    insert into m_keys (kind, tbl, name, ddl, comment)
    select 'index', i.indrelid::regclass, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
           obj_description(i.indexrelid, 'pg_class')
    from pg_index as i
    where i.indrelid = any(select format('public.%I', t)::regclass from unnest(p_tables) as t)
        and not exists (select from pg_constraint as c where c.conindid = i.indexrelid and c.contype in ('p', 'u', 'x'));
    for v_rec in select * from m_keys order by seq loop
        if v_rec.kind = 'index' then
            execute format('drop index %s', v_rec.name);
        else
            execute format('alter table %s drop constraint %I', v_rec.tbl, v_rec.name);
        end if;
        v_rows := v_rows + 1;
    end loop;
    return v_rows;
end
$$;
comment on function migration.drop_keys(text[]) is
'Drops (remembering) the keys, indexes and foreign keys of the given public tables, for a bulk load.';

create or replace function migration.restore_keys()
returns bigint
language plpgsql
as $$
declare
    v_rec record;
    v_rows bigint := 0;
begin
    perform set_config('maintenance_work_mem', '512MB', true);
    for v_rec in
        select * from m_keys order by case kind when 'key' then 1 when 'index' then 2 else 3 end, seq
    loop
        if v_rec.kind = 'index' then
            execute v_rec.ddl;
            if v_rec.comment is not null then
                execute format('comment on index %s is %L', v_rec.name, v_rec.comment);
            end if;
        else
            execute format('alter table %s add constraint %I %s', v_rec.tbl, v_rec.name, v_rec.ddl);
            if v_rec.comment is not null then
                execute format('comment on constraint %I on %s is %L', v_rec.name, v_rec.tbl, v_rec.comment);
            end if;
        end if;
        v_rows := v_rows + 1;
    end loop;
    drop table m_keys;
    return v_rows;
end
$$;
comment on function migration.restore_keys() is
'Re-creates what drop_keys dropped (keys, then indexes, then foreign keys), with their comments.';

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
                 select from pg_temp.%2$I as m where m.id = t.id and m.reason is null)',
            p_table, 'm_' || p_table);
        get diagnostics v_rows = row_count;
    elsif p_step = 'upsert' then
        execute format(
            'update public.%1$I as t set %3$s from pg_temp.%2$I as m
             where m.id = t.id and m.reason is null and (%4$s) is distinct from (%5$s)',
            p_table, 'm_' || p_table, v_set,
            (select string_agg(format('t.%I', c), ', ') from unnest(v_cols) as c), v_mlist);
        get diagnostics v_step = row_count;
        v_rows := v_step;
        perform set_config('hrp.updated_' || p_table, v_step::text, true);
        execute format(
            'insert into public.%1$I (%3$s) select %4$s from pg_temp.%2$I as m
             where m.reason is null and not exists (select from public.%1$I as t where t.id = m.id)',
            p_table, 'm_' || p_table, v_list, v_mlist);
        get diagnostics v_step = row_count;
        perform set_config('hrp.inserted_' || p_table, v_step::text, true);
        v_rows := v_rows + v_step;
    elsif p_step = 'insert' then  -- fast path: empty target
        execute format(
            'insert into public.%1$I (%3$s) select %4$s from pg_temp.%2$I as m where m.reason is null',
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
'Writes the migrating rows of m_<table> into public.<table> (delete / upsert / insert), user triggers
disabled so the source created_at/updated_at are kept.';

-- Order-independent content checksum: row count and the sum of 64-bit hashes of the rows
-- (hash_record_extended), over the given columns.
create or replace function migration.content_checksum(p_relation text, p_cols text[], p_filter text)
returns text
language plpgsql
as $$
declare
    v_sum text;
begin
    execute format(
        'select count(*) || '':'' || coalesce(sum(hash_record_extended(row(%s), 0)), 0) from %s where %s',
        (select string_agg(format('%I', c), ', ') from unnest(p_cols) as c), p_relation, p_filter
    ) into v_sum;
    return v_sum;
end
$$;
comment on function migration.content_checksum(text, text[], text) is
'count:sum(hash_record_extended(row)) over the columns: equal multisets of rows give equal checksums.';

-- Validation and bookkeeping of one table: checksums source side (the mapped rows) and target side,
-- sequence past the highest id, the accounting assertion; raises (rolling the load back) on any
-- mismatch.
create or replace function migration.finish_table(p_run bigint, p_table text, p_seconds numeric)
returns jsonb
language plpgsql
as $$
declare
    v_cols text[] := migration.load_columns(p_table);
    v_src text;
    v_tgt text;
    v_source bigint;
    v_migrated bigint;
    v_quarantined bigint;
    v_target bigint;
    v_both bigint;
    v_seq text;
    v_reasons jsonb;
    v_norms jsonb;
    v_result jsonb;
begin
    v_src := migration.content_checksum(format('pg_temp.%I', 'm_' || p_table), v_cols, 'reason is null');
    v_tgt := migration.content_checksum(format('public.%I', p_table), v_cols, 'true');
    execute format(
        'select count(*), count(*) filter (where reason is null), count(*) filter (where reason is not null)
         from pg_temp.%I', 'm_' || p_table)
    into v_source, v_migrated, v_quarantined;
    execute format('select count(*) from public.%I', p_table) into v_target;
    execute format(
        'select count(*) from public.%I as t join pg_temp.%I as m on m.id = t.id where m.reason is not null',
        p_table, 'm_' || p_table) into v_both;
    execute format(
        'select coalesce(jsonb_object_agg(r, n), ''{}'') from (
             select regexp_replace(reason, ''[0-9]+'', ''N'', ''g'') as r, count(*) as n
             from pg_temp.%I where reason is not null group by 1) as x', 'm_' || p_table)
    into v_reasons;
    execute format(
        'select coalesce(jsonb_object_agg(r, n), ''{}'') from (
             select unnest(norms) as r, count(*) as n from pg_temp.%I where reason is null group by 1) as x',
        'm_' || p_table)
    into v_norms;
    if v_source <> v_migrated + v_quarantined then
        raise exception 'accounting failed for %: source % <> migrated % + quarantined %',
            p_table, v_source, v_migrated, v_quarantined;
    end if;
    if v_target <> v_migrated then
        raise exception 'accounting failed for %: target holds % rows, % migrate', p_table, v_target, v_migrated;
    end if;
    if v_both <> 0 then
        raise exception 'accounting failed for %: % quarantined rows are in the target', p_table, v_both;
    end if;
    if v_src <> v_tgt then
        raise exception 'checksum mismatch for %: source side % <> target %', p_table, v_src, v_tgt;
    end if;
    v_seq := pg_get_serial_sequence(format('public.%I', p_table), 'id');
    if v_seq is not null then
        execute format('select setval(%L, coalesce(max(id), 1), max(id) is not null) from public.%I',
            v_seq, p_table);
    end if;
    insert into migration.run_tables (
        run_id, table_name, source_rows, migrated_rows, quarantined_rows, inserted_rows, updated_rows,
        deleted_rows, quarantined_by_reason, normalised_by_rule, source_checksum, target_checksum,
        checksum_match, seconds
    ) values (
        p_run, p_table, v_source, v_migrated, v_quarantined,
        coalesce(nullif(current_setting('hrp.inserted_' || p_table, true), ''), '0')::bigint,
        coalesce(nullif(current_setting('hrp.updated_' || p_table, true), ''), '0')::bigint,
        coalesce(nullif(current_setting('hrp.deleted_' || p_table, true), ''), '0')::bigint,
        v_reasons, v_norms, v_src, v_tgt, v_src = v_tgt, p_seconds
    );
    select to_jsonb(r) - 'run_id' into v_result
    from migration.run_tables as r where r.run_id = p_run and r.table_name = p_table;
    return v_result;
end
$$;
comment on function migration.finish_table(bigint, text, numeric) is
'Per-table validation of a load (checksums, accounting, no row both migrated and quarantined), sets
the id sequence past the highest id, records the result in migration.run_tables.';

create or replace function migration.finish_run(p_run bigint, p_report jsonb)
returns void
language plpgsql
as $$
declare
    v_quarantined bigint;
    v_max bigint;
begin
    select max_quarantine into v_max from migration.runs where run_id = p_run;
    select coalesce(sum(quarantined_rows), 0) into v_quarantined
    from migration.run_tables where run_id = p_run;
    if v_max is not null and v_quarantined > v_max then
        raise exception 'quarantine limit exceeded: % rows quarantined, --max-quarantine is % (rolled back)',
            v_quarantined, v_max;
    end if;
    update migration.runs
    set status = 'committed', finished_at = clock_timestamp(), report = p_report
    where run_id = p_run;
end
$$;
comment on function migration.finish_run(bigint, jsonb) is
'Closes a load: enforces --max-quarantine (raising rolls everything back), marks the run committed.';
