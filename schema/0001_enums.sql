-- 0001_enums: the enumerated types used by the racing tables.
-- race_type_enum and surface_enum type races.race_type and races.surface;
-- prediction_status_enum is defined by the spec for prediction workflows but
-- no column uses it yet.
-- CREATE TYPE has no IF NOT EXISTS, so each type is guarded by a DO block
-- that looks it up in pg_type/pg_namespace for schema public.
-- requires: (none)

do $$
begin
    if not exists (
        select 1
        from pg_catalog.pg_type as t
        inner join pg_catalog.pg_namespace as n on t.typnamespace = n.oid
        where n.nspname = 'public' and t.typname = 'race_type_enum'
    ) then
        create type public.race_type_enum as enum (
            'flat', 'hurdle', 'steeplechase', 'harness', 'quarter_horse', 'thoroughbred'
        );
    end if;

    if not exists (
        select 1
        from pg_catalog.pg_type as t
        inner join pg_catalog.pg_namespace as n on t.typnamespace = n.oid
        where n.nspname = 'public' and t.typname = 'surface_enum'
    ) then
        create type public.surface_enum as enum (
            'dirt', 'turf', 'synthetic', 'sand', 'snow'
        );
    end if;

    if not exists (
        select 1
        from pg_catalog.pg_type as t
        inner join pg_catalog.pg_namespace as n on t.typnamespace = n.oid
        where n.nspname = 'public' and t.typname = 'prediction_status_enum'
    ) then
        create type public.prediction_status_enum as enum (
            'pending', 'confirmed', 'cancelled', 'completed'
        );
    end if;
end
$$;

comment on type public.race_type_enum is
'Kind of race: flat, jumps (hurdle, steeplechase), harness, quarter horse or thoroughbred.';
comment on type public.surface_enum is
'Track surface a race is run on.';
comment on type public.prediction_status_enum is
'Life cycle of a prediction: pending, confirmed, cancelled, completed (not yet used by a column).';
