-- maintenance_latest_findings: what `invoke maintenance.report` shows (issue 15): the findings of
-- the latest finished run of each maintenance job, with the job and the run's time.
-- requires: schema/0020_maintenance.sql

create or replace view hrp_maintenance.latest_findings as
with latest as (
    select distinct on (r.job)
        r.run_id,
        r.job,
        r.started_at,
        r.finished_at
    from hrp_maintenance.runs as r
    where r.finished_at is not null
    order by r.job asc, r.started_at desc
)

select
    l.job,
    l.run_id,
    l.finished_at,
    f.found_at,
    f.kind,
    f.object,
    f.figures
from latest as l
inner join hrp_maintenance.findings as f on l.run_id = f.run_id;

comment on view hrp_maintenance.latest_findings is
'The findings of the latest finished run of each maintenance job (job, run, time, kind, object,
figures).';
