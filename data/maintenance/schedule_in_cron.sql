-- schedule_in_cron: puts one database's maintenance jobs into pg_cron (issue 15). Run by deploy
-- (hrp_harness/ops/maintenance.py) in the database named by cron.database_name (`postgres`),
-- with the
-- psql variables `database` (the database the jobs run in) and `jobs` (its schedule as JSON,
-- hrp_maintenance.cron_jobs() of that database). In one transaction:
--   - the pg_cron extension is created here when missing;
--   - every job is scheduled with cron.schedule_in_database under its name `<job>@<database>`
--     (pg_cron updates schedule and command of a job of the same name and user; a job a DBA
--     paused with cron.alter_job(..., active => false) stays paused);
--   - jobs named `...@<database>` of this user that the schedule no longer lists are unscheduled.
-- Prints the database's jobs as they now are (jobname|schedule|active).
-- requires: pg_cron in shared_preload_libraries, a superuser.

create extension if not exists pg_cron;

select cron.unschedule(j.jobid)
from cron.job as j
where
    j.username = current_user
    and j.database = :'database'
    and right(j.jobname, length(:'database') + 1) = '@' || :'database'
    and j.jobname not in (
        select w.jobname from json_to_recordset(:'jobs'::json) as w (jobname text)
    );

select cron.schedule_in_database(w.jobname, w.schedule, w.command, :'database')
from json_to_recordset(:'jobs'::json) as w (jobname text, schedule text, command text);

select
    j.jobname,
    j.schedule,
    j.active
from cron.job as j
where j.username = current_user and j.database = :'database'
order by j.jobname;
