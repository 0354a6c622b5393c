-- drill_writes: the table the failover drill (hrp_harness.ha.drill) writes into.
-- Each row is one commit the drill's client saw acknowledged; n is the client's own counter, so a
-- commit acknowledged before the failover and missing after it is a lost commit.
-- Lives in the maintenance database `postgres`, apart from the project's schema.
-- requires: nothing.

create table if not exists public.hrp_drill_writes (
    n bigint not null,
    written_at timestamptz not null default clock_timestamp(),
    constraint hrp_drill_writes_pkey primary key (n)
);

comment on table public.hrp_drill_writes is
'Failover drill: one row per commit acknowledged to the drill client (hrp_harness.ha).';

truncate public.hrp_drill_writes;
