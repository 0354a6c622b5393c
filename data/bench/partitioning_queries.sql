-- partitioning_queries: what `invoke bench.partitioning` times on each variant of predictions
-- (data/bench/partitioning_variants.sql), as the app runs them: prepared statements, parameters
-- bound at EXECUTE. `predictions` resolves through the search_path to the variant's table.
--   point_by_id          the app reads one prediction by its key
--   race_predictions     the app's hot query: a race's predictions, most confident first
--   race_statistics      the spec's view race_statistics for one race
--   trainer_summary      the spec's view horse_performance_summary for one trainer's horses
--   horse_predictions    a horse's predictions
--   day_predictions      one day's predictions (created_at range): partitioning's home ground
--   month_high_confidence  the high-confidence predictions of one month (a monthly report)
--   insert_prediction    the app writes one prediction (a commit each, measured apart)
--   upsert_prediction    the app re-scores a prediction: ON CONFLICT on the spec's unique key
-- race_statistics and trainer_summary repeat their views' bodies (views/race_statistics.sql,
-- views/horse_performance_summary.sql): a view is bound to public.predictions when created, and
-- here each variant's own predictions must be read.
-- requires: the variants, public.races, public.horses.

prepare point_by_id (bigint) as
select
    id,
    race_id,
    horse_id,
    prediction_value,
    confidence,
    algorithm_version,
    model_features,
    prediction_metadata,
    created_at,
    updated_at
from predictions
where id = $1;

prepare race_predictions (bigint) as
select
    id,
    race_id,
    horse_id,
    prediction_value,
    confidence,
    algorithm_version,
    model_features,
    prediction_metadata,
    created_at,
    updated_at
from predictions
where race_id = $1
order by confidence desc nulls last;

prepare race_statistics (bigint) as
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
left join predictions as p on r.id = p.race_id
where r.id = $1
group by r.id, r.race_name, r.race_date, r.track_name;

prepare trainer_summary (text) as
select
    h.id,
    h.horse_name,
    count(p.id) as total_predictions,
    avg(p.confidence) as avg_confidence,
    max(p.confidence) as max_confidence,
    count(case when p.confidence > 0.8 then 1 end) as high_confidence_predictions
from public.horses as h
left join predictions as p on h.id = p.horse_id
where h.trainer = $1
group by h.id, h.horse_name;

prepare horse_predictions (bigint) as
select
    id,
    race_id,
    horse_id,
    prediction_value,
    confidence,
    algorithm_version,
    model_features,
    prediction_metadata,
    created_at,
    updated_at
from predictions
where horse_id = $1;

prepare day_predictions (timestamptz) as
select
    count(*) as predictions,
    avg(confidence) as avg_confidence
from predictions
where created_at >= $1 and created_at < $1 + interval '1 day';

prepare month_high_confidence (timestamptz) as
select count(*) as high_confidence
from predictions
where created_at >= $1 and created_at < $1 + interval '1 month' and confidence > 0.8;

prepare insert_prediction (bigint, bigint, text) as
insert into predictions (race_id, horse_id, prediction_value, confidence, algorithm_version)
values ($1, $2, 0.5, 0.5, $3);

prepare upsert_prediction (bigint, bigint, text) as
insert into predictions as p (race_id, horse_id, prediction_value, confidence, algorithm_version)
values ($1, $2, 0.5, 0.5, $3)
on conflict (race_id, horse_id, algorithm_version)
do update set prediction_value = p.prediction_value + 0.000001;
