-- pgTAP tests for schema/0006_api_credentials.sql: structure, defaults,
-- NOT NULLs and the unique service name.
-- Safe against a loaded database: fixtures are named 'pgtap ...' and rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(29);

select has_table('public', 'api_credentials', 'table public.api_credentials exists');
select isnt(
    obj_description('public.api_credentials'::regclass, 'pg_class'), null,
    'public.api_credentials has a comment'
);
select is_empty(
    $$
    select a.attname
    from pg_catalog.pg_attribute as a
    where
        a.attrelid = 'public.api_credentials'::regclass
        and a.attname in (
            'api_key', 'api_secret', 'rate_limit', 'rate_limit_window', 'metadata',
            'updated_at', 'expires_at'
        )
        and col_description(a.attrelid, a.attnum) is null
    $$,
    'api_credentials.api_key, api_secret, rate_limit, rate_limit_window, metadata, updated_at, '
    || 'expires_at have comments'
);
select columns_are(
    'public', 'api_credentials',
    array[
        'id', 'service_name', 'api_key', 'api_secret', 'endpoint_url', 'rate_limit',
        'rate_limit_window', 'is_active', 'metadata', 'created_at', 'updated_at', 'expires_at'
    ]::name[],
    'api_credentials has exactly the spec columns'
);

-- Column types, nullability and defaults: tests/test_spec_schema.py compares every
-- column with the spec's own DDL; columns_are above pins the set of columns.

-- Keys, nullability, defaults.
select col_is_pk('public', 'api_credentials', 'id', 'api_credentials.id is the primary key');
select col_has_default(
    'public', 'api_credentials', 'id', 'api_credentials.id has a default (its sequence)'
);
select has_sequence(
    'public', 'api_credentials_id_seq',
    'sequence api_credentials_id_seq backs api_credentials.id'
);
select col_not_null(
    'public', 'api_credentials', 'service_name', 'api_credentials.service_name is not null'
);
select col_not_null('public', 'api_credentials', 'api_key', 'api_credentials.api_key is not null');
select col_is_null(
    'public', 'api_credentials', 'api_secret', 'api_credentials.api_secret is nullable'
);
select col_is_null(
    'public', 'api_credentials', 'expires_at', 'api_credentials.expires_at is nullable'
);
select col_default_is(
    'public', 'api_credentials', 'rate_limit', '1000'::text,
    'api_credentials.rate_limit defaults to 1000'
);
select col_default_is(
    'public', 'api_credentials', 'rate_limit_window', '1 hour'::text,
    'api_credentials.rate_limit_window defaults to 1 hour'
);
select col_default_is(
    'public', 'api_credentials', 'is_active', 'true'::text,
    'api_credentials.is_active defaults to true'
);
select col_default_is(
    'public', 'api_credentials', 'metadata', '{}'::text,
    'api_credentials.metadata defaults to {}'
);
select col_default_is(
    'public', 'api_credentials', 'created_at', 'CURRENT_TIMESTAMP'::text,
    'api_credentials.created_at defaults to current_timestamp'
);
select col_default_is(
    'public', 'api_credentials', 'updated_at', 'CURRENT_TIMESTAMP'::text,
    'api_credentials.updated_at defaults to current_timestamp'
);
select set_eq(
    $$
    select c.conname::text
    from pg_catalog.pg_constraint as c
    where c.conrelid = 'public.api_credentials'::regclass
    $$,
    array['api_credentials_pkey', 'unique_service_name'],
    'api_credentials has exactly its primary key and unique_service_name'
);
select col_is_unique(
    'public', 'api_credentials', array['service_name']::name[],
    'api_credentials.service_name is unique'
);

-- Indexes.
select indexes_are(
    'public', 'api_credentials',
    array[
        'api_credentials_pkey', 'unique_service_name', 'idx_api_credentials_active',
        'idx_api_credentials_expires'
    ]::name[],
    'api_credentials has exactly the expected indexes'
);
select hasnt_index(
    'public', 'api_credentials', 'idx_api_credentials_service',
    'idx_api_credentials_service is left out (unique_service_name already indexes service_name)'
);
select index_is_unique(
    'public', 'api_credentials', 'unique_service_name', 'unique_service_name is a unique index'
);
select has_index(
    'public', 'api_credentials', 'unique_service_name', array['service_name']::name[],
    'unique_service_name is on (service_name)'
);
select has_index(
    'public', 'api_credentials', 'idx_api_credentials_active', array['is_active']::name[],
    'idx_api_credentials_active is on (is_active)'
);
select has_index(
    'public', 'api_credentials', 'idx_api_credentials_expires', array['expires_at']::name[],
    'idx_api_credentials_expires is on (expires_at)'
);

-- Behaviour: NOT NULLs, UNIQUE, defaults.
insert into public.api_credentials (service_name, api_key)
values ('pgtap service', 'pgtap-key');

select results_eq(
    $$
    select rate_limit, rate_limit_window, is_active, metadata, created_at = now(), expires_at
    from public.api_credentials
    where service_name = 'pgtap service'
    $$,
    $$values (1000, interval '1 hour', true, '{}'::jsonb, true, null::timestamptz)$$,
    'a new credential gets rate_limit 1000 per 1 hour, active, metadata {}, no expiry'
);
select throws_ok(
    $$
    insert into public.api_credentials (service_name, api_key)
    values ('pgtap service', 'pgtap-other-key')
    $$,
    '23505', null, 'a second credential for the same service violates unique_service_name'
);
select throws_ok(
    $$insert into public.api_credentials (service_name, api_key) values (null, 'pgtap-key')$$,
    '23502', null, 'api_credentials.service_name null is rejected'
);
select throws_ok(
    $$insert into public.api_credentials (service_name, api_key) values ('pgtap service 2', null)$$,
    '23502', null, 'api_credentials.api_key null is rejected'
);

select * from finish();
rollback;
