-- race_statistics: per race, how many predictions it has and the spread of
-- their confidence; races without predictions show 0 and nulls (left join).
-- Repeatable: create or replace only, safe to re-apply.
-- requires: schema/0002_races.sql schema/0004_predictions.sql

create or replace view public.race_statistics as
select
    r.id,
    r.race_name,
    r.race_date,
    r.track_name,
    count(p.id) as prediction_count,
    avg(p.confidence) as avg_confidence,
    max(p.confidence) as max_confidence,
    min(p.confidence) as min_confidence
from public.races as r
left join public.predictions as p on r.id = p.race_id
group by r.id, r.race_name, r.race_date, r.track_name;

comment on view public.race_statistics is
'One row per race: prediction count and average, maximum and minimum confidence.';
