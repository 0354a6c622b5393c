-- The mapping of a SQLite source onto the spec's five tables (issue 11), as one declarative rule
-- set: the rule of each target column comes from the target catalog — its type and length,
-- precision and scale (pg_attribute), NOT NULL, its enum's labels (pg_enum), the table's CHECK
-- constraints evaluated as they are written (pg_constraint) — and the mapping (which source column
-- feeds it, and an alternative rule where one is chosen) from hrp_migration.column_map.
--   set_mapping(source, mapping)  resolves a mapping file (as JSON) against the source's tables and
--                                 columns, refuses it naming every problem, else fills
--                                 hrp_migration.source_columns and hrp_migration.column_map;
--                                 returns what goes where
--   prepare_stage()               the all-text staging tables pgloader loads, one per source table
--   mapped_query(table)           the query staged rows -> typed values, reason, norms
--   build_mapped_view(table)      hrp_migration.<table>_mapped over that query (the loader's
--                                 input); build_mapped_views() all five
-- The rules, per target type (README "Per-column rules" says the same; a test compares them):
--   smallint/integer/bigint  an integer (optional sign, digits), in the type's range
--   numeric(p,s)             a finite number rounded half away from zero to s decimals, below
--                            10^(p-s); counted real_rounded_to_scale when the double had more
--                            decimals in its 15 significant digits
--   real/double precision    a finite number
--   varchar(n)/char(n)/text  kept byte for byte; longer than n -> quarantine (never truncated)
--   date                     YYYY-MM-DD and a real day; rule date_part: the date of a timestamp
--                            (counted date_from_timestamp), its full value kept in source_extras
--   timestamp(tz)            naive ISO (source time zone), ISO with an offset, date only
--                            (midnight),
--                            Unix epoch seconds (counted: timestamp_offset_to_utc,
--                            timestamp_from_date_only, timestamp_from_epoch)
--   boolean                  1/0, or true/false/t/f/yes/no/y/n/on/off (counted boolean_from_text)
--   enum                     the exact label, or lower(btrim()) of it (enum_label_case_folded)
--   jsonb/json               valid JSON; text not starting with {, [ or " as a JSON string
--                            (text_as_json_string); JSON with \u0000 has its own reason
--   interval                 what the interval type accepts
--   NOT NULL                 NULL -> quarantine; every CHECK of the table -> quarantine naming it
-- Canonical-value shortcut (setting hrp.map_canonical = on, which map_rows sets): a row whose every
-- value is already the text its target type prints (bigint, numeric at scale and in range, ISO
-- timestamp and date, an exact enum label, 0/1, NULL where allowed) is typed by plain casts with no
-- reason or normalisation from the rules, which is what the rules give it (pgTAP compares both
-- ways); its CHECKs are evaluated all the same. The casts raise on text that is no number or date
-- at all: map_rows then maps the table (part) again with the shortcut off.
-- requires: schema/0012_migration_mapping.sql, functions/migration_parse.sql, the spec's tables.
-- Repeatable (CREATE OR REPLACE).

-- The target tables, parents first (the order of upserts; deletes go the other way).
create or replace function hrp_migration.target_tables()
returns text[]
language sql immutable
as $$
    select array['races', 'horses', 'users', 'api_credentials', 'predictions']
$$;
comment on function hrp_migration.target_tables() is
'The spec''s five tables a load writes, parents first.';

-- text -> interval, NULL when the text is not one (plpgsql: the cast raises).
create or replace function hrp_migration.try_interval(v text)
returns interval
language plpgsql stable parallel safe
as $$
begin
    return v::interval;
exception when others then
    return null;
end
$$;
comment on function hrp_migration.try_interval(text) is
'text -> interval, NULL when it is not one.';

-- The catalog facts a rule needs about each column of a target table.
create or replace function hrp_migration.target_columns(p_table text)
returns table (
    attnum smallint, column_name text, type_name text, type_kind text, max_length integer,
    num_precision integer, num_scale integer, not_null boolean, has_default boolean,
    primary_key boolean
)
language sql stable
as $$
    select
        a.attnum,
        a.attname::text,
        format_type(a.atttypid, a.atttypmod),
        case
            when t.typtype = 'e' then 'enum'
            when a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) then 'integer'
            when a.atttypid = 'numeric'::regtype then 'numeric'
            when a.atttypid in ('float4'::regtype, 'float8'::regtype) then 'float'
            when a.atttypid in ('varchar'::regtype, 'bpchar'::regtype, 'text'::regtype) then 'text'
            when a.atttypid = 'date'::regtype then 'date'
            when a.atttypid in ('timestamptz'::regtype, 'timestamp'::regtype) then 'timestamp'
            when a.atttypid = 'bool'::regtype then 'boolean'
            when a.atttypid in ('jsonb'::regtype, 'json'::regtype) then 'json'
            when a.atttypid = 'interval'::regtype then 'interval'
        end,
        case
            when a.atttypid in ('varchar'::regtype, 'bpchar'::regtype) and a.atttypmod > 4
                then a.atttypmod - 4
        end,
        case
            when a.atttypid = 'numeric'::regtype and a.atttypmod > 4
                then ((a.atttypmod - 4) >> 16) & 65535
        end,
        case when a.atttypid = 'numeric'::regtype and a.atttypmod > 4 then (a.atttypmod - 4) & 65535 end,
        a.attnotnull,
        a.atthasdef,
        exists (
            select from pg_constraint as c
            where c.conrelid = a.attrelid and c.contype = 'p' and a.attnum = any(c.conkey)
        )
    from pg_attribute as a
    inner join pg_type as t on a.atttypid = t.oid
    where
        a.attrelid = format('public.%I', p_table)::regclass
        and a.attnum > 0 and not a.attisdropped
    order by a.attnum
$$;
comment on function hrp_migration.target_columns(text) is
'Per column of public.<table>: its type, the kind of rule that type takes, length, precision and
scale, NOT NULL, default, primary key (from pg_attribute, pg_type, pg_constraint).';

-- The source (p_source: {"tables": {name: {"columns": [{"name", "type"}, ...]}}}) and the mapping
-- file as JSON (p_mapping: {"tables": {target: {"source": ..., "columns": {target column: source
-- column | {"source": ..., "rule": ...} | false}}}}) -> hrp_migration.source_columns and
-- column_map.
-- A target table not in the file takes the source table of its name; a target column not listed
-- takes the source column of its name when there is one (false: none, the target default).
create or replace function hrp_migration.set_mapping(p_source jsonb, p_mapping jsonb)
returns jsonb
language plpgsql
as $$
declare
    v_problems text[] := '{}';
    v_target text;
    v_spec jsonb;
    v_src text;
    v_entry record;
    v_col record;
    v_source_col text;
    v_rule text;
    v_value jsonb;
    v_report jsonb := '{}';
    v_tables jsonb := '{}';
    v_used text[] := '{}';
begin
    for v_entry in select key, value from jsonb_each(coalesce(p_mapping -> 'tables', '{}')) loop
        if not v_entry.key = any(hrp_migration.target_tables()) then
            v_problems := v_problems || format(
                'mapping: [tables.%s] is not a target table (the targets: %s)',
                v_entry.key, array_to_string(hrp_migration.target_tables(), ', ')
            );
        elsif jsonb_typeof(v_entry.value) <> 'object' then
            v_problems := v_problems || format('mapping: tables.%s must be a table', v_entry.key);
        elsif exists (select from jsonb_object_keys(v_entry.value) as k where k not in ('source', 'columns')) then
            v_problems := v_problems || format(
                'mapping: [tables.%s] knows source and columns only, not %s', v_entry.key,
                (select string_agg(k, ', ') from jsonb_object_keys(v_entry.value) as k
                 where k not in ('source', 'columns'))
            );
        elsif jsonb_typeof(coalesce(v_entry.value -> 'source', '""')) <> 'string'
            or jsonb_typeof(coalesce(v_entry.value -> 'columns', '{}')) <> 'object' then
            v_problems := v_problems || format(
                'mapping: [tables.%s] source must be a table name, columns a table', v_entry.key
            );
        end if;
    end loop;
    if cardinality(v_problems) > 0 then
        raise exception using
            message = 'the mapping file is not valid:' || E'\n  ' || array_to_string(v_problems, E'\n  ');
    end if;
    truncate hrp_migration.column_map, hrp_migration.source_columns;
    insert into hrp_migration.source_columns (source_table, source_column, ordinal, declared_type)
    select t.key, c.value ->> 'name', c.ordinality, coalesce(c.value ->> 'type', '')
    from jsonb_each(p_source -> 'tables') as t
    cross join lateral jsonb_array_elements(t.value -> 'columns') with ordinality as c;
    foreach v_target in array hrp_migration.target_tables() loop
        v_spec := coalesce(p_mapping -> 'tables' -> v_target, '{}');
        v_src := coalesce(v_spec ->> 'source', v_target);
        if not exists (select from hrp_migration.source_columns where source_table = v_src) then
            v_problems := v_problems || format(
                'table %s: the source has no table %s%s', v_target, v_src,
                case when v_spec ? 'source' then ' (mapping: source)' else
                    ' (name its source table: [tables.' || v_target || '] source = "...")' end
            );
            continue;
        end if;
        if v_src = any(v_used) then
            v_problems := v_problems || format('table %s: source table %s feeds another target table too',
                v_target, v_src);
            continue;
        end if;
        v_used := v_used || v_src;
        -- the listed columns first: each a target column of this table, its source one of the
        -- source table's
        for v_entry in select key, value from jsonb_each(coalesce(v_spec -> 'columns', '{}')) loop
            if not exists (
                select from hrp_migration.target_columns(v_target) as t where t.column_name = v_entry.key
            ) then
                v_problems := v_problems || format('table %s: mapping names column %s, which the target '
                    'table does not have', v_target, v_entry.key);
                continue;
            end if;
            v_value := v_entry.value;
            if jsonb_typeof(v_value) = 'boolean' and not v_value::boolean then
                continue;  -- false: no source column, the target's default
            elsif jsonb_typeof(v_value) = 'string' then
                v_source_col := v_value #>> '{}';
                v_rule := null;
            elsif jsonb_typeof(v_value) = 'object' and v_value ? 'source'
                and not exists (
                    select from jsonb_object_keys(v_value) as k where k not in ('source', 'rule')
                ) then
                v_source_col := v_value ->> 'source';
                v_rule := v_value ->> 'rule';
            else
                v_problems := v_problems || format('table %s, column %s: expected "source column", '
                    '{ source = "...", rule = "..." } or false, got %s', v_target, v_entry.key, v_value);
                continue;
            end if;
            if not exists (
                select from hrp_migration.source_columns
                where source_table = v_src and lower(source_column) = lower(v_source_col)
            ) then
                v_problems := v_problems || format('table %s, column %s: the source table %s has no column '
                    '%s', v_target, v_entry.key, v_src, v_source_col);
                continue;
            end if;
            insert into hrp_migration.column_map (target_table, target_column, source_table, source_column, rule)
            select v_target, v_entry.key, v_src, s.source_column, v_rule
            from hrp_migration.source_columns as s
            where s.source_table = v_src and lower(s.source_column) = lower(v_source_col);
        end loop;
        -- the others: the source column of the same name, if there is one
        insert into hrp_migration.column_map (target_table, target_column, source_table, source_column)
        select v_target, t.column_name, v_src, s.source_column
        from hrp_migration.target_columns(v_target) as t
        inner join hrp_migration.source_columns as s
            on s.source_table = v_src and lower(s.source_column) = t.column_name
        where not (coalesce(v_spec -> 'columns', '{}') ? t.column_name);
        -- each mapped column: a type the rules know, a known rule that fits it
        for v_col in
            select t.*, m.source_column, m.rule
            from hrp_migration.target_columns(v_target) as t
            left join hrp_migration.column_map as m
                on m.target_table = v_target and t.column_name = m.target_column
            order by t.attnum
        loop
            if v_col.source_column is null then
                if v_col.primary_key then
                    v_problems := v_problems || format('table %s: no source column for its primary key %s '
                        '(the source''s ids must be kept: map it)', v_target, v_col.column_name);
                elsif v_col.not_null and not v_col.has_default then
                    v_problems := v_problems || format('table %s: no source column for %s, which is NOT NULL '
                        'without a default', v_target, v_col.column_name);
                end if;
                continue;
            end if;
            if v_col.type_kind is null then
                v_problems := v_problems || format('table %s, column %s: no rule for its type %s',
                    v_target, v_col.column_name, v_col.type_name);
            elsif v_col.rule is not null and v_col.rule <> 'date_part' then
                v_problems := v_problems || format('table %s, column %s: unknown rule %s (known: date_part)',
                    v_target, v_col.column_name, v_col.rule);
            elsif v_col.rule = 'date_part' and v_col.type_kind <> 'date' then
                v_problems := v_problems || format('table %s, column %s: rule date_part makes a date, the '
                    'column is %s', v_target, v_col.column_name, v_col.type_name);
            end if;
        end loop;
        update hrp_migration.source_columns as s
        set target_table = v_target, target_column = (
            select min(m.target_column) from hrp_migration.column_map as m
            where m.target_table = v_target and m.source_column = s.source_column
        )
        where s.source_table = v_src;
        v_tables := v_tables || jsonb_build_object(v_target, jsonb_build_object(
            'source', v_src,
            'columns', (
                select coalesce(jsonb_object_agg(
                    m.target_column,
                    case when m.rule is null then to_jsonb(m.source_column)
                    else jsonb_build_object('source', m.source_column, 'rule', m.rule) end
                ), '{}')
                from hrp_migration.column_map as m where m.target_table = v_target
            ),
            'target_defaults', (
                select coalesce(jsonb_agg(t.column_name order by t.attnum), '[]')
                from hrp_migration.target_columns(v_target) as t
                where not exists (
                    select from hrp_migration.column_map as m
                    where m.target_table = v_target and m.target_column = t.column_name
                )
            ),
            -- source columns no target column takes, and those a rule keeps whole (date_part)
            'extra_columns', (
                select coalesce(jsonb_agg(s.source_column order by s.ordinal), '[]')
                from hrp_migration.source_columns as s
                where
                    s.source_table = v_src and (s.target_column is null or exists (
                        select from hrp_migration.column_map as m
                        where m.source_table = v_src and m.source_column = s.source_column
                            and m.rule = 'date_part'
                    ))
            )
        ));
    end loop;
    if cardinality(v_problems) > 0 then
        raise exception using
            message = 'the mapping does not fit the source:' || E'\n  ' || array_to_string(v_problems, E'\n  '),
            errcode = 'P0001';
    end if;
    v_report := jsonb_build_object(
        'tables', v_tables,
        'unmapped_tables', (
            select coalesce(jsonb_agg(distinct s.source_table), '[]')
            from hrp_migration.source_columns as s where s.target_table is null
        )
    );
    return v_report;
end
$$;
comment on function hrp_migration.set_mapping(jsonb, jsonb) is
'Resolves a mapping (the mapping file as JSON) against the source''s tables and columns: refuses it
naming every problem, else fills hrp_migration.source_columns and hrp_migration.column_map; returns what
goes where (target tables: source, columns, target defaults, extra columns; unmapped tables).';

-- The staging tables pgloader loads into: one per source table, every column text, UNLOGGED,
-- named as in the source (column names lower case, as pgloader writes them); plus the preflight's
-- rejects. Every other table of hrp_migration_stage goes (an earlier source's).
create or replace function hrp_migration.prepare_stage()
returns bigint
language plpgsql
as $$
declare
    v_table text;
    v_rows bigint := 0;
begin
    -- the mapping views read the staging tables: they go first (map_begin makes them again)
    foreach v_table in array hrp_migration.target_tables() loop
        if to_regclass(format('hrp_migration.%I', v_table || '_mapped')) is not null then
            execute format('drop view hrp_migration.%I', v_table || '_mapped');
        end if;
    end loop;
    for v_table in
        select c.relname from pg_class as c
        where c.relnamespace = 'hrp_migration_stage'::regnamespace and c.relkind = 'r'
    loop
        execute format('drop table hrp_migration_stage.%I', v_table);
    end loop;
    for v_table in select distinct s.source_table from hrp_migration.source_columns as s loop
        execute format(
            'create unlogged table hrp_migration_stage.%I (%s)', v_table,
            (
                select string_agg(format('%I text', lower(s.source_column)), ', ' order by s.ordinal)
                from hrp_migration.source_columns as s
                where s.source_table = v_table
            )
        );
        execute format(
            'comment on table hrp_migration_stage.%I is %L', v_table,
            'Staged copy of the source table ' || v_table || ', all text (pgloader).'
        );
        v_rows := v_rows + 1;
    end loop;
    create unlogged table hrp_migration_stage.hrp_preflight_rejects (
        source_table text, source_id text, reason text, source_row text
    );
    comment on table hrp_migration_stage.hrp_preflight_rejects is
    'Source rows pgloader cannot carry (found by the preflight), as escaped JSON text,
to be quarantined.';
    return v_rows;
end
$$;
comment on function hrp_migration.prepare_stage() is
'Re-creates hrp_migration_stage: an all-text UNLOGGED table per source table of
hrp_migration.source_columns, and hrp_preflight_rejects; returns how many source tables.';

-- The mapping query of a target table (see the header): staged text -> typed values by the rules
-- of the target catalog, reason and norms. Built from hrp_migration.column_map and the catalog
-- only.
create or replace function hrp_migration.mapped_query(p_table text)
returns text
language plpgsql stable
as $$
declare
    v_src text := (select min(m.source_table) from hrp_migration.column_map as m where m.target_table = p_table);
    v_c record;
    v_n text;
    v_x text;
    l0 text[] := '{}';   -- staged values, shortcut casts, enum labels
    -- values read once per query (init plans): the shortcut's setting, the source time zone, the
    -- labels of each enum (enum_range per row costs ~2 us a call)
    l0e text[] := array[
        '(select coalesce(current_setting(''hrp.map_canonical'', true) = ''on'', false)) as fast_on',
        '(select current_setting(''hrp.source_timezone'')) as tz'
    ];
    l1 text[] := '{}';   -- the shortcut's conditions
    l2 text[] := '{}';   -- parsed values
    l3 text[] := '{}';   -- rounded numbers, timestamps
    l4 text[] := '{}';   -- typed target columns
    v_reasons text[] := '{}';
    v_norms text[] := '{}';
    v_checks text[] := '{}';
    v_case text;
    v_lim text;
begin
    if v_src is null then
        raise exception 'mapped_query: no mapping for table % (hrp_migration.set_mapping first)', p_table;
    end if;
    for v_c in
        select t.*, m.source_column, m.rule
        from hrp_migration.target_columns(p_table) as t
        inner join hrp_migration.column_map as m
            on m.target_table = p_table and t.column_name = m.target_column
        order by t.attnum
    loop
        v_n := v_c.attnum::text;
        v_x := 'x' || v_n;
        l0 := l0 || format('s.%I as %s', lower(v_c.source_column), v_x);
        v_case := null;
        -- the canonical-value shortcut: casts (under fast_on) and the condition of each column
        if v_c.type_kind = 'integer' then
            l0 := l0 || format(
                'case when e.fast_on and s.%1$I <> %2$L then s.%1$I::bigint end as f%3$s',
                lower(v_c.source_column), '', v_n
            );
            v_lim := case v_c.type_name
                when 'smallint' then ' and f%1$s between -32768 and 32767'
                when 'integer' then ' and f%1$s between -2147483648 and 2147483647'
                else '' end;
            l1 := l1 || format('f%1$s::text = x%1$s and length(x%1$s) <= 18' || v_lim, v_n);
        elsif v_c.type_kind = 'numeric' then
            l0 := l0 || format(
                'case when e.fast_on and s.%1$I <> %2$L then s.%1$I::numeric end as f%3$s',
                lower(v_c.source_column), '', v_n
            );
            l1 := l1 || (format('f%1$s::text = x%1$s and length(x%1$s) <= 40', v_n) || case
                when v_c.num_precision is not null then format(
                    ' and abs(f%1$s) < 1e%2$s and f%1$s = round(f%1$s, %3$s)',
                    v_n, v_c.num_precision - v_c.num_scale, v_c.num_scale
                ) else '' end);
        elsif v_c.type_kind = 'timestamp' then
            l0 := l0 || format(
                'case when e.fast_on and s.%1$I like %2$L then s.%1$I::timestamp end as f%3$s',
                lower(v_c.source_column), '____-__-__ __:__:__%', v_n
            );
            l1 := l1 || format(
                'f%1$s between %2$L and %3$L and f%1$s::text = x%1$s',
                v_n, '0001-01-01', '9999-12-31 23:59:59.999999'
            );
        elsif v_c.type_kind = 'date' and v_c.rule is null then
            l0 := l0 || format(
                'case when e.fast_on and s.%1$I like %2$L then s.%1$I::date end as f%3$s',
                lower(v_c.source_column), '____-__-__', v_n
            );
            l1 := l1 || format('f%1$s::text = x%1$s', v_n);
        elsif v_c.type_kind = 'text' then
            l1 := l1 || case when v_c.max_length is null then format('x%s is not null', v_n)
                else format('length(x%s) <= %s', v_n, v_c.max_length) end;
        elsif v_c.type_kind = 'enum' then
            l0e := l0e || format(
                'array(select unnest(enum_range(null::%s))::text) as l%s', v_c.type_name, v_n
            );  -- ARRAY(subquery): an init plan too
            l0 := l0 || format(
                'case when s.%1$I = any(e.l%2$s) then s.%1$I '
                'when lower(btrim(s.%1$I)) = any(e.l%2$s) then lower(btrim(s.%1$I)) end as v%2$s',
                lower(v_c.source_column), v_n
            );
            l1 := l1 || format('v%1$s = x%1$s', v_n);
        elsif v_c.type_kind = 'boolean' then
            l1 := l1 || format('x%s in (%L, %L)', v_n, '0', '1');
        else
            l1 := l1 || 'false'::text;  -- float, json, interval, date_part: always the rules
        end if;
        -- NULL: allowed by the shortcut where the column allows it
        if not v_c.not_null then
            l1[cardinality(l1)] := format('(x%s is null or %s)', v_n, l1[cardinality(l1)]);
        end if;
        -- the rules
        if v_c.type_kind = 'integer' then
            l2 := l2 || format(
                'case when g.fast then g.f%1$s else hrp_migration.parse_int(g.x%1$s) end as v%1$s', v_n
            );
            v_lim := case v_c.type_name
                when 'smallint' then '-32768 and 32767'
                when 'integer' then '-2147483648 and 2147483647' end;
            l4 := l4 || case when v_lim is null then format('p.v%s as %I', v_n, v_c.column_name)
                else format(
                    'case when p.v%1$s between %2$s then p.v%1$s end::%3$s as %4$I',
                    v_n, v_lim, v_c.type_name, v_c.column_name
                ) end;
            v_case := format('when p.v%1$s is null then %2$L', v_n, v_c.column_name || ': not an integer')
                || case when v_lim is null then '' else format(
                    ' when p.v%1$s not between %2$s then %3$L',
                    v_n, v_lim, v_c.column_name || ': out of range of ' || v_c.type_name
                ) end;
        elsif v_c.type_kind in ('numeric', 'float') then
            l2 := l2 || case when v_c.type_kind = 'numeric' then format(
                'case when g.fast then g.f%1$s else hrp_migration.parse_num(g.x%1$s) end as v%1$s', v_n
            ) else format('hrp_migration.parse_num(g.x%1$s) as v%1$s', v_n) end;
            if v_c.num_precision is not null then
                l3 := l3 || format('round(q.v%1$s, %2$s) as r%1$s', v_n, v_c.num_scale);
                l4 := l4 || format(
                    'case when abs(p.r%1$s) < 1e%2$s then p.r%1$s end::%3$s as %4$I',
                    v_n, v_c.num_precision - v_c.num_scale, v_c.type_name, v_c.column_name
                );
                v_case := format(
                    'when p.v%1$s is null then %2$L when abs(p.r%1$s) >= 1e%3$s then %4$L',
                    v_n, v_c.column_name || ': not a finite number', v_c.num_precision - v_c.num_scale,
                    format('%s: out of range of decimal(%s,%s)', v_c.column_name, v_c.num_precision,
                        v_c.num_scale)
                );
                v_norms := v_norms || format(
                    'case when p.v%1$s <> p.r%1$s and p.v%1$s::float8::numeric <> p.r%1$s '
                    'then %2$L end', v_n, 'real_rounded_to_scale'
                );
            else
                l4 := l4 || case when v_c.type_name = 'real'
                    then format('case when abs(p.v%1$s) < 3.4e38 then p.v%1$s end::real as %2$I',
                        v_n, v_c.column_name)
                    when v_c.type_kind = 'float'
                    then format('case when abs(p.v%1$s) < 1.7e308 then p.v%1$s end::float8 as %2$I',
                        v_n, v_c.column_name)
                    else format('p.v%s as %I', v_n, v_c.column_name) end;
                v_case := format('when p.v%1$s is null then %2$L', v_n, v_c.column_name || ': not a finite number');
            end if;
        elsif v_c.type_kind = 'text' then
            if v_c.max_length is null then
                l4 := l4 || format('p.x%s::%s as %I', v_n, v_c.type_name, v_c.column_name);
            else
                l4 := l4 || format(
                    'case when length(p.x%1$s) <= %2$s then p.x%1$s end::%3$s as %4$I',
                    v_n, v_c.max_length, v_c.type_name, v_c.column_name
                );
                v_case := format(
                    'when length(p.x%1$s) > %2$s then %3$L', v_n, v_c.max_length,
                    format('%s: longer than %s characters', v_c.column_name, v_c.max_length)
                );
            end if;
        elsif v_c.type_kind = 'date' and v_c.rule = 'date_part' then
            l2 := l2 || format('hrp_migration.ts_kind(g.x%1$s) as k%1$s', v_n);
            l3 := l3 || format(
                'case when q.k%1$s = %2$L then (hrp_migration.parse_ts(q.x%1$s, q.k%1$s, q.tz) at time zone q.tz)::date '
                'when q.k%1$s is not null then left(q.x%1$s, 10)::date end as v%1$s', v_n, 'epoch'
            );
            l4 := l4 || format('p.v%s as %I', v_n, v_c.column_name);
            v_case := format('when p.k%1$s is null then %2$L', v_n, v_c.column_name || ': not a date or timestamp');
            v_norms := v_norms || format(
                'case when p.k%1$s in (%2$L, %3$L, %4$L) then %5$L end',
                v_n, 'naive', 'offset', 'epoch', 'date_from_timestamp'
            );
        elsif v_c.type_kind = 'date' then
            l2 := l2 || format(
                'case when g.fast then g.f%1$s else hrp_migration.parse_date(g.x%1$s) end as v%1$s', v_n
            );
            l4 := l4 || format('p.v%s as %I', v_n, v_c.column_name);
            v_case := format(
                'when p.v%1$s is null then %2$L', v_n, v_c.column_name || ': not a calendar date YYYY-MM-DD'
            );
        elsif v_c.type_kind = 'timestamp' then
            l2 := l2 || format(
                'case when g.fast then %2$L else hrp_migration.ts_kind(g.x%1$s) end as k%1$s', v_n, 'naive'
            );
            l3 := l3 || format(
                'case when q.fast then q.f%1$s at time zone q.tz '
                'else hrp_migration.parse_ts(q.x%1$s, q.k%1$s, q.tz) end as v%1$s', v_n
            );
            -- a timestamp without time zone keeps the local time of the source time zone
            l4 := l4 || case when v_c.type_name like 'timestamp without%'
                then format('(p.v%s at time zone p.tz)::%s as %I', v_n, v_c.type_name, v_c.column_name)
                else format('p.v%s as %I', v_n, v_c.column_name) end;
            v_case := format('when p.k%1$s is null then %2$L', v_n, v_c.column_name || ': unparseable timestamp');
            v_norms := v_norms || format('hrp_migration.ts_norms(p.k%s)', v_n);
        elsif v_c.type_kind = 'boolean' then
            l2 := l2 || format('hrp_migration.parse_bool(g.x%1$s) as v%1$s', v_n);
            l4 := l4 || format('p.v%s as %I', v_n, v_c.column_name);
            v_case := format('when p.v%1$s is null then %2$L', v_n, v_c.column_name || ': not a boolean');
            v_norms := v_norms || format(
                'case when p.v%1$s is not null and p.x%1$s not in (%2$L, %3$L) then %4$L end',
                v_n, '0', '1', 'boolean_from_text'
            );
        elsif v_c.type_kind = 'enum' then
            l4 := l4 || format('p.v%s::%s as %I', v_n, v_c.type_name, v_c.column_name);
            v_case := format('when p.v%1$s is null then %2$L', v_n, v_c.column_name || ': unknown label');
            v_norms := v_norms || format(
                'case when p.v%1$s <> p.x%1$s then %2$L end', v_n, 'enum_label_case_folded'
            );
        elsif v_c.type_kind = 'json' then
            l2 := l2 || format(
                'case when g.x%1$s is not null then hrp_migration.try_jsonb(g.x%1$s) end as j%1$s', v_n
            );
            l4 := l4 || format(
                'case when p.j%1$s is not null then p.j%1$s when ltrim(p.x%1$s) !~ %2$L '
                'then to_jsonb(p.x%1$s) end::%3$s as %4$I',
                v_n, '^[\[{"]', v_c.type_name, v_c.column_name
            );
            v_case := format(
                'when p.j%1$s is null and ltrim(p.x%1$s) ~ %2$L then case when hrp_migration.is_json(p.x%1$s) '
                'then %3$L else %4$L end',
                v_n, '^[\[{"]', v_c.column_name || ': JSON with a \u0000 escape, which jsonb cannot hold',
                v_c.column_name || ': malformed JSON'
            );
            v_norms := v_norms || format(
                'case when p.j%1$s is null and ltrim(p.x%1$s) !~ %2$L then %3$L end',
                v_n, '^[\[{"]', 'text_as_json_string'
            );
        elsif v_c.type_kind = 'interval' then
            l2 := l2 || format('hrp_migration.try_interval(g.x%1$s) as v%1$s', v_n);
            l4 := l4 || format('p.v%s as %I', v_n, v_c.column_name);
            v_case := format('when p.v%1$s is null then %2$L', v_n, v_c.column_name || ': not an interval');
        end if;
        -- the column's reason: NULL where NOT NULL, else the first failed rule
        v_reasons := v_reasons || format(
            'case when p.x%1$s is null then %2$L %3$s end',
            v_n, case when v_c.not_null then v_c.column_name || ': NULL in a NOT NULL column' end,
            coalesce(v_case, '')
        );
    end loop;
    -- the table's CHECK constraints, as written, on the typed values (those whose columns all load)
    select coalesce(array_agg(format(
        'case when not coalesce((%s), true) then %L end',
        pg_get_expr(c.conbin, c.conrelid),
        (
            select string_agg(a.attname, ', ' order by a.attnum) from pg_attribute as a
            where a.attrelid = c.conrelid and a.attnum = any(c.conkey)
        ) || ': violates ' || c.conname
    ) order by c.conname), '{}')
    into v_checks
    from pg_constraint as c
    where
        c.conrelid = format('public.%I', p_table)::regclass and c.contype = 'c'
        and not exists (
            select from unnest(c.conkey) as k (attnum)
            inner join pg_attribute as a on a.attrelid = c.conrelid and a.attnum = k.attnum
            where not exists (
                select from hrp_migration.column_map as m
                where m.target_table = p_table and m.target_column = a.attname
            )
        );
    return format(
        $q$select t.source_id, %1$s,
    nullif(concat_ws('; ', t.rule_reason%2$s), '') as reason,
    t.norms
from (
    select
        p.source_id, %3$s,
        case when not p.fast then nullif(concat_ws('; ', %4$s), '') end as rule_reason,
        case when p.fast then '{}'::text [] else array_remove(array[%5$s]::text [], null)%6$s end
            as norms
    from (
        select q.*%7$s
        from (
            select g.*%8$s
            from (
                select c.*, coalesce(%9$s, false) as fast
                from (
                    select s.%10$I as source_id, e.tz, %11$s
                    from hrp_migration_stage.%12$I as s
                    cross join (select %13$s) as e
                    where
                        s.ctid >= (select format('(%%s,0)', coalesce(nullif(
                            current_setting('hrp.map_from_block', true), ''), '0'))::tid)
                        and s.ctid < (select format('(%%s,0)', coalesce(nullif(
                            current_setting('hrp.map_to_block', true), ''), '4294967295'))::tid)
                    offset 0
                ) as c
                offset 0
            ) as g
            offset 0
        ) as q
        offset 0
    ) as p
) as t$q$,
        (
            select string_agg(format('t.%I', m.target_column), ', ' order by a.attnum)
            from hrp_migration.column_map as m
            inner join pg_attribute as a
                on a.attrelid = format('public.%I', p_table)::regclass and a.attname = m.target_column
            where m.target_table = p_table
        ),
        coalesce(', ' || nullif(array_to_string(v_checks, ', '), ''), ''),
        array_to_string(l4, ', '),
        array_to_string(v_reasons, ', '),
        array_to_string(array(select x from unnest(v_norms) as x where x not like 'hrp_migration.ts_norms(%'), ', '),
        coalesce(' || ' || nullif(array_to_string(
            array(select x from unnest(v_norms) as x where x like 'hrp_migration.ts_norms(%'), ' || '
        ), ''), ''),
        coalesce(', ' || nullif(array_to_string(l3, ', '), ''), ''),
        coalesce(', ' || nullif(array_to_string(l2, ', '), ''), ''),
        coalesce(nullif(array_to_string(l1, ' and '), ''), 'true'),
        (
            select lower(m.source_column) from hrp_migration.column_map as m
            where m.target_table = p_table and m.target_column = 'id'
        ),
        array_to_string(l0, ', '),
        v_src,
        array_to_string(l0e, ', ')
    );
end
$$;
comment on function hrp_migration.mapped_query(text) is
'The query that maps the staged rows of a target table''s source table (hrp_migration.column_map) to
the typed target values, with reason (failed rules and CHECKs, by column) and norms (the counted
normalisations), from the target catalog''s rules (see functions/migration_map.sql).';

create or replace function hrp_migration.build_mapped_view(p_table text)
returns void
language plpgsql
as $$
begin
    if to_regclass(format('hrp_migration.%I', p_table || '_mapped')) is not null then
        execute format('drop view hrp_migration.%I', p_table || '_mapped');
    end if;
    execute format('create view hrp_migration.%I as %s', p_table || '_mapped', hrp_migration.mapped_query(p_table));
    execute format(
        'comment on view hrp_migration.%I is %L', p_table || '_mapped',
        'Staged source rows -> typed ' || p_table || ' columns, with failed rules (reason) and '
        || 'normalisations (norms); generated by hrp_migration.build_mapped_view from the mapping and the catalog.'
    );
end
$$;
comment on function hrp_migration.build_mapped_view(text) is
'(Re)creates hrp_migration.<table>_mapped from hrp_migration.mapped_query(<table>).';

-- All five at once: the loader builds them right after staging, before its transaction begins (the
-- views' CHECK expressions are read with pg_get_expr, which takes a lock on the target table that
-- the bulk path's transaction would block).
create or replace function hrp_migration.build_mapped_views()
returns void
language plpgsql
as $$
declare
    v_table text;
begin
    foreach v_table in array hrp_migration.target_tables() loop
        perform hrp_migration.build_mapped_view(v_table);
    end loop;
end
$$;
comment on function hrp_migration.build_mapped_views() is
'(Re)creates the mapping view of every target table (hrp_migration.build_mapped_view).';
