-- pgTAP tests for schema/0005_users.sql: structure, valid_email, unique
-- username/email, NOT NULLs, defaults and the partial index.
-- Safe against a loaded database: fixtures are named 'pgtap ...' and rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(46);

select has_table('public', 'users', 'table public.users exists');
select isnt(
    obj_description('public.users'::regclass, 'pg_class'), null, 'public.users has a comment'
);
select is_empty(
    $$
    select a.attname
    from pg_catalog.pg_attribute as a
    where
        a.attrelid = 'public.users'::regclass
        and a.attname in (
            'email', 'password_hash', 'is_active', 'preferences', 'updated_at', 'last_login'
        )
        and col_description(a.attrelid, a.attnum) is null
    $$,
    'users.email, password_hash, is_active, preferences, updated_at, last_login have comments'
);
select columns_are(
    'public', 'users',
    array[
        'id', 'username', 'email', 'password_hash', 'first_name', 'last_name', 'is_active',
        'is_admin', 'preferences', 'created_at', 'updated_at', 'last_login'
    ]::name[],
    'users has exactly the spec columns'
);

-- Column types, nullability and defaults: tests/test_spec_schema.py compares every
-- column with the spec's own DDL; columns_are above pins the set of columns.

-- Keys, nullability, defaults.
select col_is_pk('public', 'users', 'id', 'users.id is the primary key');
select col_has_default('public', 'users', 'id', 'users.id has a default (its sequence)');
select has_sequence('public', 'users_id_seq', 'sequence users_id_seq backs users.id');
select col_not_null('public', 'users', 'username', 'users.username is not null');
select col_not_null('public', 'users', 'email', 'users.email is not null');
select col_not_null('public', 'users', 'password_hash', 'users.password_hash is not null');
select col_is_null('public', 'users', 'first_name', 'users.first_name is nullable');
select col_is_null('public', 'users', 'last_login', 'users.last_login is nullable');
select col_default_is(
    'public', 'users', 'is_active', 'true'::text, 'users.is_active defaults to true'
);
select col_default_is(
    'public', 'users', 'is_admin', 'false'::text, 'users.is_admin defaults to false'
);
select col_default_is(
    'public', 'users', 'preferences', '{}'::text, 'users.preferences defaults to {}'
);
select col_default_is(
    'public', 'users', 'created_at', 'CURRENT_TIMESTAMP'::text,
    'users.created_at defaults to current_timestamp'
);
select col_default_is(
    'public', 'users', 'updated_at', 'CURRENT_TIMESTAMP'::text,
    'users.updated_at defaults to current_timestamp'
);
select set_eq(
    $$
    select c.conname::text
    from pg_catalog.pg_constraint as c
    where c.conrelid = 'public.users'::regclass
    $$,
    array['users_pkey', 'users_username_key', 'users_email_key', 'valid_email'],
    'users has exactly its primary key, users_username_key, users_email_key and valid_email'
);
select col_is_unique('public', 'users', array['username']::name[], 'users.username is unique');
select col_is_unique('public', 'users', array['email']::name[], 'users.email is unique');
select col_has_check('public', 'users', 'email', 'users.email has a check constraint');

-- Indexes.
select indexes_are(
    'public', 'users',
    array[
        'users_pkey', 'users_username_key', 'users_email_key', 'idx_users_active',
        'idx_users_last_login', 'idx_users_preferences_gin', 'idx_active_users'
    ]::name[],
    'users has exactly the expected indexes'
);
select hasnt_index(
    'public', 'users', 'idx_users_username',
    'idx_users_username is left out (users_username_key already indexes username)'
);
select hasnt_index(
    'public', 'users', 'idx_users_email',
    'idx_users_email is left out (users_email_key already indexes email)'
);
select index_is_unique(
    'public', 'users', 'users_username_key', 'users_username_key is a unique index'
);
select index_is_unique('public', 'users', 'users_email_key', 'users_email_key is a unique index');
select has_index(
    'public', 'users', 'users_username_key', array['username']::name[],
    'users_username_key is on (username)'
);
select has_index(
    'public', 'users', 'users_email_key', array['email']::name[],
    'users_email_key is on (email)'
);
select has_index(
    'public', 'users', 'idx_users_active', array['is_active']::name[],
    'idx_users_active is on (is_active)'
);
select has_index(
    'public', 'users', 'idx_users_last_login', array['last_login']::name[],
    'idx_users_last_login is on (last_login)'
);
select has_index(
    'public', 'users', 'idx_users_preferences_gin', array['preferences']::name[],
    'idx_users_preferences_gin is on (preferences)'
);
select index_is_type(
    'public', 'users', 'idx_users_preferences_gin', 'gin',
    'idx_users_preferences_gin is a gin index'
);
select has_index(
    'public', 'users', 'idx_active_users', array['id']::name[], 'idx_active_users is on (id)'
);
select matches(
    (
        select i.indexdef
        from pg_catalog.pg_indexes as i
        where i.schemaname = 'public' and i.indexname = 'idx_active_users'
    ),
    'USING btree \(id\) WHERE \(is_active = true\)$',
    'idx_active_users is partial: WHERE is_active = true'
);

-- Behaviour: valid_email, NOT NULLs, UNIQUE, defaults.
select lives_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user', 'pgtap.user+tag@example.co.uk', 'x')
    $$,
    'a well-formed email is accepted'
);
select lives_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user upper', 'PGTAP.UPPER@EXAMPLE.COM', 'x')
    $$,
    'valid_email is case-insensitive (upper-case address accepted)'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user 2', 'not-an-email', 'x')
    $$,
    '23514', null, 'an email without @ violates valid_email'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user 2', 'pgtap@localhost', 'x')
    $$,
    '23514', null, 'an email without a dotted domain violates valid_email'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user 2', 'pgtap@example.c', 'x')
    $$,
    '23514', null, 'an email with a one-letter top-level domain violates valid_email'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user 2', 'pgtap user@example.com', 'x')
    $$,
    '23514', null, 'an email with a space violates valid_email'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user', 'pgtap.other@example.com', 'x')
    $$,
    '23505', null, 'a second user with the same username violates users_username_key'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user 3', 'pgtap.user+tag@example.co.uk', 'x')
    $$,
    '23505', null, 'a second user with the same email violates users_email_key'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values (null, 'pgtap.null@example.com', 'x')
    $$,
    '23502', null, 'users.username null is rejected'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user null email', null, 'x')
    $$,
    '23502', null, 'users.email null is rejected'
);
select throws_ok(
    $$
    insert into public.users (username, email, password_hash)
    values ('pgtap user null hash', 'pgtap.nullhash@example.com', null)
    $$,
    '23502', null, 'users.password_hash null is rejected'
);
select results_eq(
    $$
    select is_active, is_admin, preferences, created_at = now(), updated_at = now(), last_login
    from public.users
    where username = 'pgtap user'
    $$,
    $$values (true, false, '{}'::jsonb, true, true, null::timestamptz)$$,
    'a new user is active, not admin, with preferences {} and no last_login'
);

select * from finish();
rollback;
