-- 0003_horses: one row per horse with its connections (jockey, trainer, owner),
-- pedigree and running statistics; the parent of predictions.
-- requires: (none)

create table if not exists public.horses (
    id bigserial primary key,
    horse_name varchar(100) not null,
    age smallint constraint check_horses_age_range check (age between 2 and 20),
    weight numeric(5, 1) constraint check_horses_weight_range check (weight between 300 and 700),
    jockey varchar(100),
    trainer varchar(100),
    -- owner is a non-reserved keyword; the spec names the column so, hence the noqa.
    owner varchar(100), -- noqa: RF04
    pedigree jsonb,
    performance_stats jsonb,
    created_at timestamptz default current_timestamp,
    updated_at timestamptz default current_timestamp,

    constraint unique_horse_name unique (horse_name)
);

comment on table public.horses is
'Horses that can be predicted; deleting a horse deletes its predictions.';
comment on column public.horses.horse_name is
'Registered name of the horse, unique.';
comment on column public.horses.age is
'Age in years, 2 to 20.';
comment on column public.horses.weight is
'Body weight in kilograms, 300.0 to 700.0.';
comment on column public.horses.pedigree is
'Ancestry as a JSON object, e.g. {"sire": "...", "dam": "...", "damsire": "..."}.';
comment on column public.horses.performance_stats is
'Running record as a JSON object, e.g. {"starts": 12, "wins": 3, "places": 5}.';
comment on column public.horses.created_at is
'When the row was inserted.';
comment on column public.horses.updated_at is
'When the row was last updated; maintained by trigger update_horses_updated_at.';

-- Per-table indexes.
-- idx_horses_name (horse_name) is left out: unique_horse_name's index covers exactly that column.
create index if not exists idx_horses_jockey on public.horses (jockey);
create index if not exists idx_horses_trainer on public.horses (trainer);
create index if not exists idx_horses_age_weight on public.horses (age, weight);
create index if not exists idx_horses_pedigree_gin on public.horses using gin (pedigree);
create index if not exists idx_horses_stats_gin on public.horses using gin (performance_stats);

-- Composite index for the trainer + age query pattern.
create index if not exists idx_horses_trainer_age on public.horses (trainer, age);
