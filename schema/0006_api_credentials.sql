-- 0006_api_credentials: keys and limits for the external data services the
-- application calls, one row per service.
-- requires: (none)

create table if not exists public.api_credentials (
    id bigserial primary key,
    service_name varchar(100) not null,
    api_key text not null,
    api_secret text,
    endpoint_url text,
    rate_limit integer default 1000,
    rate_limit_window interval default '1 hour',
    is_active boolean default true,
    metadata jsonb default '{}',
    created_at timestamptz default current_timestamp,
    updated_at timestamptz default current_timestamp,
    expires_at timestamptz,

    constraint unique_service_name unique (service_name)
);

comment on table public.api_credentials is
'Credentials for external APIs, one row per service; holds secrets, grant access sparingly.';
comment on column public.api_credentials.service_name is
'Name of the external service, unique.';
comment on column public.api_credentials.api_key is
'API key (or token) sent to the service.';
comment on column public.api_credentials.api_secret is
'API secret paired with the key, if the service uses one.';
comment on column public.api_credentials.endpoint_url is
'Base URL of the service API.';
comment on column public.api_credentials.rate_limit is
'Maximum number of requests allowed per rate_limit_window.';
comment on column public.api_credentials.rate_limit_window is
'Time window the rate_limit applies to.';
comment on column public.api_credentials.is_active is
'False when the credential must not be used.';
comment on column public.api_credentials.metadata is
'Extra service-specific settings as a JSON object; {} when none.';
comment on column public.api_credentials.created_at is
'When the row was inserted.';
comment on column public.api_credentials.updated_at is
'When the row was last updated; maintained by trigger update_api_credentials_updated_at.';
comment on column public.api_credentials.expires_at is
'When the credential expires; null if it does not.';

-- Per-table indexes.
-- idx_api_credentials_service (service_name) is left out: unique_service_name's index covers
-- exactly that column.
create index if not exists idx_api_credentials_active on public.api_credentials (is_active);
create index if not exists idx_api_credentials_expires on public.api_credentials (expires_at);
