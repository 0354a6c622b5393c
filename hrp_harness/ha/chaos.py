"""`invoke cluster.chaos`: one single fault at a time under a recorded write load, then the
acknowledged commits compared with the final primary and the cluster required to converge by
itself (one leader, a synchronous standby, every member streaming) within a bound.

A round reads as its phases: healthy cluster -> write load -> fault (held, then ended as a
supervisor would: SIGCONT, or a restart as systemd's Restart=always does) -> convergence ->
load stopped -> lost commits counted. No key is written to etcd by a round; a run changes the
DCS timings only when asked for other ones than the cluster's, and sets them back (also on
SIGTERM/SIGHUP; `invoke cluster.up` sets them after a SIGKILL).
"""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass

import psutil
import psycopg

from hrp_harness.platform import procs
from hrp_harness.ha import writeload
from hrp_harness.ha.patroni import HaCluster, HaError, timings_for_run

FAULTS = ("kill-primary", "freeze-primary", "freeze-postmaster", "kill-sync-standby", "stop-dcs",
          "kill-dcs")
#: How long a fault is held: the issue's 40 s at production timings (longer than ttl 30, so a
#: frozen or dead primary loses its lock), ttl + 5 s at the drill's.
HOLD_S = {"production": 40.0, "drill": 25.0}
#: The cluster must be healthy again within this many seconds of the fault's start (its hold
#: included) ...
CONVERGE_BOUND_S = {"production": 240.0, "drill": 150.0}
#: ... and no client may wait longer than the spec's RTO (2 minutes) for an acknowledged commit.
WRITE_OUTAGE_BOUND_S = 120.0
WARMUP_S = 3.0
AFTER_S = 3.0


@dataclass
class Round:
    fault: str
    round: int
    victim: str
    old_primary: str
    new_primary: str | None
    acked: int
    lost: int
    unknown: int
    write_outage_s: float
    recovery_s: float | None
    converged: bool
    problems: str = ""


class Fault:
    """Inject, then end, one fault on a cluster; `victim` names what was hit."""

    def __init__(self, cluster: HaCluster, name: str, hold_s: float):
        self.cluster, self.name, self.hold_s = cluster, name, hold_s
        self.victim = ""
        self._stopped: list[psutil.Process] = []

    def run(self) -> float:
        """Inject, hold, end; returns the monotonic time of the injection."""
        cluster, name = self.cluster, self.name
        leader = cluster.leader()
        if name in ("kill-primary", "kill-sync-standby"):
            self.victim = leader if name == "kill-primary" else cluster.sync_standby()
            started = cluster.kill_node(self.victim)
            time.sleep(self.hold_s)
            cluster.start_node(self.victim)  # the supervisor's restart
        elif name == "freeze-primary":
            self.victim = leader
            started = self._freeze(cluster.node_processes(leader))
        elif name == "freeze-postmaster":
            self.victim = f"{leader} postmaster"
            started = self._freeze([psutil.Process(cluster.postmaster_pid(leader))])
        elif name == "stop-dcs":
            self.victim = "etcd"
            started = self._freeze([psutil.Process(cluster.etcd_pid())])
        else:  # kill-dcs
            self.victim = "etcd"
            started = time.monotonic()
            procs.kill_tree_now([cluster.etcd_pid()])
            time.sleep(self.hold_s)
            cluster.start_etcd()
        return started

    def _freeze(self, victims: list[psutil.Process]) -> float:
        started = time.monotonic()
        for proc in victims:
            try:
                os.kill(proc.pid, signal.SIGSTOP)
            except ProcessLookupError:  # a backend that ended between listing and signal
                continue
            self._stopped.append(proc)
        try:
            time.sleep(self.hold_s)
        finally:
            self.thaw()
        return started

    def thaw(self) -> None:
        """SIGCONT what was stopped (and the runuser parents that stopped with it); a frozen
        postmaster the postmaster check killed is simply gone."""
        procs.continue_stopped(self._stopped)
        self._stopped = []


def chaos_round(cluster: HaCluster, fault: str, number: int, timings_name: str,
                first_id: int) -> tuple[Round, int]:
    """One round; returns it and the next free commit id."""
    bound = CONVERGE_BOUND_S[timings_name]
    # Phase 1: a healthy cluster to start from.
    cluster.wait_healthy(timeout=bound)
    old_primary = cluster.leader()
    # Phase 2: the recorded write load.
    load = writeload.WriteLoad(cluster.dsn(connect_timeout=2), first_id=first_id).start()
    injected = time.monotonic()
    injector = Fault(cluster, fault, HOLD_S[timings_name])
    try:
        time.sleep(WARMUP_S)
        if not load.record.acks:
            raise HaError(f"the write load got no commit acknowledged before the fault: "
                          f"{load.record.last_error}")
        # Phase 3: the fault, held and ended.
        injected = injector.run()
        # Phase 4: convergence within the bound, and writes acknowledged again.
        recovery_s, problems = _converge(cluster, injected, bound)
        if recovery_s is not None:
            cluster._wait(lambda: load.record.first_ack_after(time.monotonic() - 0.5) is not None, 60,
                          "writes acknowledged after convergence")
            time.sleep(AFTER_S)
    finally:
        injector.thaw()
        record = load.stop()
    # Phase 5: every acknowledged commit on the final primary.
    ended = max((a.at for a in record.acks), default=injected)
    try:
        lost = writeload.missing(cluster.dsn(), record.acked_ids)
    except psycopg.Error as exc:  # no primary to ask: the round did not converge either
        lost, problems = [], [*problems, f"lost commits not counted: {str(exc).splitlines()[0]}"]
    result = Round(fault=fault, round=number, victim=injector.victim, old_primary=old_primary,
                   new_primary=cluster.leader(), acked=len(record.acks), lost=len(lost),
                   unknown=record.unknown, write_outage_s=round(record.max_gap_s(injected, ended), 1),
                   recovery_s=None if recovery_s is None else round(recovery_s, 1),
                   converged=recovery_s is not None, problems="; ".join(problems))
    if lost:
        result.problems = f"lost commit ids {lost[:20]}" + (f"; {result.problems}" if problems else "")
    next_id = max([a.n for a in record.acks] + [first_id]) + 1000
    return result, next_id


def _converge(cluster: HaCluster, injected: float, bound: float) -> tuple[float | None, list[str]]:
    """Seconds from the injection until the cluster is healthy, or None after bound; the last
    problems seen."""
    problems: list[str] = []
    while time.monotonic() - injected < bound:
        try:
            problems = cluster.problems()
        except (OSError, ValueError) as exc:
            problems = [str(exc)]
        if not problems:
            return time.monotonic() - injected, []
        time.sleep(0.5)
    return None, problems


def run_chaos(fault: str, rounds: int = 1, timings_name: str = "production", base=None,
              echo=print) -> dict:
    """`invoke cluster.chaos`: ROUNDS rounds of FAULT; prints a line per round, a table, and as
    last line the summary JSON {"fault", "rounds", "lost_commits", "converged",
    "max_write_outage_s", "max_recovery_s"}; returns the summary (with the rounds under
    "details", which the JSON line leaves out)."""
    if fault not in FAULTS:
        raise HaError(f"fault {fault!r}: expected one of {', '.join(FAULTS)}")
    if int(rounds) < 1:
        raise HaError(f"rounds must be 1 or more, got {rounds}")
    results: list[Round] = []
    with timings_for_run(timings_name, base) as cluster:
        writeload.prepare_table(cluster.dsn())
        next_id = 1
        for number in range(1, int(rounds) + 1):
            result, next_id = chaos_round(cluster, fault, number, timings_name, next_id)
            results.append(result)
            echo(f"round {number}: {fault} on {result.victim}: {result.acked} commits acknowledged, "
                 f"{result.lost} lost, longest write outage {result.write_outage_s} s, "
                 + (f"converged in {result.recovery_s} s" if result.converged else
                    f"NOT converged within {CONVERGE_BOUND_S[timings_name]:.0f} s: {result.problems}"))
            if not result.converged:
                break
    summary = {
        "fault": fault,
        "rounds": len(results),
        "lost_commits": sum(r.lost for r in results),
        "converged": len(results) == int(rounds) and all(r.converged for r in results),
        "max_write_outage_s": max(r.write_outage_s for r in results),
        "max_recovery_s": (max(r.recovery_s for r in results)
                           if all(r.converged for r in results) else None),
    }
    for line in table(results):
        echo(line)
    echo(json.dumps(summary))
    return {**summary, "details": [asdict(r) for r in results]}


def passed(summary: dict) -> bool:
    """0 lost commits, converged every round, no write outage beyond the spec's RTO."""
    return (summary["lost_commits"] == 0 and summary["converged"]
            and summary["max_write_outage_s"] <= WRITE_OUTAGE_BOUND_S)


def table(results: list[Round]) -> list[str]:
    head = ("round", "victim", "old -> new primary", "acked", "lost", "unknown", "write outage s",
            "recovery s", "converged")
    rows = [(str(r.round), r.victim, f"{r.old_primary} -> {r.new_primary}", str(r.acked), str(r.lost),
             str(r.unknown), f"{r.write_outage_s:.1f}",
             "-" if r.recovery_s is None else f"{r.recovery_s:.1f}", "yes" if r.converged else "NO")
            for r in results]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head), fmt.format(*("-" * w for w in widths)),
            *(fmt.format(*row) for row in rows)]
