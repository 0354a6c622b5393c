-- drill_writes: the table the failover drill and the chaos runs write into
-- (hrp_harness.ha.writeload).
-- Each row is one commit a client of the write load saw acknowledged; n is the clients' own
-- counter, so a commit acknowledged before a fault and missing after it is a lost commit.
-- Lives in the maintenance database `postgres` of the throwaway HA cluster a drill runs, apart
-- from the project's schema: it is not in deploy.plan and no deploy creates it. Under data/,
-- beside the benchmarks' own tables (data/bench/pgbench_keys.sql), because it is the drill's
-- working data, run by the harness (hrp_harness.ha.writeload.prepare_table) before each drill and
-- emptied there, not part of the application's schema.
-- requires: nothing.

create table if not exists public.hrp_drill_writes (
    n bigint not null,
    written_at timestamptz not null default clock_timestamp(),
    constraint hrp_drill_writes_pkey primary key (n)
);

comment on table public.hrp_drill_writes is
'Drill and chaos runs: one row per commit acknowledged to a client (hrp_harness.ha.writeload).';

truncate public.hrp_drill_writes;
