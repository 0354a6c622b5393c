-- pgTAP tests for functions/maintenance_table_fingerprints.sql: every ordinary table with its row
-- count and the md5 of its rows in text order, over a small fixture; superusers only.
-- Safe against a loaded database: the fixture is rolled back.
-- noqa: disable=AL03
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(7);

select has_function(
    'hrp_maintenance', 'table_fingerprints', array[]::text[],
    'function hrp_maintenance.table_fingerprints() exists'
);

create schema pgtap_fingerprints;
create table pgtap_fingerprints.two_rows (id int, code text);
insert into pgtap_fingerprints.two_rows values (2, 'b'), (1, 'a');
create table pgtap_fingerprints.no_rows (id int);
create view pgtap_fingerprints.not_a_table as select 1 as one;

select results_eq(
    $$
    select table_name, row_count, rows_md5
    from hrp_maintenance.table_fingerprints()
    where table_schema = 'pgtap_fingerprints'
    $$,
    $$
    values
    ('no_rows', 0::bigint, md5('')),
    ('two_rows', 2::bigint, md5('(1,a)' || E'\n' || '(2,b)'))
    $$,
    'each table: its row count and the md5 of its rows as text in text order; views left out'
);
select ok(
    exists (
        select 1 from hrp_maintenance.table_fingerprints()
        where table_schema = 'public' and table_name = 'races'
    ),
    'the spec''s tables are fingerprinted'
);
select is_empty(
    $$
    select 1
    from hrp_maintenance.table_fingerprints()
    where table_schema in ('pg_catalog', 'information_schema') or table_schema like 'pg\_toast%'
    $$,
    'no catalog table is fingerprinted'
);

update pgtap_fingerprints.two_rows set code = 'c'
where id = 2;
select isnt(
    (
        select f.rows_md5 from hrp_maintenance.table_fingerprints() as f
        where f.table_schema = 'pgtap_fingerprints' and f.table_name = 'two_rows'
    ),
    md5('(1,a)' || E'\n' || '(2,b)'),
    'a changed value changes the table''s md5'
);
select function_privs_are(
    'hrp_maintenance', 'table_fingerprints', array[]::text[], 'public', array[]::text[],
    'PUBLIC may not execute table_fingerprints (superusers only)'
);
select isnt(
    obj_description('hrp_maintenance.table_fingerprints()'::regprocedure, 'pg_proc'), null,
    'table_fingerprints has a comment'
);

select * from finish();
rollback;
