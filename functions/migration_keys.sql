-- Fast path of a load into an empty target (issue 3): drop the keys, indexes and foreign keys of
-- the spec's tables, bulk insert, re-create them — all inside the load's one transaction (DDL is
-- transactional, so a failed load leaves them exactly as they were). Measured on this machine:
-- insert then index is ~40% faster than inserting into the indexed tables.
-- requires: the spec's tables. Repeatable (CREATE OR REPLACE).

-- Fast path for an empty target: drop the keys, indexes and foreign keys of the tables (their
-- definitions and comments kept in m_keys), bulk insert, then restore_keys() re-creates them, all
-- inside the load's transaction (DDL is transactional: a failed load restores them untouched).
create or replace function hrp_migration.drop_keys(p_tables text[])
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
comment on function hrp_migration.drop_keys(text[]) is
'Drops (remembering) the keys, indexes and foreign keys of the given public tables, for a
bulk load.';

-- p_tables: only the keys and indexes of these tables, now, and (p_unique false) not their UNIQUE
-- constraints (the loader builds predictions' while rows its mapping may still quarantine as
-- duplicates are in the table); NULL: all that is left, foreign keys last
drop function if exists hrp_migration.restore_keys();
drop function if exists hrp_migration.restore_keys(text[]);
create or replace function hrp_migration.restore_keys(
    p_tables text[] default null, p_unique boolean default true
)
returns bigint
language plpgsql
as $$
declare
    v_rec record;
    v_rows bigint := 0;
begin
    perform set_config('maintenance_work_mem', '512MB', true);
    for v_rec in
        select * from m_keys
        where
            p_tables is null
            or (
                kind <> 'fk' and tbl = any(
                    select format('public.%I', t)::regclass from unnest(p_tables) as t
                )
                and (p_unique or (ddl not like 'UNIQUE%' and ddl not like 'CREATE UNIQUE%'))
            )
        order by case kind when 'key' then 1 when 'index' then 2 else 3 end, seq
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
        delete from m_keys where seq = v_rec.seq;
        v_rows := v_rows + 1;
    end loop;
    if p_tables is null then
        drop table m_keys;
    end if;
    return v_rows;
end
$$;
comment on function hrp_migration.restore_keys(text[], boolean) is
'Re-creates what drop_keys dropped (keys, then indexes, then foreign keys), with their comments:
only the keys and indexes of p_tables (without UNIQUE constraints unless p_unique), or (NULL) all
that is left.';
