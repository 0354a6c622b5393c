-- pgTAP tests for schema/0001_enums.sql: the three enum types, their labels in
-- order, and that an unknown label is refused.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(12);

select has_enum('public', 'race_type_enum', 'enum public.race_type_enum exists');
select enum_has_labels(
    'public', 'race_type_enum',
    array['flat', 'hurdle', 'steeplechase', 'harness', 'quarter_horse', 'thoroughbred'],
    'race_type_enum has the spec labels in order'
);
select has_enum('public', 'surface_enum', 'enum public.surface_enum exists');
select enum_has_labels(
    'public', 'surface_enum',
    array['dirt', 'turf', 'synthetic', 'sand', 'snow'],
    'surface_enum has the spec labels in order'
);
select has_enum('public', 'prediction_status_enum', 'enum public.prediction_status_enum exists');
select enum_has_labels(
    'public', 'prediction_status_enum',
    array['pending', 'confirmed', 'cancelled', 'completed'],
    'prediction_status_enum has the spec labels in order'
);
select is_empty(
    $$
    select t.typname
    from pg_catalog.pg_type as t
    inner join pg_catalog.pg_namespace as n on t.typnamespace = n.oid
    where
        n.nspname = 'public'
        and t.typname in ('race_type_enum', 'surface_enum', 'prediction_status_enum')
        and obj_description(t.oid, 'pg_type') is null
    $$,
    'the three enum types have comments'
);

select throws_ok(
    $$select 'gallop'::public.race_type_enum$$,
    '22P02', null, 'an unknown race_type_enum label is rejected'
);
select throws_ok(
    $$select 'mud'::public.surface_enum$$,
    '22P02', null, 'an unknown surface_enum label is rejected'
);
select throws_ok(
    $$select 'Pending'::public.prediction_status_enum$$,
    '22P02', null, 'prediction_status_enum labels are case-sensitive (Pending is rejected)'
);
select ok(
    'flat'::public.race_type_enum < 'thoroughbred'::public.race_type_enum,
    'race_type_enum sorts in declaration order'
);
select ok(
    'pending'::public.prediction_status_enum < 'completed'::public.prediction_status_enum,
    'prediction_status_enum sorts in declaration order (pending before completed)'
);

select * from finish();
rollback;
