-- pgTAP tests for views/maintenance_latest_findings.sql: only the latest finished run of each job.
-- Safe against a loaded database: the fixture is rolled back.
-- noqa: disable=AL03
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(3);

select has_view(
    'hrp_maintenance', 'latest_findings',
    'view hrp_maintenance.latest_findings exists'
);

insert into hrp_maintenance.runs (job, started_at, finished_at)
values
('pgtap_a', '2000-01-01', '2000-01-01'),
('pgtap_a', '2000-02-01', '2000-02-01'),
('pgtap_a', '2000-03-01', null),
('pgtap_b', '2000-01-15', '2000-01-15');
insert into hrp_maintenance.findings (run_id, kind, object)
select
    r.run_id,
    'table_size',
    r.job || ' ' || r.started_at::date
from hrp_maintenance.runs as r
where r.job like 'pgtap\_%';

select set_eq(
    $$select job, object from hrp_maintenance.latest_findings where job like 'pgtap\_%'$$,
    $$values ('pgtap_a', 'pgtap_a 2000-02-01'), ('pgtap_b', 'pgtap_b 2000-01-15')$$,
    'each job''s latest finished run: not older runs, not an unfinished one'
);
select isnt(
    obj_description('hrp_maintenance.latest_findings'::regclass, 'pg_class'), null,
    'the view has a comment'
);

select * from finish();
rollback;
