-- anonymize: the functions of the non-production copy (compliance: "PII data anonymized in
-- non-production"), and its schema hrp_anonymize: pseudonym(), the deterministic stand-in the
-- anonymising views (views/anonymize.sql) put in place of PII, and reset_sequences(), which
-- `invoke anonymize` runs on the target after it COPYs from those views.
-- Private to the superuser: nobody else gets USAGE on hrp_anonymize.
-- requires: nothing (reset_sequences() reads the catalogs when it runs)

create schema if not exists hrp_anonymize;
revoke all on schema hrp_anonymize from public;

comment on schema hrp_anonymize is
'Anonymising views over schema public for non-production copies (invoke anonymize).';

create or replace function hrp_anonymize.pseudonym(p_kind text, p_id bigint)
returns text
language sql
immutable
strict
set search_path = pg_catalog, pg_temp
return p_kind || '_' || p_id::text;

comment on function hrp_anonymize.pseudonym(text, bigint) is
'Deterministic stand-in for a PII value: kind_id (unique per kind because ids are).';

create or replace function hrp_anonymize.reset_sequences()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    serial record;
begin
    -- After a COPY with explicit ids, each column's sequence continues after the highest id.
    for serial in
        select
            c.oid::regclass::text as table_name,
            a.attname as column_name,
            pg_get_serial_sequence(c.oid::regclass::text, a.attname) as sequence_name
        from pg_catalog.pg_class as c
        inner join pg_catalog.pg_attribute as a on c.oid = a.attrelid
        where
            c.relnamespace = 'public'::regnamespace
            and c.relkind in ('r', 'p')
            and a.attnum > 0
            and not a.attisdropped
            and pg_get_serial_sequence(c.oid::regclass::text, a.attname) is not null
    loop
        execute format(
            'select setval(%L, coalesce((select max(%I) from %s), 0) + 1, false)',
            serial.sequence_name, serial.column_name, serial.table_name
        );
    end loop;
end;
$$;

comment on function hrp_anonymize.reset_sequences() is
'Moves every serial sequence of schema public past its column''s highest value (after a copy).';
