-- horse_performance_summary: per horse, how many predictions it has and how
-- confident they are; horses without predictions show 0 and nulls (left join).
-- Repeatable: create or replace only, safe to re-apply.
-- requires: schema/0003_horses.sql schema/0004_predictions.sql

create or replace view public.horse_performance_summary as
select
    h.id,
    h.horse_name,
    count(p.id) as total_predictions,
    avg(p.confidence) as avg_confidence,
    max(p.confidence) as max_confidence,
    count(case when p.confidence > 0.8 then 1 end) as high_confidence_predictions,
    h.age,
    h.weight,
    h.jockey,
    h.trainer
from public.horses as h
left join public.predictions as p on h.id = p.horse_id
group by h.id, h.horse_name, h.age, h.weight, h.jockey, h.trainer;

comment on view public.horse_performance_summary is
'One row per horse: prediction count, avg and max confidence, count with confidence > 0.8.';
