-- predictions_fill: deterministic synthetic rows for a deployed HRP database, made inside
-- PostgreSQL (no SQLite, no pgloader): races, horses and predictions, at any size. Used by
-- `invoke bench.partitioning` (1x = the spec's production size, 10x) and by
-- tests/test_maintenance.py (a loaded database).
-- psql variables: races, horses, predictions (counts), months (the span of race dates, ending on
-- 2026-11-30).
-- Races get ids 1..races in date order; a race's predictions are made in the 24 hours before it
-- (created_at), so created_at follows race_id. Each race has predictions / races horses, distinct
-- (k * 104729 mod horses with 104729 prime), so (race_id, horse_id, algorithm_version) is unique.
-- Trainers: 500 (horse_performance_summary per trainer); model_features: a small JSON object.
-- requires: the spec's tables (schema/0002-0004), empty.
-- noqa: disable=AL03

insert into public.races (race_name, race_date, track_name, race_type, distance, surface)
select
    'Bench Race ' || g.i,
    date '2026-11-30' - ((:races - g.i) * (:months * 30) / :races),
    'Track ' || (g.i % 40),
    (array['flat', 'hurdle', 'steeplechase', 'harness', 'thoroughbred'])[1 + g.i % 5]
    ::race_type_enum,
    1000 + (g.i % 30) * 100,
    (array['turf', 'dirt', 'synthetic'])[1 + g.i % 3]::surface_enum
from generate_series(1, :races) as g (i)
order by g.i;

insert into public.horses (horse_name, age, weight, jockey, trainer)
select
    'Bench Horse ' || g.i,
    2 + g.i % 15,
    400 + (g.i % 200),
    'Jockey ' || (g.i % 800),
    'Trainer ' || (g.i % 500)
from generate_series(1, :horses) as g (i)
order by g.i;

insert into public.predictions (
    race_id, horse_id, prediction_value, confidence, algorithm_version, model_features,
    created_at, updated_at
)
select
    p.race_id,
    1 + (p.race_id * 7919 + p.k * 104729) % :horses,
    round(((p.h % 1000000) / 1000000.0)::numeric, 6),
    round(((p.h / 7 % 10000) / 10000.0)::numeric, 4),
    'v' || (1 + p.race_id % 3) || '.0',
    jsonb_build_object('speed', p.h % 100, 'form', p.h / 100 % 10),
    r.race_date - make_interval(secs => 3600 + p.h % 82800),
    r.race_date - make_interval(secs => 3600 + p.h % 82800)
from (
    select
        1 + g.i % :races as race_id,
        g.i / :races as k,
        abs(hashint8(g.i)) as h
    from generate_series(0, :predictions - 1) as g (i)
) as p
inner join public.races as r on p.race_id = r.id
order by p.race_id, p.k;
