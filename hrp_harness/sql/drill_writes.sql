-- drill_writes: the table the failover drill and the chaos runs write into
-- (hrp_harness.writeload).
-- Each row is one commit a client of the write load saw acknowledged; n is the clients' own
-- counter, so a commit acknowledged before a fault and missing after it is a lost commit.
-- Lives in the maintenance database `postgres`, apart from the project's schema.
-- requires: nothing.

create table if not exists public.hrp_drill_writes (
    n bigint not null,
    written_at timestamptz not null default clock_timestamp(),
    constraint hrp_drill_writes_pkey primary key (n)
);

comment on table public.hrp_drill_writes is
'Drill and chaos runs: one row per commit acknowledged to a client (hrp_harness.writeload).';

truncate public.hrp_drill_writes;
