-- pgTAP tests for schema/0030_horses_name_trgm.sql: pg_trgm in schema extensions, the trigram
-- index on horses.horse_name, the horse search using it, the app roles' USAGE.
-- Safe against a loaded database: fixtures are named 'pgtap ...' and rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(9);

select has_schema('extensions', 'schema extensions exists');
select isnt(
    obj_description('extensions'::regnamespace, 'pg_namespace'), null,
    'schema extensions has a comment'
);
select has_extension('extensions', 'pg_trgm', 'pg_trgm is installed in schema extensions');
select has_index(
    'public', 'horses', 'index_horses_on_horse_name_trgm', array['horse_name']::name[],
    'index_horses_on_horse_name_trgm is on (horse_name)'
);
select index_is_type(
    'public', 'horses', 'index_horses_on_horse_name_trgm', 'gist',
    'index_horses_on_horse_name_trgm is a GiST index (an index scan stops at the LIMIT)'
);
select isnt(
    obj_description('public.index_horses_on_horse_name_trgm'::regclass, 'pg_class'), null,
    'index_horses_on_horse_name_trgm has a comment'
);
select schema_privs_are(
    'extensions', 'hrp_app', array['USAGE'], 'hrp_app may use schema extensions'
);

-- The app's search (ILIKE '%part%', any case) finds rows through the index.
insert into public.horses (horse_name) values ('pgtap Thunder Road'), ('pgtap Quiet Storm');
set local enable_seqscan = off;
select results_eq(
    $$select horse_name::text from public.horses where horse_name ilike '%THUNDER r%'$$,
    $$values ('pgtap Thunder Road')$$,
    'an ILIKE search for a part of the name, in another case, finds the horse'
);
create function pg_temp.plan_of(query text) returns text
language plpgsql as $$
declare
    line text;
    plan text := '';
begin
    for line in execute 'explain (costs off) ' || query loop
        plan := plan || line || e'\n';
    end loop;
    return plan;
end;
$$;
select matches(
    pg_temp.plan_of($$select id from public.horses where horse_name ilike '%THUNDER r%'$$),
    'index_horses_on_horse_name_trgm',
    'the ILIKE search uses index_horses_on_horse_name_trgm'
);

select * from finish();
rollback;
