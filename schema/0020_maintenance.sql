-- 0020_maintenance: routine maintenance inside the database (issue 15): the `maintenance` schema
-- with the schedule of the jobs (data: schema/0021_maintenance_schedule.sql), one row per job run
-- and one table of findings (time, kind, object, figures) that the jobs write and
-- `invoke maintenance.report` reads. The jobs are functions/maintenance_*.sql; pg_cron runs them
-- (deploy schedules them from the database `postgres` with cron.schedule_in_database).
-- Only superusers reach the schema: the jobs run as the superuser that scheduled them.
-- requires: nothing.
-- Versioned: append-only once released; change it by adding a new numbered file.

create schema if not exists maintenance;
comment on schema maintenance is
'Routine maintenance (issue 15): job schedule, job runs, findings; the job functions and helpers.';

create table if not exists maintenance.schedule (
    job_name text not null,
    schedule text not null,  -- noqa: RF04
    command text not null,
    description text not null,
    constraint schedule_pkey primary key (job_name),
    constraint check_schedule_job_name_format check (job_name ~ '^[a-z][a-z0-9_]{0,40}$'),
    -- five cron fields (pg_cron validates them when deploy schedules the job)
    constraint check_schedule_schedule_cron check (schedule ~ '^\S+( \S+){4}$')
);
comment on table maintenance.schedule is
'The pg_cron jobs of this database, as data: deploy schedules each row in the cron database as
job `<job_name>@<database>` (cron.schedule_in_database); times are UTC (pg_cron 1.4).';
comment on column maintenance.schedule.schedule is
'Cron expression (minute hour day-of-month month day-of-week), in UTC.';
comment on column maintenance.schedule.command is
'The SQL the job runs in this database (one statement: pg_cron runs it as one transaction).';

create table if not exists maintenance.runs (
    run_id bigint generated always as identity,
    job text not null,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    details jsonb not null default '{}',
    constraint runs_pkey primary key (run_id),
    constraint check_runs_job_format check (job ~ '^[a-z][a-z0-9_]{0,40}$'),
    constraint check_runs_finished_after_start check (finished_at >= started_at)
);
comment on table maintenance.runs is
'One row per run of a maintenance job (the cron jobs and invoke maintenance.repack), written in the
job''s transaction: a job that fails leaves no row here, its error is in cron.job_run_details.';
comment on column maintenance.runs.details is
'What the run did in summary (counts, thresholds used, parts skipped and why).';

create table if not exists maintenance.findings (
    finding_id bigint generated always as identity,
    run_id bigint not null,
    found_at timestamptz not null default clock_timestamp(),
    kind text not null,
    object text not null,  -- noqa: RF04
    figures jsonb not null default '{}',
    constraint findings_pkey primary key (finding_id),
    constraint fk_findings_run_id_runs foreign key (run_id)
    references maintenance.runs (run_id) on delete cascade,
    constraint check_findings_kind check (
        kind in (
            'analyze', 'vacuum_analyze', 'unused_index', 'duplicate_index', 'table_bloat',
            'index_bloat', 'slow_statement', 'table_size', 'index_size', 'disk_usage', 'repacked'
        )
    )
);
comment on table maintenance.findings is
'What the maintenance jobs found or did: one row per object and kind, with its figures (JSON).';
comment on column maintenance.findings.kind is
'analyze / vacuum_analyze (daily: done or skipped), unused_index, duplicate_index, table_bloat,
index_bloat, slow_statement (weekly), table_size, index_size, disk_usage (monthly; disk_usage also
daily), repacked (invoke maintenance.repack).';
comment on column maintenance.findings.object is
'The object: a qualified table or index name, a pg_stat_statements queryid, or a database name.';
comment on column maintenance.findings.figures is
'The measured figures (bytes, percentages, counts, milliseconds, growth per day, days left).';

create index if not exists index_findings_on_run_id on maintenance.findings (run_id);
create index if not exists index_findings_on_kind_and_object_and_found_at
on maintenance.findings (kind, object, found_at);
create index if not exists index_runs_on_job_and_started_at on maintenance.runs (job, started_at);
