"""Tuning from the host (hrp_harness/platform/sizing.py): the template rendered for the spec's 64 GB /
16-core server and for this machine, the reference table of conf/README.md, and the values a
running cluster holds."""

from __future__ import annotations

import re

import psycopg
import pytest

from hrp_harness.platform.cluster import Cluster, max_connections
from hrp_harness.platform.conf import render
from hrp_harness.platform.paths import CONF
from hrp_harness.platform.sizing import SPEC_HOST, Host, sized_values


def _rendered(tmp_path, host: Host) -> dict[str, str]:
    text = render(CONF / "instance.conf.template", Cluster(tmp_path, port=5999, host=host).conf_values())
    return dict(re.findall(r"^(\w+) = (\S+)$", text, re.M))


def _readme_reference() -> dict[str, str]:
    text = (CONF / "README.md").read_text()
    section = text[text.index("### Sizing from the host"):]
    return {name.lower(): spec for name, spec in re.findall(r"^\| `([A-Z_]+)` \| (\S+) \|", section, re.M)}


@pytest.mark.unit
def test_spec_host_renders_the_documented_reference(tmp_path):
    got = _rendered(tmp_path, SPEC_HOST)
    # the spec's own "Configuration Optimization" values for its 64 GB host
    assert (got["shared_buffers"], got["effective_cache_size"], got["maintenance_work_mem"]) == \
        ("16384MB", "49152MB", "2048MB")
    assert (got["max_worker_processes"], got["max_parallel_workers"],
            got["max_parallel_workers_per_gather"], got["max_parallel_maintenance_workers"]) == \
        ("16", "16", "4", "4")
    assert got["work_mem"] == "122MB"  # (64 GB - 16 GB) / (100 connections x 4)
    assert (got["max_wal_size"], got["min_wal_size"]) == ("8192MB", "2048MB")
    assert {name: got[name] for name in _readme_reference()} == _readme_reference()


@pytest.mark.unit
def test_this_machine_renders_from_its_cores_and_memory(tmp_path):
    host = Host.this_machine()
    got = _rendered(tmp_path, host)
    assert got["max_parallel_workers"] == str(host.cores)
    assert int(got["max_worker_processes"]) == max(8, host.cores)
    assert 1 <= int(got["max_parallel_workers_per_gather"]) <= min(4, max(1, host.cores // 2))
    shared = int(got["shared_buffers"].removesuffix("MB"))
    work_mem = int(got["work_mem"].removesuffix("MB"))
    assert work_mem * max_connections() * 4 <= host.ram_mb - shared + max_connections() * 4
    assert got != _rendered(tmp_path, SPEC_HOST)


@pytest.mark.unit
def test_a_small_host_gets_the_floors():
    values = sized_values(Host(ram_mb=1024, cores=1), max_connections=100)
    assert values["WORK_MEM"] == "4MB" and values["MAX_WORKER_PROCESSES"] == "8"
    assert values["MAX_PARALLEL_WORKERS_PER_GATHER"] == "1" and values["MAX_WAL_SIZE"] == "1024MB"


@pytest.mark.cluster
def test_running_cluster_has_the_sized_values(pg_cluster):
    want = sized_values(Host.this_machine(), max_connections(), pg_cluster.shared_buffers_mb)
    with psycopg.connect(pg_cluster.dsn()) as conn:
        got = dict(conn.execute(
            "select upper(name), setting || coalesce(unit, '') from pg_settings where name in"
            " ('work_mem', 'max_parallel_workers', 'max_worker_processes', 'max_wal_size')"))
    assert got["MAX_PARALLEL_WORKERS"] == want["MAX_PARALLEL_WORKERS"]
    assert got["MAX_WORKER_PROCESSES"] == want["MAX_WORKER_PROCESSES"]
    assert got["WORK_MEM"] == f"{int(want['WORK_MEM'].removesuffix('MB')) * 1024}kB"
    assert got["MAX_WAL_SIZE"] == want["MAX_WAL_SIZE"]
