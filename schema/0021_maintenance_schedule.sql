-- 0021_maintenance_schedule: the schedule of the routine maintenance jobs, as data (issue 15).
-- deploy schedules every row in pg_cron (job `<job_name>@<database>`); the jobs run as the
-- superuser that deployed. Times are UTC: pg_cron 1.4 has no time zone setting.
--   daily_vacuum_analyze  every day 03:30: ANALYZE where statistics are stale, VACUUM (ANALYZE)
--                         where dead tuples call for it, the disk usage sample
--   weekly_report         Sundays 03:00: unused and duplicate indexes, bloat, the top slow
--                         statements of the week (then pg_stat_statements is reset for the next)
--   monthly_capacity      the 1st of the month 02:00: sizes, growth, days until the disk alerts
-- The heavy work (pg_repack, the recovery test) runs from systemd timers (conf/systemd/) in the
-- spec's monthly window, the first Sunday 02:00-06:00: `invoke maintenance.window` shows it all.
-- requires: schema/0020_maintenance.sql
-- Versioned: a schedule change is a new numbered file updating these rows (deploy syncs pg_cron).

insert into maintenance.schedule (job_name, schedule, command, description)
values
(
    'daily_vacuum_analyze', '30 3 * * *', 'select maintenance.daily_vacuum_analyze()',
    'ANALYZE the tables whose statistics are stale, VACUUM (ANALYZE) those whose dead tuples '
    || 'call for it; record the disk usage'
),
(
    'weekly_report', '0 3 * * 0', 'select maintenance.weekly_report()',
    'Unused indexes, duplicate indexes, table and index bloat, the top slow statements of the '
    || 'week from pg_stat_statements (then reset for the next week)'
),
(
    'monthly_capacity', '0 2 1 * *', 'select maintenance.monthly_capacity()',
    'Table and index sizes and their growth since the last report, disk usage and the days '
    || 'until the disk alert thresholds (80 %, 90 %) at the current growth'
)
on conflict (job_name) do nothing;
