-- update_updated_at_column: BEFORE UPDATE row trigger function that stamps
-- updated_at with the transaction time, and the five triggers that use it.
-- Repeatable: create or replace only, safe to re-apply.
-- requires: schema/0002_races.sql schema/0003_horses.sql schema/0004_predictions.sql
--           schema/0005_users.sql schema/0006_api_credentials.sql

create or replace function public.update_updated_at_column()
returns trigger
language plpgsql
as $$
begin
    new.updated_at = current_timestamp;
    return new;
end;
$$;

comment on function public.update_updated_at_column() is
'Trigger function: sets NEW.updated_at to current_timestamp (transaction start) on every update.';

create or replace trigger update_races_updated_at before update on public.races
for each row execute function public.update_updated_at_column();

create or replace trigger update_horses_updated_at before update on public.horses
for each row execute function public.update_updated_at_column();

create or replace trigger update_predictions_updated_at before update on public.predictions
for each row execute function public.update_updated_at_column();

create or replace trigger update_users_updated_at before update on public.users
for each row execute function public.update_updated_at_column();

create or replace trigger update_api_credentials_updated_at before update on public.api_credentials
for each row execute function public.update_updated_at_column();
