-- pgTAP tests for functions/migration_load.sql: one small load done by the SQL steps alone —
-- mapping, orphans, duplicates, quarantine sync (idempotent), insert and merge with the update
-- trigger kept off the source timestamps.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(26);

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

insert into hrp_migration_stage.races values
(
    '1', 'Gold Cup', '2024-06-20', null, 'flat', '4000', 'turf', null, '2024-01-01 00:00:00',
    '2024-01-02 00:00:00'
),
('2', 'No Date', null, null, null, null, null, null, null, null);
insert into hrp_migration_stage.horses values
('1', 'Frankel', '5', '500', null, null, null, null, '2024-01-03 00:00:00'),
('2', 'FRANKEL', '5', '500', null, null, null, null, null);
insert into hrp_migration_stage.predictions values
('1', '1', '1', '0.5', '0.5', 'v1', null),
('2', '2', '1', '0.5', '0.5', 'v1', null),
('3', '1', '2', '0.5', '0.5', 'v1', null),
('4', '1', '1', '0.5', '0.5', 'V1', null);
insert into hrp_migration_stage.hrp_preflight_rejects values
(
    'users',
    '9',
    'username: NUL byte in text',
    '{"id": "9", "username": {"$hex": "6100", "$type": "text"}}'
);

select hrp_migration.begin_run('full', 'pgtap.sqlite', null, 'UTC', null) as run \gset
select is(hrp_migration.map_table('races'), 2::bigint, 'map_table maps every staged row');
select hrp_migration.map_table('horses');
select is(hrp_migration.mark_duplicates('horses'), 1::bigint, 'a case-variant duplicate is marked');
select is(hrp_migration.map_table('users'), 1::bigint, 'map_table adds the preflight rejects');
select hrp_migration.map_table('api_credentials');
-- mapped in parts (ranges of the staged table's blocks): a part missing is a loss map_end refuses
select hrp_migration.map_begin('predictions');
select hrp_migration.map_rows('predictions', 0, 2);
select throws_ok(
    $$select hrp_migration.map_end('predictions')$$, 'P0001',
    'mapping lost rows of predictions: 4 staged or rejected, 0 in the work table',
    'map_end refuses a work table missing staged rows'
);
select hrp_migration.map_begin('predictions');
select hrp_migration.map_rows('predictions', 0, 1);
select is(
    hrp_migration.map_end('predictions', false), 4::bigint,
    'map_end without analyze: every row'
);
select is(
    (
        select reltuples from pg_class
        where oid = 'hrp_migration_work.predictions'::regclass
    ), -1::real,
    'map_end(..., false) leaves the work table without statistics'
);
select is(
    (
        select count(*)::int from hrp_migration_work.predictions
        where reason is not null
    ), 0,
    'map_rows applies the rules of each row only (no orphans yet)'
);
select is(hrp_migration.mark_orphans(), 2::bigint, 'mark_orphans quarantines the orphans');
select is(
    (
        select count(*)::int from hrp_migration_work.predictions
        where reason like '%parent%'
    ), 2,
    '... naming their parent'
);
-- enough rows for several blocks: the parts split them between them, none twice, none left out
insert into hrp_migration_stage.predictions (
    id, race_id, horse_id, prediction_value, confidence, algorithm_version
)
select
    (1000 + i)::text as id,
    '1' as race_id,
    '1' as horse_id,
    '0.5' as prediction_value,
    '0.5' as confidence,
    'filler-' || i as algorithm_version
from generate_series(1, 1000) as i;
select hrp_migration.map_begin('predictions');
select hrp_migration.map_rows('predictions', 0, 2) as part0 \gset
select hrp_migration.map_rows('predictions', 1, 2) as part1 \gset
select ok(
    :part0 > 0 and :part1 > 0
    and (
        select count(distinct source_id) = 1004 and count(*) = 1004
        from hrp_migration_work.predictions
    ),
    'map_rows: two parts of the blocks map every row once, each part some'
);
delete from hrp_migration_stage.predictions
where id::int > 1000;
select throws_ok(
    $$select hrp_migration.map_rows('horses', 0, 2)$$, 'P0001',
    'map_rows: only predictions is mapped in parts, not horses',
    'only predictions is mapped in parts'
);
select throws_ok(
    $$select hrp_migration.map_rows('predictions', 2, 2)$$, 'P0001',
    'map_rows: part 2 of 2 does not exist',
    'map_rows refuses a part that does not exist'
);
-- map_rows tries the canonical-value shortcut first: a value no cast accepts (Feb 29 of
-- a common year) raises there, and the part is mapped again by the rules, nothing lost
insert into hrp_migration_stage.predictions values
('5', '1', '1', '0.5', '0.5', 'v5', '2023-02-29 08:00:00');
select hrp_migration.map_begin('predictions');
select is(
    hrp_migration.map_rows('predictions', 0, 1), 5::bigint,
    'map_rows: a value the shortcut cannot cast falls back to the rules for the part'
);
select is(
    (
        select reason from hrp_migration_work.predictions
        where id = 5
    ),
    'created_at: unparseable timestamp; updated_at: unparseable timestamp',
    'map_rows: ... and the rules quarantine that row with its reason'
);
delete from hrp_migration_stage.predictions
where id = '5';
select hrp_migration.map_table('predictions');
select hrp_migration.mark_orphans();
select is(
    hrp_migration.mark_duplicates('predictions'), 1::bigint,
    'duplicate predictions are marked'
);
select results_eq(
    $$select id, reason from hrp_migration_work.predictions where reason is not null order by id$$,
    $$values (2::bigint, 'race_id: parent races id 2 is quarantined'),
             (3::bigint, 'horse_id: parent horses id 2 is quarantined'),
             (4::bigint, 'duplicate of predictions id 1 on (race_id, horse_id, lower(algorithm_version))'
                         || ' (lowest id kept)')$$,
    'orphans name their parent, duplicates name the row kept'
);
select
    is(
        hrp_migration.sync_quarantine(:run, 'users'),
        1::bigint,
        'sync_quarantine: the preflight reject'
    );
select is(
    (
        select source_row -> 'username' from hrp_migration.quarantine
        where source_table = 'users'
    ),
    '{"$hex": "6100", "$type": "text"}'::jsonb,
    'the unloadable value is kept in escaped form'
);
select hrp_migration.sync_quarantine(:run, 'users');
select is(
    (
        select count(*)::int from hrp_migration.quarantine
        where source_table = 'users'
    ), 1,
    'sync_quarantine is idempotent'
);
select hrp_migration.apply_table(t, 'insert')
from unnest(array['races', 'horses', 'predictions']) as t;
select results_eq(
    $$select id from public.predictions order by id$$, $$values (1::bigint)$$,
    'only the migrating prediction is inserted'
);
-- the bulk path inserts predictions while their duplicates are still being marked: a row marked
-- after its insert leaves the target again
update hrp_migration_work.predictions set reason = 'pgtap: marked after the insert'
where id = 1;
select is(
    hrp_migration.remove_quarantined('predictions'), 1::bigint,
    'remove_quarantined deletes a row quarantined after its insert'
);
select is(
    current_setting('hrp.inserted_predictions', true), null,
    '... and says so by its result only (no session setting carries counts)'
);
update hrp_migration_work.predictions set reason = null
where id = 1;
select hrp_migration.apply_table('predictions', 'insert');
-- merge: a changed source row updates the target, the trigger does not touch updated_at
update hrp_migration_work.horses set weight = 555.5
where id = 1;
select is(
    hrp_migration.apply_table('horses', 'upsert'),
    '{"inserted": 0, "updated": 1, "deleted": 0}'::jsonb,
    'upsert updates the changed row, and returns its counts'
);
select results_eq(
    $$select weight, updated_at from public.horses where id = 1$$,
    $$values (555.5::numeric(5, 1), '2024-01-03 00:00:00+00'::timestamptz)$$,
    'the source updated_at is kept through an update'
);
delete from hrp_migration_work.predictions
where id = 1;
select
    is(
        hrp_migration.apply_table('predictions', 'delete') -> 'deleted',
        '1'::jsonb,
        'delete removes a row gone from the source'
    );
select is(
    (
        select count(*)::int
        from pg_trigger
        where
            tgrelid = 'public.horses'::regclass
            and not tgisinternal and tgenabled = 'O'
    ),
    1, 'the update trigger is enabled again after the load step'
);

select * from finish();
rollback;
