-- pgTAP tests for functions/migration_guard.sql and the unique-key moves of migration_load.sql:
-- the target as a load left it (checksums and fingerprints of a committed run), then changed "by
-- the app": the counts of target_changes, each refusal of guard_target, the cutover mark, the
-- fingerprint generations' life cycle, and keys swapped between rows applied by one upsert.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(22);

-- Whole-table steps: see tests/pgtap/functions/migration_load.sql for why the tables are emptied
-- inside this transaction (undone by the final rollback) and why lock_timeout.
set local lock_timeout = '3s';
truncate public.races, public.horses, public.predictions, public.users, public.api_credentials,
hrp_migration.cutover, hrp_migration.quarantine, hrp_migration.run_tables, hrp_migration.runs;
-- noqa: disable=PRS
\ir ../spec_mapping.psql
-- noqa: enable=PRS

select is(
    hrp_migration.guard_target(false), 'target empty, never loaded',
    'guard: an empty target'
);
select throws_ok(
    $$select hrp_migration.mark_live()$$, 'P0001',
    'no committed load in this database: nothing to cut over (load first)',
    'mark_live needs a committed load'
);
insert into public.races (id, race_name, race_date) values (1, 'Gold Cup', '2024-06-20');
select throws_like(
    $$select hrp_migration.guard_target(true)$$,
    'the target tables hold rows no migration run loaded: races (1 rows)%',
    'guard: rows no load wrote are refused, even when told to discard changes'
);

-- what a committed load left: two races, a horse, its checksums and row fingerprints
insert into public.races (id, race_name, race_date) values (2, 'Derby', '2024-06-01');
insert into public.horses (id, horse_name) values (1, 'Frankel');
insert into hrp_migration.runs (mode, source_path, source_timezone, status)
values ('full', 'pgtap.sqlite', 'UTC', 'committed');
select max(run_id) as run from hrp_migration.runs \gset
select hrp_migration.new_fingerprint_generation() as generation \gset
do $left$
declare
    v_table text;
    v_cols text;
begin
    foreach v_table in array array['races', 'horses', 'users', 'api_credentials', 'predictions'] loop
        v_cols := (
            select string_agg(format('%I', c), ', ') from unnest(hrp_migration.load_columns(v_table)) as c
        );
        execute format(
            'insert into hrp_migration.run_tables (run_id, table_name, source_rows, migrated_rows,
                 quarantined_rows, target_checksum, checksum_columns)
             select r.run_id, %1$L, n.total, n.total, 0,
                 hrp_migration.content_checksum(%2$L, hrp_migration.load_columns(%1$L), ''true''),
                 hrp_migration.load_columns(%1$L)
             from (select max(run_id) as run_id from hrp_migration.runs) as r,
                 (select count(*) as total from public.%1$I) as n',
            v_table, 'public.' || v_table
        );
        execute format(
            'insert into hrp_migration.row_fingerprints
             select currval(''hrp_migration.fingerprint_generation_seq''), %1$L, id,
                 hash_record_extended(row(%2$s), 0)
             from public.%1$I',
            v_table, v_cols
        );
    end loop;
end
$left$;
update hrp_migration.runs set fingerprint_generation = :generation
where run_id = :run;

select is(
    hrp_migration.guard_target(false), format('target unchanged since load run %s', :run),
    'guard: a target as the last load left it'
);
select is(
    (
        select count(*)::int from hrp_migration.target_changes()
        where checksum_now = checksum_then
    ), 5,
    'target_changes: every table as the load left it'
);

-- "the app" writes: a race inserted, one renamed, the horse deleted
insert into public.races (id, race_name, race_date) values (3, 'App Race', '2024-07-01');
update public.races set race_name = 'Gold Cup (renamed)'
where id = 1;
delete from public.horses
where id = 1;
select results_eq(
    $$select table_name, inserted_rows, changed_rows, deleted_rows
      from hrp_migration.target_changes()
      where checksum_now is distinct from checksum_then order by table_name$$,
    $$values ('horses', 0::bigint, 0::bigint, 1::bigint),
             ('races', 1::bigint, 1::bigint, 0::bigint)$$,
    'target_changes: the rows inserted, changed and deleted since, per table'
);
select throws_ok(
    $$select hrp_migration.guard_target(false)$$, 'P0001',
    format(
        'the target changed since load run %s (the app wrote to it?): horses: 0 inserted, '
        '0 changed, 1 deleted; races: 1 inserted, 1 changed, 0 deleted. A load would overwrite '
        'or delete these rows; refused', :run
    ),
    'guard: a target the app changed is refused, naming tables and counts'
);
select is(
    hrp_migration.guard_target(true),
    format(
        'target changed since load run %s, changes discarded: horses: 0 inserted, 0 changed, '
        '1 deleted; races: 1 inserted, 1 changed, 0 deleted', :run
    ),
    'guard: told to discard, it lets the load go on and says what is discarded'
);
select is(
    (
        select count(*)::int from pg_locks
        where
            pid = pg_backend_pid() and mode = 'ShareRowExclusiveLock'
            and relation in (
                'public.races'::regclass, 'public.horses'::regclass, 'public.users'::regclass,
                'public.api_credentials'::regclass, 'public.predictions'::regclass
            )
    ), 5,
    'guard: the five tables are locked against writes until the end of the transaction'
);
update hrp_migration.runs set fingerprint_generation = null
where run_id = :run;
select throws_like(
    $$select hrp_migration.guard_target(false)$$,
    '%horses: content differs (1 rows then, 0 now; no row fingerprints of run %',
    'guard: without fingerprints it still refuses, on the checksums'
);
update hrp_migration.runs set fingerprint_generation = :generation
where run_id = :run;

-- cutover
select is(hrp_migration.mark_live(), :run::bigint, 'mark_live: live after the last committed load');
select is(hrp_migration.mark_live(), :run::bigint, 'mark_live is idempotent');
select throws_like(
    $$select hrp_migration.guard_target(true)$$, 'the database is live: marked at %',
    'guard: a live database refuses every load, discard or not'
);
delete from hrp_migration.cutover;

-- fingerprint generations: finish_run adopts its own and drops the others; clear_stage drops a
-- generation no committed run adopted
insert into hrp_migration.runs (mode, source_path, source_timezone) values (
    'incremental', 'pgtap.sqlite', 'UTC'
);
select max(run_id) as run2 from hrp_migration.runs \gset
select hrp_migration.new_fingerprint_generation() as generation2 \gset
select hrp_migration.finish_run(:run2, '{}', :generation2, true);
select is(
    (
        select array_agg(c.relname::text) from pg_inherits as i
        inner join pg_class as c on i.inhrelid = c.oid
        where i.inhparent = 'hrp_migration.row_fingerprints'::regclass
    ), array['row_fingerprints_' || :generation2],
    'finish_run adopts its fingerprint generation and drops the older one'
);
select is(
    (
        select fingerprint_generation from hrp_migration.runs
        where run_id = :run2
    ), :generation2::bigint,
    'finish_run records the generation with the run'
);
select is(
    (select run_id from hrp_migration.cutover),
    :run2::bigint,
    'finish_run(..., p_final) marks the database live'
);
select hrp_migration.new_fingerprint_generation() as generation3 \gset
select hrp_migration.clear_stage();
select is(
    (
        select array_agg(c.relname::text) from pg_inherits as i
        inner join pg_class as c on i.inhrelid = c.oid
        where i.inhparent = 'hrp_migration.row_fingerprints'::regclass
    ), array['row_fingerprints_' || :generation2],
    'clear_stage drops a generation no committed run adopted (a failed load''s)'
);
delete from hrp_migration.cutover;

-- unique keys moving between rows
select is(
    (
        select
            array_agg(
                k.table_name || ': ' || array_to_string(k.key_columns, ', ')
                order by k.table_name || ': ' || array_to_string(k.key_columns, ', ')
            )
        from hrp_migration.moving_keys() as k
    ),
    (
        select array_agg(c.relname || ': ' || k.cols order by c.relname || ': ' || k.cols)
        from pg_index as x
        inner join pg_class as c on x.indrelid = c.oid
        cross join
            lateral (
                select string_agg(a.attname::text, ', ' order by k.n) as cols
                from unnest(x.indkey::int2[]) with ordinality as k (attnum, n)
                inner join pg_attribute as a on x.indrelid = a.attrelid and k.attnum = a.attnum
            ) as k
        where
            c.relnamespace = 'public'::regnamespace and x.indisunique and not x.indisprimary
            and c.relname in ('races', 'horses', 'users', 'api_credentials', 'predictions')
    ),
    'moving_keys lists every UNIQUE key of the five tables, no more'
);
truncate public.predictions, public.races, public.horses, hrp_migration_stage.horses;
select set_config('hrp.source_timezone', 'UTC', true);
insert into hrp_migration_stage.horses (id, horse_name) values ('1', 'Frankel'),
('2', 'Enable'),
('3', 'Dubai');
select hrp_migration.map_table('horses');
select hrp_migration.apply_table('horses', 'insert');
truncate hrp_migration_stage.horses;
-- a swap (1 <-> 2) and a value freed by a row that keeps its id but moves (3 -> 'Frankel' is taken
-- by 1 until 1 moves)
insert into hrp_migration_stage.horses (id, horse_name) values ('1', 'Enable'),
('2', 'Dubai'),
('3', 'Frankel');
select hrp_migration.map_table('horses');
select is(
    hrp_migration.displace_moving_keys('horses'), 3::bigint,
    'displace_moving_keys moves the key of every row whose key changes'
);
select is(
    (
        select count(*)::int from public.horses
        where horse_name like '~hrp-moving-%'
    ), 3,
    '... to placeholders unique per id'
);
select lives_ok(
    $$select hrp_migration.apply_table('horses', 'upsert')$$,
    'an upsert applies names cycled among existing rows'
);
select results_eq(
    $$select id, horse_name::text from public.horses order by id$$,
    $$values (1::bigint, 'Enable'), (2::bigint, 'Dubai'), (3::bigint, 'Frankel')$$,
    '... every row holds its new name, none was deleted'
);

select * from finish();
rollback;
