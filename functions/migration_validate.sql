-- Validation of a load (issue 3): order-independent content checksums source side (the mapped rows)
-- versus target, the per-table accounting assertion, id sequences past the highest id, the
-- --max-quarantine limit, and the run's record. Any failure raises, rolling the whole load back.
-- requires: schema/0010_migration.sql, functions/migration_load.sql (load_columns).
-- Repeatable (CREATE OR REPLACE).

-- Order-independent content checksum: row count and the sum of 64-bit hashes of the rows
-- (hash_record_extended), over the given columns.
create or replace function hrp_migration.content_checksum(
    p_relation text, p_cols text[], p_filter text
)
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
comment on function hrp_migration.content_checksum(text, text[], text) is
'count:sum(hash_record_extended(row)) over the columns: equal multisets of rows give equal
checksums.';

-- The source side of a table's validation, read from its work table only (never the target): the
-- content checksum of the migrating rows, the counts, quarantine reasons and normalisations. The
-- loader computes it on a second connection while the load's transaction writes the target (the
-- work tables are not written in that transaction); finish_table computes it itself when not given.
-- With p_generation (functions/migration_guard.sql) the fingerprint of every migrating row goes
-- into that generation of hrp_migration.row_fingerprints first and the checksum is their sum: once
-- the load validates it against the target, they are the fingerprints of what the load left there.
drop function if exists hrp_migration.source_side(text);
create or replace function hrp_migration.source_side(p_table text, p_generation bigint default null)
returns jsonb
language plpgsql
as $$
declare
    v_cols text := (
        select string_agg(format('%I', c), ', ') from unnest(hrp_migration.load_columns(p_table)) as c
    );
    v_result jsonb;
    v_reasons jsonb;
    v_norms jsonb;
begin
    if p_generation is not null then
        execute format(
            'insert into hrp_migration.row_fingerprints (generation, table_name, id, fingerprint)
             select $1, $2, id, hash_record_extended(row(%s), 0)
             from hrp_migration_work.%I where reason is null',
            v_cols, p_table)
        using p_generation, p_table;
        execute format(
            'select jsonb_build_object(
                 ''checksum'', (select count(*) || '':'' || coalesce(sum(fingerprint), 0)
                              from hrp_migration.row_fingerprints
                              where generation = $1 and table_name = $2),
                 ''source_rows'', count(*),
                 ''migrated_rows'', count(*) filter (where reason is null),
                 ''quarantined_rows'', count(*) filter (where reason is not null))
             from hrp_migration_work.%I',
            p_table)
        into v_result using p_generation, p_table;
    else
        execute format(
            'select jsonb_build_object(
                 ''checksum'', count(*) filter (where reason is null) || '':''
                     || coalesce(sum(hash_record_extended(row(%s), 0)) filter (where reason is null), 0),
                 ''source_rows'', count(*),
                 ''migrated_rows'', count(*) filter (where reason is null),
                 ''quarantined_rows'', count(*) filter (where reason is not null))
             from hrp_migration_work.%I',
            v_cols, p_table)
        into v_result;
    end if;
    execute format(
        'select coalesce(jsonb_object_agg(r, n), ''{}'') from (
             select regexp_replace(reason, ''id [0-9]+'', ''id N'', ''g'') as r, count(*) as n
             from hrp_migration_work.%I where reason is not null group by 1) as x', p_table)
    into v_reasons;
    execute format(
        'select coalesce(jsonb_object_agg(r, n), ''{}'') from (
             select r, count(*) as n from (
                 select distinct id, unnest(norms) as r from hrp_migration_work.%I
                 where reason is null and cardinality(norms) > 0
             ) as d group by 1) as x',
        p_table)
    into v_norms;
    return v_result || jsonb_build_object(
        'quarantined_by_reason', v_reasons, 'normalised_by_rule', v_norms
    );
end
$$;
comment on function hrp_migration.source_side(text, bigint) is
'Source side of a table''s validation from hrp_migration_work.<table>: checksum (same form as
content_checksum) of the migrating rows, source/migrated/quarantined counts, quarantine reasons and
normalisations; with p_generation, also the rows'' fingerprints into hrp_migration.row_fingerprints.';

-- Validation and bookkeeping of one table: checksums source side (the mapped rows) and target side,
-- sequence past the highest id, the accounting assertion; raises (rolling the load back) on any
-- mismatch. p_source: source_side(p_table) when the caller computed it already. p_counts: what
-- the load's steps did to the table ({"inserted", "updated", "deleted"}, from apply_table).
drop function if exists hrp_migration.finish_table(bigint, text, numeric);
drop function if exists hrp_migration.finish_table(bigint, text, numeric, jsonb);
create or replace function hrp_migration.finish_table(
    p_run bigint, p_table text, p_seconds numeric, p_source jsonb default null,
    p_counts jsonb default '{}'
)
returns jsonb
language plpgsql
as $$
declare
    v_cols text[] := hrp_migration.load_columns(p_table);
    v_side jsonb := coalesce(p_source, hrp_migration.source_side(p_table));
    v_src text := v_side ->> 'checksum';
    v_tgt text;
    v_source bigint := (v_side ->> 'source_rows')::bigint;
    v_migrated bigint := (v_side ->> 'migrated_rows')::bigint;
    v_quarantined bigint := (v_side ->> 'quarantined_rows')::bigint;
    v_target bigint;
    v_both bigint;
    v_seq text;
    v_reasons jsonb := v_side -> 'quarantined_by_reason';
    v_norms jsonb := v_side -> 'normalised_by_rule';
    v_result jsonb;
begin
    v_tgt := hrp_migration.content_checksum(format('public.%I', p_table), v_cols, 'true');
    v_target := split_part(v_tgt, ':', 1)::bigint;
    -- quarantined rows found in the target, through the target's primary key (none to look for
    -- when nothing is quarantined: no plan can then hash the whole target)
    v_both := 0;
    if v_quarantined > 0 then
        execute format(
            'select count(*) from hrp_migration_work.%I as m
             where m.reason is not null and exists (select from public.%I as t where t.id = m.id)',
            p_table, p_table) into v_both;
    end if;
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
        -- past the highest id, never backwards: sequences are not transactional, so a value
        -- handed out before (even by a rolled-back transaction) is never handed out again
        execute format(
            'select setval(%L, greatest(coalesce(max(id), 0), (select case when is_called'
            ' then last_value else last_value - 1 end from %s)) + 1, false) from public.%I',
            v_seq, v_seq, p_table);
    end if;
    insert into hrp_migration.run_tables (
        run_id, table_name, source_rows, migrated_rows, quarantined_rows, inserted_rows, updated_rows,
        deleted_rows, quarantined_by_reason, normalised_by_rule, source_checksum, target_checksum,
        checksum_match, seconds, checksum_columns
    ) values (
        p_run, p_table, v_source, v_migrated, v_quarantined,
        coalesce((p_counts ->> 'inserted')::bigint, 0),
        coalesce((p_counts ->> 'updated')::bigint, 0),
        coalesce((p_counts ->> 'deleted')::bigint, 0),
        v_reasons, v_norms, v_src, v_tgt, v_src = v_tgt, p_seconds, v_cols
    );
    select to_jsonb(r) - 'run_id' into v_result
    from hrp_migration.run_tables as r where r.run_id = p_run and r.table_name = p_table;
    return v_result;
end
$$;
comment on function hrp_migration.finish_table(bigint, text, numeric, jsonb, jsonb) is
'Per-table validation of a load (checksums, accounting, no row both migrated and quarantined), sets
the id sequence past the highest id, records the result in hrp_migration.run_tables.';

-- p_generation: the fingerprints this run wrote (source_side), adopted as what it left in the
-- target; every other generation goes (the previous run's, a rolled-back run's). p_final: the
-- database goes live with this commit (load --final): every later load is refused.
drop function if exists hrp_migration.finish_run(bigint, jsonb);
create or replace function hrp_migration.finish_run(
    p_run bigint, p_report jsonb, p_generation bigint default null, p_final boolean default false
)
returns void
language plpgsql
as $$
declare
    v_quarantined bigint;
    v_max bigint;
    v_old text;
begin
    select max_quarantine into v_max from hrp_migration.runs where run_id = p_run;
    select coalesce(sum(quarantined_rows), 0) into v_quarantined
    from hrp_migration.run_tables where run_id = p_run;
    if v_max is not null and v_quarantined > v_max then
        raise exception 'quarantine limit exceeded: % rows quarantined, --max-quarantine is % (rolled back)',
            v_quarantined, v_max;
    end if;
    if p_generation is not null then
        for v_old in
            select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
            where
                i.inhparent = 'hrp_migration.row_fingerprints'::regclass
                and c.relname <> 'row_fingerprints_' || p_generation
        loop
            execute format('drop table hrp_migration.%I', v_old);
        end loop;
    end if;
    update hrp_migration.runs
    set
        status = 'committed', finished_at = clock_timestamp(), report = p_report,
        fingerprint_generation = p_generation, mapping = p_report -> 'mapping'
    where run_id = p_run;
    if p_final then
        insert into hrp_migration.cutover (run_id) values (p_run);
    end if;
end
$$;
comment on function hrp_migration.finish_run(bigint, jsonb, bigint, boolean) is
'Closes a load: enforces --max-quarantine (raising rolls everything back), marks the run
committed with its report and the mapping it used (the report''s "mapping"), adopts its row
fingerprints (dropping older generations), and with p_final marks the database live.';
