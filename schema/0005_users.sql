-- 0005_users: application accounts (login, profile, flags, preferences).
-- requires: (none)

create table if not exists public.users (
    id bigserial primary key,
    username varchar(50) unique not null,
    email varchar(255) unique not null,
    password_hash varchar(255) not null,
    first_name varchar(50),
    last_name varchar(50),
    is_active boolean default true,
    is_admin boolean default false,
    preferences jsonb default '{}',
    created_at timestamptz default current_timestamp,
    updated_at timestamptz default current_timestamp,
    last_login timestamptz,

    constraint valid_email check (email ~* '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$')
);

comment on table public.users is
'Application user accounts.';
comment on column public.users.username is
'Login name, unique (case-sensitive).';
comment on column public.users.email is
'Email address, unique (case-sensitive) and shaped like local@domain.tld (valid_email).';
comment on column public.users.password_hash is
'Password hash as produced by the application (never the password itself).';
comment on column public.users.is_active is
'False for a disabled account that may not log in.';
comment on column public.users.is_admin is
'True for an administrator.';
comment on column public.users.preferences is
'User interface preferences as a JSON object; {} when none.';
comment on column public.users.created_at is
'When the row was inserted.';
comment on column public.users.updated_at is
'When the row was last updated; maintained by trigger update_users_updated_at.';
comment on column public.users.last_login is
'Time of the last successful login; null if the user never logged in.';

-- Per-table indexes.
-- idx_users_username (unique, username) is left out: users_username_key covers exactly that column.
-- idx_users_email (unique, email) is left out: users_email_key covers exactly that column.
create index if not exists idx_users_active on public.users (is_active);
create index if not exists idx_users_last_login on public.users (last_login);
create index if not exists idx_users_preferences_gin on public.users using gin (preferences);

-- Partial index for the active-users filter.
create index if not exists idx_active_users on public.users (id) where is_active = true;
