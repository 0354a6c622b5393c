-- partitioning_variants: the three shapes of `predictions` that `invoke bench.partitioning`
-- compares (issue 15), each as `predictions` in a schema of its own, so that one set of queries
-- (data/bench/partitioning_queries.sql) runs against each through the search_path:
--   bench_plain.predictions     the spec's table as deployed: id PRIMARY KEY, the unique
--                               prediction key, both foreign keys, the spec's indexes
--   bench_by_month.predictions  range partitions of created_at, one per month, made by pg_partman
--                               4.7 (native partitioning). A key on a partitioned table must hold
--                               the partition key: PRIMARY KEY (id, created_at) and UNIQUE
--                               (race_id, horse_id, algorithm_version, created_at), created_at NOT
--                               NULL: neither spec key is enforced as the spec means it any more
--   bench_by_race.predictions   range partitions of race_id (ids grow with race dates, so a
--                               partition is also a stretch of time): UNIQUE (race_id, horse_id,
--                               algorithm_version) is the spec's key unchanged; PRIMARY KEY
--                               (id, race_id) no longer makes id unique on its own
-- Every variant has both foreign keys and the spec's secondary indexes (created on the partitioned
-- table, so on every partition). Created empty; the bench loads and measures them.
-- psql variables: start_month (first month of the data, YYYY-MM-01), race_step (races per
-- race_id partition), races (the number of races).
-- requires: the deployed schema (public.races, public.horses, public.predictions), pg_partman.

create schema bench_plain;
create schema bench_by_month;
create schema bench_by_race;
create schema partman;
create extension pg_partman with schema partman;

create table bench_plain.predictions (
    like public.predictions including defaults including constraints including indexes
);
alter table bench_plain.predictions
add constraint fk_predictions_race foreign key (race_id)
references public.races (id) on delete cascade,
add constraint fk_predictions_horse foreign key (horse_id)
references public.horses (id) on delete cascade;

create table bench_by_month.predictions (
    like public.predictions including defaults including constraints,
    constraint predictions_pkey primary key (id, created_at),
    constraint unique_race_horse_prediction unique (
        race_id, horse_id, algorithm_version, created_at
    ),
    constraint fk_predictions_race foreign key (race_id)
    references public.races (id) on delete cascade,
    constraint fk_predictions_horse foreign key (horse_id)
    references public.horses (id) on delete cascade
) partition by range (created_at);

create table bench_by_race.predictions (
    like public.predictions including defaults including constraints,
    constraint predictions_pkey primary key (id, race_id),
    constraint unique_race_horse_prediction unique (race_id, horse_id, algorithm_version),
    constraint fk_predictions_race foreign key (race_id)
    references public.races (id) on delete cascade,
    constraint fk_predictions_horse foreign key (horse_id)
    references public.horses (id) on delete cascade
) partition by range (race_id);

-- the spec's secondary indexes on both partitioned tables
do $indexes$
declare
    home text;
begin
    foreach home in array array['bench_by_month', 'bench_by_race'] loop
        execute format('create index on %I.predictions (race_id)', home);
        execute format('create index on %I.predictions (horse_id)', home);
        execute format('create index on %I.predictions (confidence)', home);
        execute format('create index on %I.predictions (algorithm_version)', home);
        execute format('create index on %I.predictions (created_at)', home);
        execute format('create index on %I.predictions using gin (model_features)', home);
        execute format('create index on %I.predictions (race_id, confidence desc)', home);
        execute format('create index on %I.predictions (id) where confidence > 0.8', home);
    end loop;
end;
$indexes$;

-- monthly partitions from the first month of the data to 2 months ahead, and a default one
select partman.create_parent(
    p_parent_table => 'bench_by_month.predictions',
    p_control => 'created_at',
    p_type => 'native',
    p_interval => 'monthly',
    p_premake => 2,
    p_start_partition => :'start_month'
);

-- race_id partitions of race_step races (pg_partman aligns them on multiples of it), enough for
-- every race and as many again ahead
select partman.create_parent(
    p_parent_table => 'bench_by_race.predictions',
    p_control => 'race_id',
    p_type => 'native',
    p_interval => :'race_step',
    p_premake => 2,
    p_start_partition => '1'
);
select partman.create_partition_id(
    'bench_by_race.predictions',
    array(select g.v from generate_series(0, 2 * :races, :race_step) as g (v))
);
