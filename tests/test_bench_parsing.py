"""The benchmarks' pure parts, without a server: the scans read out of an EXPLAIN (FORMAT JSON)
plan and the verdict on them (hrp_harness/bench/queries.py), percentiles, and pgbench's summary
and per-transaction logs (hrp_harness/bench/load.py)."""

from __future__ import annotations

import subprocess

import pytest

from hrp_harness.bench.load import parse_run
from hrp_harness.bench.queries import PlanCheck, _scans, percentiles

pytestmark = pytest.mark.unit

#: The shape PostgreSQL 15 gives `explain (format json)` of a join (keys it adds beyond these are ignored).
PLAN = {
    "Node Type": "Limit",
    "Plans": [{
        "Node Type": "Nested Loop", "Parent Relationship": "Outer",
        "Plans": [
            {"Node Type": "Index Scan", "Relation Name": "predictions", "Alias": "p",
             "Index Name": "idx_predictions_race_id"},
            {"Node Type": "Bitmap Heap Scan", "Relation Name": "horses", "Alias": "h",
             "Plans": [{"Node Type": "Bitmap Index Scan", "Index Name": "horses_pkey"}]},
            {"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "races", "Alias": "r"}]},
            {"Node Type": "Index Only Scan", "Relation Name": "predictions",
             "Index Name": "idx_predictions_race_id"},
        ],
    }],
}


def test_every_scan_of_a_plan_in_plan_order_with_its_index():
    assert _scans(PLAN) == ["Index Scan on predictions using idx_predictions_race_id",
                            "Bitmap Heap Scan on horses", "Bitmap Index Scan using horses_pkey",
                            "Seq Scan on races", "Index Only Scan on predictions using idx_predictions_race_id"]


def test_a_plan_without_a_sequential_scan_of_predictions_is_ok():
    check = PlanCheck("race_predictions", tuple(_scans(PLAN)))
    assert check.seq_scans == ("races",)
    assert check.ok
    assert check.summary == ("Index Scan on predictions using idx_predictions_race_id; Bitmap Heap Scan on "
                             "horses; Bitmap Index Scan using horses_pkey; Seq Scan on races; Index Only Scan "
                             "on predictions using idx_predictions_race_id")


def test_a_sequential_scan_of_predictions_anywhere_in_the_plan_is_not():
    plan = {"Node Type": "Gather", "Plans": [{"Node Type": "Hash Join", "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "predictions"},
        {"Node Type": "Seq Scan", "Relation Name": "predictions"}]}]}
    check = PlanCheck("point_select", tuple(_scans(plan)))
    assert check.seq_scans == ("predictions", "predictions")
    assert not check.ok
    assert check.summary == "Seq Scan on predictions"  # each scan named once


def test_percentiles_are_nearest_rank_rounded_to_the_microsecond():
    values = [float(v) for v in range(100, 0, -1)]  # 1 .. 100, unsorted
    assert percentiles(values) == {"p50": 51.0, "p95": 96.0, "p99": 100.0, "n": 100}
    assert percentiles([1.23456]) == {"p50": 1.235, "p95": 1.235, "p99": 1.235, "n": 1}
    empty = percentiles([])
    assert empty["n"] == 0 and all(empty[k] != empty[k] for k in ("p50", "p95", "p99"))  # NaN


SUMMARY = """pgbench (15.10 (Debian 15.10-0+deb12u1))
transaction type: multiple scripts
number of failed transactions: 2 (0.500%)
tps = 123.456789 (without initial connection time)
"""


def _run(tmp_path, stdout: str, stderr: str = "", returncode: int = 0, logs: dict[str, str] | None = None):
    for name, text in (logs or {}).items():
        (tmp_path / name).write_text(text)
    done = subprocess.CompletedProcess([], returncode, stdout, stderr)
    return parse_run(done, tmp_path, ["point_select", "race_join"], started=1000.0, clients=4)


def test_a_pgbench_run_per_script_and_per_second(tmp_path):
    # client_id transaction_no time_us script_no time_epoch time_us
    logs = {"tx.1": "0 1 2000 0 1000 5\n0 2 4000 1 1001 5\n", "tx.1.1": "1 1 6000 0 1001 5\n1 2 failed 1 1001 5\n"}
    got = _run(tmp_path, SUMMARY, logs=logs)
    assert (got["clients"], got["tps"], got["errors"], got["aborted"], got["exit"], got["message"]) == \
        (4, 123.456789, 2, False, 0, "")
    assert got["transactions"] == 3
    assert (got["p50_ms"], got["p95_ms"], got["p99_ms"]) == (4.0, 6.0, 6.0)
    assert got["scripts"] == {"point_select": {"p50": 6.0, "p95": 6.0, "p99": 6.0, "n": 2},
                              "race_join": {"p50": 4.0, "p95": 4.0, "p99": 4.0, "n": 1}}
    assert got["per_second"] == {0: {"p50": 2.0, "p95": 2.0, "p99": 2.0, "n": 1},
                                 1: {"p50": 6.0, "p95": 6.0, "p99": 6.0, "n": 2}}
    assert not list(tmp_path.glob("tx*")), "the logs are read once and removed"


def test_an_aborted_pgbench_run_counts_every_client_and_says_why(tmp_path):
    got = _run(tmp_path, "", "pgbench: error: connection to server failed\nclient 3 aborted in command 1\n", 2)
    assert (got["tps"], got["aborted"], got["exit"], got["transactions"]) == (0.0, True, 2, 0)
    assert got["errors"] == 4 + 1  # every client (no tps line), and the client that says it aborted
    assert got["message"] == "client 3 aborted in command 1"
