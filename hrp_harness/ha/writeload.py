"""The recorded write load of the failover drill and the chaos runs: clients that insert one row per
commit into public.hrp_drill_writes (data/drill/drill_writes.sql) through the multi-host
conninfo, and record client-side every commit id the server acknowledged and when.

Two clients, as an application has them:
- `pooled` keeps one connection (a pool's), opening a new one only after an error;
- `fresh` opens a new connection for every commit (no pool; it also notices a postmaster that
  cannot start backends any more while pooled connections still work).

A client waits at most COMMIT_TIMEOUT_S for a commit (libpq has no read timeout, and
statement_timeout does not cover the synchronous-replication wait: docs/runbook.md). It then
abandons that connection without cancelling the statement (a cancel would end the wait and commit
locally, unreplicated) and goes on with a new one; the commit's outcome is unknown to the client.
Should the abandoned call return later with success, that commit counts as acknowledged too.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from hrp_harness.platform.paths import REPO

COMMIT_TIMEOUT_S = 5.0
DRILL_TABLE_SQL = REPO / "data" / "drill" / "drill_writes.sql"
INSERT = sql.SQL("insert into public.hrp_drill_writes (n) values (%s)")


@dataclass
class Ack:
    n: int
    at: float  # time.monotonic() when the client got the answer
    client: str
    opened: float  # time.monotonic() when its connection was opened
    port: int  # the server's port: which member acknowledged it


@dataclass
class LoadRecord:
    """What the clients saw: acknowledged commits, failed attempts, unknown outcomes."""

    acks: list[Ack] = field(default_factory=list)
    failures: int = 0
    unknown: int = 0
    last_error: str | None = None

    @property
    def acked_ids(self) -> list[int]:
        return [a.n for a in self.acks]

    def max_gap_s(self, start: float, end: float) -> float:
        """Longest time in [start, end] during which some client got no acknowledgement."""
        worst = 0.0
        for client in {a.client for a in self.acks} or {"none"}:
            times = sorted(a.at for a in self.acks if a.client == client and start <= a.at <= end)
            edges = [start, *times, end]
            worst = max(worst, max(b - a for a, b in zip(edges, edges[1:])))
        return worst

    def first_ack_after(self, moment: float, new_connection: bool = False,
                        other_than_port: int | None = None) -> float | None:
        """When the first commit after moment was acknowledged (new_connection: on a connection
        opened after moment; other_than_port: by another member than that one, as the drill's
        RTO wants it)."""
        later = [a.at for a in self.acks if a.at > moment and (not new_connection or a.opened > moment)
                 and a.port != other_than_port]
        return min(later) if later else None


class _Client(threading.Thread):
    def __init__(self, load: WriteLoad, name: str, fresh: bool):
        super().__init__(daemon=True, name=f"writeload-{name}")
        self.load, self.client, self.fresh = load, name, fresh
        self.conn: psycopg.Connection | None = None
        self.opened = 0.0

    def _attempt(self, n: int, conn_box: list) -> None:
        """One commit; runs in a thread of its own so that the client can walk away from it.
        conn_box: [connection or None, when it was opened, then the error if any]."""
        try:
            if conn_box[0] is None:
                conn_box[1] = time.monotonic()
                conn_box[0] = psycopg.connect(self.load.dsn, autocommit=True)
            conn = conn_box[0]
            conn.execute(INSERT, [n])
            self.load.add_ack(Ack(n, time.monotonic(), self.client, conn_box[1], conn.info.port))
            if self.fresh:
                conn.close()
        except psycopg.Error as exc:
            conn_box.append(exc)
            if conn_box[0] is not None:
                conn_box[0].close()

    def run(self) -> None:
        while not self.load.halted.is_set():
            n = self.load.next_id()
            box = [None, 0.0] if self.fresh or self.conn is None else [self.conn, self.opened]
            worker = threading.Thread(target=self._attempt, args=(n, box), daemon=True)
            worker.start()
            worker.join(COMMIT_TIMEOUT_S)
            if worker.is_alive():  # walk away: the outcome is unknown (the worker may still ack)
                self.load.pending.append(worker)
                connected = box[0] is not None  # else still connecting: nothing was sent
                self.load.note(unknown=connected,
                               error=f"commit {n}: no answer within {COMMIT_TIMEOUT_S:g} s")
                self.conn = None
                continue
            if len(box) > 2:
                self.load.note(error=str(box[2]).strip())
                self.conn = None
                time.sleep(0.05)
            elif not self.fresh:
                self.conn, self.opened = box[0], box[1]
        if self.conn is not None:
            self.conn.close()


class WriteLoad:
    """Start with start(), stop with stop(); record holds what the clients saw."""

    def __init__(self, dsn: str, clients: tuple[str, ...] = ("pooled", "fresh"), first_id: int = 1):
        self.dsn = dsn
        self.record = LoadRecord()
        self.halted = threading.Event()
        self.pending: list[threading.Thread] = []
        self._ids = itertools.count(first_id)
        self._lock = threading.Lock()
        self._clients = [_Client(self, name, fresh=(name == "fresh")) for name in clients]

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def add_ack(self, ack: Ack) -> None:
        with self._lock:
            self.record.acks.append(ack)

    def note(self, unknown: bool = False, error: str | None = None) -> None:
        with self._lock:
            if unknown:
                self.record.unknown += 1
            else:
                self.record.failures += 1
            self.record.last_error = error

    def start(self) -> WriteLoad:
        for client in self._clients:
            client.start()
        return self

    def stop(self, late_ack_wait_s: float = 10.0) -> LoadRecord:
        """Stop the clients; give abandoned commits late_ack_wait_s to come back."""
        self.halted.set()
        for client in self._clients:
            client.join(COMMIT_TIMEOUT_S + 5)
        deadline = time.monotonic() + late_ack_wait_s
        for worker in self.pending:
            worker.join(max(0.0, deadline - time.monotonic()))
        return self.record


def prepare_table(dsn: str) -> None:
    """Create (or empty) public.hrp_drill_writes on the primary."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DRILL_TABLE_SQL.read_text())


def missing(dsn: str, ids: list[int]) -> list[int]:
    """The ids among `ids` that the database of dsn does not hold (the lost commits)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = {n for (n,) in conn.execute(
            sql.SQL("select n from public.hrp_drill_writes where n = any(%s)"), [ids])}
    return sorted(set(ids) - found)
