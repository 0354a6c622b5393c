-- 0000_deploy_ledger: the apply ledger of `invoke apply` (hrp_harness/apply.py).
-- Every applied file of deploy.plan is recorded with its sha256, so a re-run applies nothing,
-- a changed versioned file is refused and a changed repeatable file is re-applied.
-- requires: nothing (applied first, by the same mechanism it records)

create schema if not exists hrp_deploy;

comment on schema hrp_deploy is
'Deployment bookkeeping of the HRP platform (apply ledger); not application data.';

create table if not exists hrp_deploy.ledger (
    file_path text primary key,
    change_kind text not null,
    sha256 text not null,
    applied_at timestamptz not null default clock_timestamp(),
    applied_by text not null default current_user,
    apply_count integer not null default 1,
    constraint check_ledger_change_kind_known check (change_kind in ('versioned', 'repeatable')),
    constraint check_ledger_sha256_hex check (sha256 ~ '^[0-9a-f]{64}$')
);

comment on table hrp_deploy.ledger is
'One row per file of deploy.plan applied to this database, with the sha256 it had when applied.';
comment on column hrp_deploy.ledger.file_path is
'Path of the SQL file relative to the repository root.';
comment on column hrp_deploy.ledger.apply_count is
'How many times the file was applied (repeatable files grow it on each changed checksum).';

create or replace function hrp_deploy.record_applied(
    p_path text, p_kind text, p_checksum text
) returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    -- A versioned file is applied once: a second record means a stale plan was applied,
    -- and its transaction (the file's) must roll back.
    if p_kind = 'versioned' and exists (select 1 from hrp_deploy.ledger where file_path = p_path) then
        raise exception 'versioned file % is already applied to this database', p_path
            using errcode = 'unique_violation';
    end if;
    insert into hrp_deploy.ledger as l (file_path, change_kind, sha256)
    values (p_path, p_kind, p_checksum)
    on conflict (file_path) do update
        set sha256 = excluded.sha256,
            change_kind = excluded.change_kind,
            applied_at = clock_timestamp(),
            applied_by = current_user,
            apply_count = l.apply_count + 1;
end;
$$;

comment on function hrp_deploy.record_applied(text, text, text) is
'Records one applied file in hrp_deploy.ledger, in the transaction that applied it.';
