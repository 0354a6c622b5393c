-- pgTAP tests for schema/0011_migration_target_guard.sql: the row fingerprints (partitioned by
-- generation), the checksum columns of run_tables, the fingerprint generation of runs, and the
-- single-row cutover mark.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(14);

select has_table(
    'hrp_migration', 'row_fingerprints',
    'table hrp_migration.row_fingerprints exists'
);
select is(
    (
        select relkind::text from pg_class
        where oid = 'hrp_migration.row_fingerprints'::regclass
    ), 'p',
    'row_fingerprints is partitioned'
);
select is(
    (select pg_get_partkeydef('hrp_migration.row_fingerprints'::regclass)), 'LIST (generation)',
    '... by list of generation'
);
select columns_are(
    'hrp_migration', 'row_fingerprints', array['generation', 'table_name', 'id', 'fingerprint'],
    'row_fingerprints holds ids and hashes, no column value'
);
select col_type_is(
    'hrp_migration', 'row_fingerprints', 'fingerprint', 'bigint', 'fingerprint is bigint'
);
select has_sequence(
    'hrp_migration', 'fingerprint_generation_seq',
    'sequence hrp_migration.fingerprint_generation_seq exists'
);
select has_column(
    'hrp_migration', 'run_tables', 'checksum_columns',
    'run_tables records the columns its checksums cover'
);
select col_type_is(
    'hrp_migration', 'run_tables', 'checksum_columns', 'text[]', 'checksum_columns is text[]'
);
select has_column(
    'hrp_migration', 'runs', 'fingerprint_generation', 'runs records its fingerprint generation'
);
select has_table('hrp_migration', 'cutover', 'table hrp_migration.cutover exists');
select fk_ok(
    'hrp_migration', 'cutover', 'run_id', 'hrp_migration', 'runs', 'run_id',
    'cutover.run_id references runs'
);

set local lock_timeout = '3s';
truncate hrp_migration.cutover,
hrp_migration.quarantine,
hrp_migration.run_tables,
hrp_migration.runs;
insert into hrp_migration.runs (mode, source_path, source_timezone, status)
values ('full', 'pgtap.sqlite', 'UTC', 'committed');
insert into hrp_migration.cutover (run_id) select max(run_id) from hrp_migration.runs;
select is(
    (select marked_by from hrp_migration.cutover), current_user::text,
    'the cutover records who marked it'
);
select throws_ok(
    $$insert into hrp_migration.cutover (run_id) select max(run_id) from hrp_migration.runs$$,
    '23505',
    null, 'the cutover mark is a single row'
);
select throws_ok(
    $$insert into hrp_migration.cutover (live, run_id)
      select false, max(run_id) from hrp_migration.runs$$,
    '23514', null, 'the cutover row says live, never anything else'
);

select * from finish();
rollback;
