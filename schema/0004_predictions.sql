-- 0004_predictions: one model output per (race, horse, algorithm version);
-- removed with its race or horse (ON DELETE CASCADE).
-- requires: schema/0002_races.sql schema/0003_horses.sql

create table if not exists public.predictions (
    id bigserial primary key,
    race_id bigint not null,
    horse_id bigint not null,
    prediction_value numeric(10, 6) not null,
    confidence numeric(5, 4),
    algorithm_version varchar(20) not null,
    model_features jsonb,
    prediction_metadata jsonb,
    created_at timestamptz default current_timestamp,
    updated_at timestamptz default current_timestamp,

    constraint check_predictions_confidence_range check (confidence between 0 and 1),
    constraint fk_predictions_race foreign key (race_id)
    references public.races (id) on delete cascade,
    constraint fk_predictions_horse foreign key (horse_id)
    references public.horses (id) on delete cascade,
    constraint unique_race_horse_prediction unique (race_id, horse_id, algorithm_version)
);

comment on table public.predictions is
'Model predictions: one per race, horse and algorithm version.';
comment on column public.predictions.prediction_value is
'Raw model output for this horse in this race (e.g. a win probability or score).';
comment on column public.predictions.confidence is
'Model confidence from 0 (none) to 1 (certain); above 0.8 counts as high confidence.';
comment on column public.predictions.algorithm_version is
'Version tag of the model that made the prediction.';
comment on column public.predictions.model_features is
'Feature values the model was given, as a JSON object keyed by feature name.';
comment on column public.predictions.prediction_metadata is
'Free-form details of the prediction run (JSON), e.g. run id, timings.';
comment on column public.predictions.created_at is
'When the row was inserted.';
comment on column public.predictions.updated_at is
'When the row was last updated; maintained by trigger update_predictions_updated_at.';

-- Per-table indexes.
create index if not exists idx_predictions_race on public.predictions (race_id);
create index if not exists idx_predictions_horse on public.predictions (horse_id);
create index if not exists idx_predictions_confidence on public.predictions (confidence);
create index if not exists idx_predictions_algorithm on public.predictions (algorithm_version);
create index if not exists idx_predictions_created on public.predictions (created_at);
create index if not exists idx_predictions_features_gin
on public.predictions using gin (model_features);

-- Composite index: a race's predictions, most confident first.
create index if not exists idx_predictions_race_confidence
on public.predictions (race_id, confidence desc);

-- Partial index for the high-confidence filter (same threshold as the views).
create index if not exists idx_high_confidence_predictions
on public.predictions (id) where confidence > 0.8;
