-- 0031_schema_names_hrp_prefix: one naming rule for the project's schemas (issue 12): each is
-- hrp_<domain>, like the roles (hrp_app, hrp_admin, hrp_readonly, hrp_monitor) and the metrics
-- (hrp_*). Renames, never drops:
--   migration          -> hrp_migration           (schema/0010: runs, quarantine, fingerprints)
--   migration_stage    -> hrp_migration_stage     (schema/0010: pgloader's all-text tables)
--   migration_work     -> hrp_migration_work      (schema/0012: the load's typed work tables)
--   migration_unmapped -> hrp_migration_unmapped  (schema/0012: source tables no target takes)
--   maintenance        -> hrp_maintenance         (schema/0020: job schedule, runs, findings)
-- hrp_deploy (the apply ledger), hrp_anonymize and hrp_monitor follow the rule already. public,
-- extensions and cron are not the project's to name (README, "Schema notes").
-- A rename keeps every object, row, grant, default privilege, comment, extension member and
-- dependency: they follow the schema's OID. What names the schemas as text follows too:
--   - the repeatable files (functions/, views/) name the new schemas; deploy.plan runs them after
--     this file, so on an upgrade they re-create their objects in place;
--   - the maintenance schedule names its jobs' functions: its commands are updated here; deploy's
--     last step hands them to pg_cron (cron.schedule_in_database updates the command of a job of
--     the same name), so a job never keeps calling the old schema after a deploy.
-- The earlier versioned files keep the old names (append-only): on a fresh database they create
-- the old schemas and this file renames them right after.
-- Re-runnable by guard: a schema is renamed only when the old name exists and the new one does
-- not; when both exist the file stops, naming them (merging two schemas is a DBA's decision).
-- requires: schema/0010_migration.sql, schema/0012_migration_mapping.sql,
-- schema/0020_maintenance.sql, schema/0021_maintenance_schedule.sql

do $rename$
declare
    pair record;
begin
    for pair in
        select r.old_name, r.new_name
        from (
            values
            ('migration', 'hrp_migration'),
            ('migration_stage', 'hrp_migration_stage'),
            ('migration_work', 'hrp_migration_work'),
            ('migration_unmapped', 'hrp_migration_unmapped'),
            ('maintenance', 'hrp_maintenance')
        ) as r (old_name, new_name)
    loop
        if to_regnamespace(pair.old_name) is null then
            continue;
        end if;
        if to_regnamespace(pair.new_name) is not null then
            raise exception 'schemas % and % both exist: refusing to rename one onto the other',
            pair.old_name, pair.new_name
                using hint = 'move what ' || pair.old_name || ' holds into ' || pair.new_name
                || ' (or drop the empty one), then apply again';
        end if;
        execute format('alter schema %I rename to %I', pair.old_name, pair.new_name);
    end loop;
end;
$rename$;

-- The jobs' commands: `select maintenance.<job>()` as schema/0021 wrote them. Only commands of
-- exactly that form change; a command a DBA rewrote is left as it is.
update hrp_maintenance.schedule
set command = 'select hrp_maintenance.' || substring(command from '^select maintenance\.(.*)$')
where command ~ '^select maintenance\.[a-z_]+\(\)$';
