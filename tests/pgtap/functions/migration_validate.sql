-- pgTAP tests for functions/migration_validate.sql: the order-independent checksum, the accounting
-- assertion and the checksum comparison of finish_table, sequences, and --max-quarantine.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(10);

-- These steps act on whole tables: against a deployed, loaded database (`invoke verify`) the test
-- first empties them inside its own transaction, which the final rollback undoes. TRUNCATE locks
-- the tables until then (well under a second); lock_timeout makes a busy database fail the test
-- fast instead of queueing the application behind it.
set local lock_timeout = '3s';
truncate public.races, public.horses, public.predictions, public.users, public.api_credentials,
hrp_migration.cutover, hrp_migration.quarantine, hrp_migration.run_tables, hrp_migration.runs;
-- noqa: disable=PRS
\ir ../spec_mapping.psql
-- noqa: enable=PRS

create temp table a (id bigint, v text);
create temp table b (id bigint, v text);
insert into a values (1, 'x'), (2, 'y'), (3, null);
insert into b values (3, null), (1, 'x'), (2, 'y');
select is(
    hrp_migration.content_checksum('pg_temp.a', array['id', 'v'], 'true'),
    hrp_migration.content_checksum('pg_temp.b', array['id', 'v'], 'true'),
    'the checksum does not depend on row order'
);
update b set v = 'z'
where id = 2;
select isnt(
    hrp_migration.content_checksum('pg_temp.a', array['id', 'v'], 'true'),
    hrp_migration.content_checksum('pg_temp.b', array['id', 'v'], 'true'),
    'the checksum sees a changed value'
);
select alike(
    hrp_migration.content_checksum('pg_temp.a', array['id', 'v'], 'true'), '3:%',
    'the checksum starts with the row count'
);

insert into hrp_migration_stage.races values
('5', 'Gold Cup', '2024-06-20', null, 'flat', '4000', 'turf', null, null, null);
select hrp_migration.begin_run('full', 'pgtap.sqlite', null, 'UTC', 0) as run \gset
select hrp_migration.map_table('races');
select hrp_migration.apply_table('races', 'insert');
select is(
    (hrp_migration.finish_table(:run, 'races', 0) ->> 'checksum_match')::boolean, true,
    'finish_table: source and target checksums match'
);
select cmp_ok(
    nextval('races_id_seq'), '>', (select max(id) from public.races),
    'finish_table sets the sequence past the highest id'
);
select is(
    hrp_migration.source_side('races') ->> 'checksum',
    hrp_migration.content_checksum(
        'hrp_migration_work.races', hrp_migration.load_columns('races'), 'reason is null'
    ),
    'source_side: the checksum of content_checksum over the migrating work rows'
);
select throws_like(
    format(
        'select hrp_migration.finish_table(%s, %L, 0, %L)', :run, 'races',
        (hrp_migration.source_side('races') || '{"checksum": "1:0"}')::text
    ),
    'checksum mismatch for races: source side 1:0 <> target%',
    'finish_table compares the source side it is given with the target'
);
update hrp_migration_work.races set race_name = 'Tampered'
where id = 5;
delete from hrp_migration.run_tables;
select throws_like(
    format('select hrp_migration.finish_table(%s, %L, 0)', :run, 'races'),
    'checksum mismatch for races%',
    'finish_table raises on a checksum mismatch'
);
insert into hrp_migration_work.races (source_id, id, reason, norms)
values ('6', 6, 'pgtap reason', '{}');
insert into public.races (id, race_name, race_date) values (6, 'Both', '2024-01-01');
select throws_like(
    format('select hrp_migration.finish_table(%s, %L, 0)', :run, 'races'),
    'accounting failed for races%',
    'finish_table raises when a quarantined row is in the target'
);
delete from public.races
where id = 6;
update hrp_migration_work.races set race_name = 'Gold Cup'
where id = 5;
select hrp_migration.finish_table(:run, 'races', 0);
select throws_like(
    format('select hrp_migration.finish_run(%s, %L)', :run, '{}'),
    'quarantine limit exceeded: 1 rows quarantined, --max-quarantine is 0%',
    'finish_run enforces --max-quarantine'
);

select * from finish();
rollback;
