-- pgTAP tests for views/anonymize.sql: one view per table of schema public with the table's
-- columns, PII replaced deterministically and uniquely, valid_email kept, NULLs kept, non-PII
-- columns unchanged.
-- Safe against a loaded database: fixtures are named 'pgtap ...' and rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(11);

select is_empty(
    $$
    (
        select c.relname from pg_catalog.pg_class as c
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
        except
        select c.relname from pg_catalog.pg_class as c
        where c.relnamespace = 'hrp_anonymize'::regnamespace and c.relkind = 'v'
    )
    union all
    (
        select c.relname from pg_catalog.pg_class as c
        where c.relnamespace = 'hrp_anonymize'::regnamespace and c.relkind = 'v'
        except
        select c.relname from pg_catalog.pg_class as c
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
    )
    $$,
    'one anonymising view per table of schema public, and no other'
);
select is_empty(
    $$
    select t.relname, ta.attnum, ta.attname, format_type(ta.atttypid, ta.atttypmod)
    from pg_catalog.pg_class as t
    inner join pg_catalog.pg_attribute as ta on t.oid = ta.attrelid
    where
        t.relnamespace = 'public'::regnamespace and t.relkind in ('r', 'p')
        and ta.attnum > 0 and not ta.attisdropped
    except
    select v.relname, va.attnum, va.attname, format_type(va.atttypid, va.atttypmod)
    from pg_catalog.pg_class as v
    inner join pg_catalog.pg_attribute as va on v.oid = va.attrelid
    where v.relnamespace = 'hrp_anonymize'::regnamespace and v.relkind = 'v' and va.attnum > 0
    $$,
    'each view has its table''s columns, in order, with the same types'
);
select is_empty(
    $$
    select c.relname from pg_catalog.pg_class as c
    where
        c.relnamespace = 'hrp_anonymize'::regnamespace and c.relkind = 'v'
        and obj_description(c.oid, 'pg_class') is null
    $$,
    'every anonymising view has a comment'
);
-- Fixture: two users with names, one without; two credentials, one without a secret.
insert into public.users (username, email, password_hash, first_name, last_name, preferences)
values
('pgtap anon ann', 'pgtap.ann@example.com', 'pbkdf2:ann', 'Ann', 'Smith', '{"theme": "dark"}'),
('pgtap anon bob', 'pgtap.bob@example.com', 'pbkdf2:bob', 'Bob', 'Jones', '{}'),
('pgtap anon cyd', 'pgtap.cyd@example.com', 'pbkdf2:cyd', null, null, '{}');
insert into public.api_credentials (service_name, api_key, api_secret, metadata)
values
('pgtap anon svc 1', 'real-key-1', 'real-secret-1', '{"token": "x"}'),
('pgtap anon svc 2', 'real-key-2', null, '{}');

create temporary table pgtap_fixture_users on commit drop as
select u.*
from public.users as u
where u.username like 'pgtap anon %';

select is_empty(
    $$
    select a.id
    from hrp_anonymize.users as a
    inner join pgtap_fixture_users as u on a.id = u.id
    where
        a.username = u.username or a.email = u.email or a.password_hash = u.password_hash
        or a.first_name = u.first_name or a.last_name = u.last_name
    $$,
    'username, email, password_hash, first_name, last_name are all replaced'
);
select is(
    (
        select count(*)::integer
        from hrp_anonymize.users as a
        inner join pgtap_fixture_users as u on a.id = u.id
        where
            a.username = 'user_' || u.id and a.email = 'user_' || u.id || '@example.invalid'
            and a.preferences = u.preferences and a.created_at = u.created_at
    ),
    3,
    'replacements are a function of the id; other columns are unchanged'
);
select is(
    (
        select count(*)::integer
        from hrp_anonymize.users as a
        inner join pgtap_fixture_users as u on a.id = u.id
        where a.first_name is null and a.last_name is null
    ),
    1,
    'NULL names stay NULL'
);
select lives_ok(
    $$
    create temporary table pgtap_copy (like public.users including constraints) on commit drop;
    alter table pgtap_copy add constraint unique_pgtap_copy_username unique (username);
    alter table pgtap_copy add constraint unique_pgtap_copy_email unique (email);
    insert into pgtap_copy select * from hrp_anonymize.users
    $$,
    'the anonymised users satisfy valid_email and stay unique'
);
select is(
    (select count(*) from hrp_anonymize.users),
    (select count(*) from public.users),
    'the users view has every row'
);
select is_empty(
    $$
    select a.id
    from hrp_anonymize.api_credentials as a
    inner join public.api_credentials as c on a.id = c.id
    where
        c.service_name like 'pgtap anon %'
        and (a.api_key = c.api_key or a.api_secret = c.api_secret or a.metadata <> '{}')
    $$,
    'api_key and api_secret are replaced and metadata emptied'
);
select is(
    (
        select count(*)::integer
        from hrp_anonymize.api_credentials as a
        inner join public.api_credentials as c on a.id = c.id
        where c.service_name = 'pgtap anon svc 2' and a.api_secret is null
    ),
    1,
    'a NULL api_secret stays NULL'
);
select is_empty(
    $$
    select id from public.races
    except all
    select id from hrp_anonymize.races
    $$,
    'races pass through whole'
);
select * from finish();
rollback;
