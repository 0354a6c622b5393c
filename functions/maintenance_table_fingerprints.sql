-- maintenance_table_fingerprints: one row per ordinary table of the current database with its row
-- count and an md5 of all its rows (as text, in text order), so two servers' copies can be
-- compared table by table. Used by `invoke backup.verify`
-- (hrp_harness.ha.backup.fingerprints) on the
-- source and on the restored copy, the weekly recovery test of the maintenance window. Reads every
-- table in full: meant for the recovery test, not for hot paths.
-- Runs with its caller's rights; only superusers may execute it, like every maintenance function.
-- requires: schema/0020_maintenance.sql (its schema; catalogs and query_to_xml otherwise)

create or replace function hrp_maintenance.table_fingerprints()
returns table (table_schema text, table_name text, row_count bigint, rows_md5 text)
language sql
stable
as $$
    with user_tables as (
        select
            n.nspname::text as table_schema,
            c.relname::text as table_name,
            query_to_xml(
                format(
                    'select count(*) as row_count, '
                    'md5(coalesce(string_agg(t::text, E''\n'' order by t::text), '''')) as rows_md5 '
                    'from %I.%I as t',
                    n.nspname, c.relname
                ),
                false, true, ''
            ) as fingerprint
        from pg_catalog.pg_class as c
        inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
        where
            c.relkind = 'r'
            and n.nspname not in ('pg_catalog', 'information_schema')
            and n.nspname not like 'pg\_toast%'
    )

    select
        table_schema,
        table_name,
        (xpath('/row/row_count/text()', fingerprint))[1]::text::bigint as row_count,
        (xpath('/row/rows_md5/text()', fingerprint))[1]::text as rows_md5
    from user_tables
    order by table_schema, table_name;
$$;

comment on function hrp_maintenance.table_fingerprints() is
'Every ordinary table of this database with its row count and the md5 of its rows as text in
text order: what backup.verify compares between the source and a restored copy.';

revoke execute on function hrp_maintenance.table_fingerprints() from public;
