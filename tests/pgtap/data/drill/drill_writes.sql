-- pgTAP tests for data/drill/drill_writes.sql: the failover drill's table, made by the file itself
-- inside this rolled-back transaction (no deploy creates it: hrp_harness.ha.writeload does, in
-- the HA
-- cluster's `postgres` database). Run twice: re-runnable, and each run leaves the table empty.
begin;
-- noqa: disable=PRS
\ir ../../setup.psql
-- noqa: enable=PRS
select plan(7);

-- noqa: disable=PRS
\ir ../../../../data/drill/drill_writes.sql
insert into public.hrp_drill_writes (n) values (1), (2);
\ir ../../../../data/drill/drill_writes.sql
-- noqa: enable=PRS

select has_table('public', 'hrp_drill_writes', 'table public.hrp_drill_writes exists');
select columns_are(
    'public', 'hrp_drill_writes', array['n', 'written_at'],
    'hrp_drill_writes has the columns n and written_at'
);
select col_type_is('public', 'hrp_drill_writes', 'n', 'bigint', 'n is bigint');
select col_is_pk('public', 'hrp_drill_writes', 'n', 'n is the primary key (hrp_drill_writes_pkey)');
select col_default_is(
    'public', 'hrp_drill_writes', 'written_at', 'clock_timestamp()',
    'written_at defaults to the commit''s clock time'
);
select is(
    (select count(*) from public.hrp_drill_writes), 0::bigint,
    'a second run of the file empties the table a drill wrote'
);
select isnt(
    obj_description('public.hrp_drill_writes'::regclass, 'pg_class'), null,
    'hrp_drill_writes has a comment'
);

select * from finish();
rollback;
