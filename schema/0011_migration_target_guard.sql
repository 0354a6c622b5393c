-- Guarding the target of the SQLite -> PostgreSQL load against overwriting what the app wrote
-- (issue 9): the row fingerprints of what each committed load left, the columns its checksums
-- cover, and the cutover mark after which every load is refused.
-- A load into a loaded database first compares the target's current content with what the last
-- committed load left (run_tables.target_checksum); when they differ the fingerprints say how
-- many rows were inserted, changed and deleted since (functions/migration_guard.sql).
-- requires: schema/0010_migration.sql
-- Versioned: append-only once released; change it by adding a new numbered file.

-- The columns a table's checksums were computed over (migration.load_columns at that load), so a
-- later comparison hashes exactly those, whatever the mapping loads by then.
alter table migration.run_tables add column if not exists checksum_columns text[];
comment on column migration.run_tables.checksum_columns is
'The target columns source_checksum and target_checksum cover, in order (NULL: runs before
schema/0011, whose columns were those of migration.load_columns).';

-- The fingerprint set a committed run left: the generation of its partition of
-- migration.row_fingerprints (NULL: runs before schema/0011, or a failed run).
alter table migration.runs add column if not exists fingerprint_generation bigint;
comment on column migration.runs.fingerprint_generation is
'Generation (partition) of migration.row_fingerprints holding the rows this committed run left in
the target; older generations are dropped when a later run commits.';

create sequence if not exists migration.fingerprint_generation_seq as bigint;
comment on sequence migration.fingerprint_generation_seq is
'Numbers the generations of migration.row_fingerprints.';

-- One 64-bit fingerprint per migrated row, the same hash_record_extended over the same columns as
-- the checksums (their sum is the target checksum). Partitioned by generation: a load writes its
-- own partition beside its transaction (from the validated work tables), the transaction adopts it
-- at commit and drops the previous one; a rolled-back load's partition is dropped by the next load.
-- No index: the comparison is one hash join over the whole table.
create table if not exists migration.row_fingerprints (
    generation bigint not null,
    table_name text not null,
    id bigint not null,
    fingerprint bigint not null
) partition by list (generation);
comment on table migration.row_fingerprints is
'Per migrated row of the last committed load: table, id and the hash of its loaded columns
(hash_record_extended, as in run_tables.target_checksum); lets a later load count the rows the app
inserted, changed or deleted since. Holds no column values.';

-- The cutover mark: once the database is live (the app writes to it) every load is refused.
create table if not exists migration.cutover (
    live boolean not null default true,
    run_id bigint not null,
    marked_at timestamptz not null default clock_timestamp(),
    marked_by text not null default current_user,
    constraint cutover_pkey primary key (live),
    constraint check_cutover_live_true check (live),
    constraint fk_cutover_run_id_runs foreign key (run_id) references migration.runs (run_id)
);
comment on table migration.cutover is
'At most one row: the database was marked live (invoke cutover, or load --final) after run_id;
every later load is refused. Deleting the row (a DBA, by hand) lifts the refusal.';
comment on column migration.cutover.run_id is 'The last committed load before the cutover.';
