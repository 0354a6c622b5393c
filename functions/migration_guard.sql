-- The load's guard of the target (issue 9): a load never silently overwrites what the app wrote.
-- target_changes() compares the target's current content with what the last committed load left
-- (its recorded target checksums, and its row fingerprints for the counts); guard_target() locks
-- the five tables against writes, refuses a live database (hrp_migration.cutover), a database
-- holding rows no load wrote, and a loaded one the app changed since (unless the DBA discards
-- the changes).
-- The loader calls guard_target once before its work and again as the first step of its
-- transaction, so nothing can change between the check and the commit. Fingerprints:
-- new_fingerprint_generation() and, per table, source_side(table, generation) write them beside the
-- transaction; finish_run() adopts the generation and drops the older ones.
-- requires: schema/0011_migration_target_guard.sql, functions/migration_validate.sql
-- (content_checksum), functions/migration_load.sql (load_columns).
-- Repeatable (CREATE OR REPLACE).

create or replace function hrp_migration.last_committed_run()
returns bigint
language sql stable
as $$
    select max(r.run_id) from hrp_migration.runs as r where r.status = 'committed'
$$;
comment on function hrp_migration.last_committed_run() is
'The run_id of the last committed load (NULL: no load ever committed here).';

create or replace function hrp_migration.new_fingerprint_generation()
returns bigint
language plpgsql
as $$
declare
    v_generation bigint := nextval('hrp_migration.fingerprint_generation_seq');
begin
    execute format(
        'create table hrp_migration.%I partition of hrp_migration.row_fingerprints for values in (%s)',
        'row_fingerprints_' || v_generation, v_generation
    );
    return v_generation;
end
$$;
comment on function hrp_migration.new_fingerprint_generation() is
'Creates the partition of hrp_migration.row_fingerprints for a new load; returns its generation.';

-- Per table of the last committed run: the checksum it recorded and the current one over the same
-- columns; where they differ, the rows inserted, changed and deleted since (one hash join of the
-- table with the run's fingerprints; NULL counts when that run has none).
create or replace function hrp_migration.target_changes()
returns table (
    table_name text, run_id bigint, checksum_then text, checksum_now text,
    inserted_rows bigint, changed_rows bigint, deleted_rows bigint
)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_run bigint := hrp_migration.last_committed_run();
    v_generation bigint;
    v_table record;
    v_cols text[];
begin
    if v_run is null then
        return;
    end if;
    select r.fingerprint_generation into v_generation from hrp_migration.runs as r where r.run_id = v_run;
    for v_table in
        select t.table_name as name, t.target_checksum, t.checksum_columns
        from hrp_migration.run_tables as t
        where t.run_id = v_run
        order by t.table_name
    loop
        v_cols := v_table.checksum_columns;  -- recorded by every run (schema/0012 filled older ones)
        table_name := v_table.name;
        run_id := v_run;
        checksum_then := v_table.target_checksum;
        inserted_rows := null;
        changed_rows := null;
        deleted_rows := null;
        begin
            checksum_now := hrp_migration.content_checksum(
                format('public.%I', v_table.name), v_cols, 'true'
            );
        exception when undefined_column then
            raise exception 'cannot compare public.% with load run %: a column it loaded (%) is gone',
                v_table.name, v_run, array_to_string(v_cols, ', ');
        end;
        if checksum_now is distinct from checksum_then and v_generation is not null then
            execute format(
                'select count(*) filter (where f.id is null),
                        count(*) filter (where f.id = t.id and f.fingerprint <> t.fingerprint),
                        count(*) filter (where t.id is null)
                 from (select id, hash_record_extended(row(%s), 0) as fingerprint
                       from public.%I) as t
                 full join (select id, fingerprint from hrp_migration.row_fingerprints
                            where generation = $1 and table_name = $2) as f
                     on f.id = t.id',
                (select string_agg(format('%I', c), ', ') from unnest(v_cols) as c), v_table.name
            ) into inserted_rows, changed_rows, deleted_rows using v_generation, v_table.name;
        end if;
        return next;
    end loop;
end
$$;
comment on function hrp_migration.target_changes() is
'Per table of the last committed load: the checksum it left and the current one (same columns),
and where they differ the rows inserted, changed and deleted since (NULL: no fingerprints).';

-- Called twice by a load: before its work (in a short transaction of its own: a fast refusal) and
-- as the first step of its transaction (the locks then hold until the commit). Returns a line for
-- the report; raises when the load must not go on.
create or replace function hrp_migration.guard_target(p_discard_changes boolean)
returns text
language plpgsql
as $$
declare
    v_lock_timeout text := current_setting('lock_timeout');
    v_cutover record;
    v_run bigint := hrp_migration.last_committed_run();
    v_rows text;
    v_changes text;
begin
    -- no app write between this check and the load's commit (reads go on); an app transaction that
    -- holds the tables makes the load fail after 10 s rather than wait behind it unseen
    perform set_config('lock_timeout', '10s', true);
    lock table public.races, public.horses, public.users, public.api_credentials,
    public.predictions in share row exclusive mode;
    perform set_config('lock_timeout', v_lock_timeout, true);
    select c.run_id, c.marked_at, c.marked_by into v_cutover from hrp_migration.cutover as c;
    if found then
        raise exception using
            message = format(
                'the database is live: marked at %s by %s after load run %s (invoke cutover or '
                'load --final); every load is refused, so nothing the app wrote is overwritten',
                v_cutover.marked_at, v_cutover.marked_by, v_cutover.run_id
            ),
            hint = 'only if the app never wrote here: delete from hrp_migration.cutover';
    end if;
    if v_run is null then
        select string_agg(format('%s (%s rows)', n.name, n.total), ', ') into v_rows
        from (
            select 'races' as name, count(*) as total from public.races
            union all select 'horses', count(*) from public.horses
            union all select 'users', count(*) from public.users
            union all select 'api_credentials', count(*) from public.api_credentials
            union all select 'predictions', count(*) from public.predictions
        ) as n
        where n.total > 0;
        if v_rows is not null then
            raise exception 'the target tables hold rows no migration run loaded: %; refusing to '
                'merge a SQLite source into them (use an empty database)', v_rows;
        end if;
        return 'target empty, never loaded';
    end if;
    select string_agg(
        format(
            '%s: %s', c.table_name,
            case
                when c.inserted_rows is null
                    then format('content differs (%s rows then, %s now; no row fingerprints of '
                                'run %s to count changed rows)',
                                split_part(c.checksum_then, ':', 1),
                                split_part(c.checksum_now, ':', 1), c.run_id)
                else format('%s inserted, %s changed, %s deleted',
                            c.inserted_rows, c.changed_rows, c.deleted_rows)
            end
        ), '; ' order by c.table_name
    ) into v_changes
    from hrp_migration.target_changes() as c
    where c.checksum_now is distinct from c.checksum_then;
    if v_changes is null then
        return format('target unchanged since load run %s', v_run);
    end if;
    if p_discard_changes then
        return format('target changed since load run %s, changes discarded: %s', v_run, v_changes);
    end if;
    raise exception using
        message = format(
            'the target changed since load run %s (the app wrote to it?): %s. A load would '
            'overwrite or delete these rows; refused', v_run, v_changes
        ),
        hint = 'to overwrite them with the source anyway: load --discard-target-changes';
end
$$;
comment on function hrp_migration.guard_target(boolean) is
'Locks the five tables against writes (until the end of the transaction) and refuses a load into
a live database, into tables holding rows no load wrote, or into a target the app changed since
the last load (unless p_discard_changes); returns a line describing the target.';

-- invoke cutover: the database goes live after the last committed load.
create or replace function hrp_migration.mark_live()
returns bigint
language plpgsql
as $$
declare
    v_run bigint := hrp_migration.last_committed_run();
begin
    if v_run is null then
        raise exception 'no committed load in this database: nothing to cut over (load first)';
    end if;
    insert into hrp_migration.cutover (run_id) values (v_run)
    on conflict (live) do nothing;
    return (select c.run_id from hrp_migration.cutover as c);
end
$$;
comment on function hrp_migration.mark_live() is
'Marks the database live after its last committed load (idempotent); returns that run.';
