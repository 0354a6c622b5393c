-- table_fingerprints: one row per ordinary table of the current database with its row count and an
-- md5 of all its rows (as text, in text order), so two servers' copies can be compared table by
-- table. Used by `invoke backup.verify` (hrp_harness.backup.fingerprints) on the source and on the
-- restored copy. Reads every table in full: meant for the weekly recovery test, not for hot paths.
-- requires: nothing (catalogs and query_to_xml only).

with user_tables as (
    select
        n.nspname as table_schema,
        c.relname as table_name,
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
