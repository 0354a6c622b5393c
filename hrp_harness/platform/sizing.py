"""Instance values sized from the host: memory, cores, connections (conf/instance.conf.template).

One pure function, so that the spec's reference host (64 GB, 16 cores: its "Deployment
Specifications") and this machine render from the same rules (tests/test_sizing.py renders both;
conf/README.md lists the reference values). Rules, each a common PostgreSQL practice:

  shared_buffers            25 % of RAM, at most 16 GB (the spec's 16 GB of 64 GB)
  effective_cache_size      75 % of RAM, at most 48 GB (the spec's 48 GB)
  maintenance_work_mem      RAM / 32, 64 MB .. 2 GB (the spec's 2 GB)
  work_mem                  (RAM - shared_buffers) / (max_connections x 4), 4 MB .. 256 MB: every
                            connection may run a few sort or hash nodes at once, each up to work_mem
                            (hash nodes up to hash_mem_multiplier = 2 times it)
  max_worker_processes      max(8, cores): PostgreSQL's default 8 is the floor (extensions and
                            logical replication take background workers too)
  max_parallel_workers      cores
  max_parallel_workers_per_gather, max_parallel_maintenance_workers
                            cores / 2, 1 .. 4: one query never takes the whole machine
  max_wal_size              RAM / 8, 1 GB .. 16 GB: checkpoints by time (checkpoint_timeout), not
                            by WAL volume, during bulk loads and write bursts
  min_wal_size              max_wal_size / 4 (recycled segments instead of new ones)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

GB = 1024


@dataclass(frozen=True)
class Host:
    """What the instance is sized for: memory in MB and CPU cores."""

    ram_mb: int
    cores: int

    @classmethod
    def this_machine(cls) -> Host:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        return cls(ram_mb=ram, cores=len(os.sched_getaffinity(0)))


#: The spec's production server ("Deployment Specifications": 16 cores, 64 GB RAM).
SPEC_HOST = Host(ram_mb=64 * GB, cores=16)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))


def sized_values(host: Host, max_connections: int, shared_buffers_mb: int | None = None) -> dict[str, str]:
    """The template variables sized from host (shared_buffers_mb: a small throwaway cluster's
    fixed buffers, effective_cache_size then 3 times it, the spec's ratio)."""
    ram = host.ram_mb
    if shared_buffers_mb:
        shared, cache = shared_buffers_mb, shared_buffers_mb * 3
    else:
        shared, cache = min(ram // 4, 16 * GB), min(ram * 3 // 4, 48 * GB)
    max_wal = _clamp(ram // 8, 1 * GB, 16 * GB)
    half = _clamp(host.cores // 2, 1, 4)
    return {
        "SHARED_BUFFERS": f"{shared}MB",
        "EFFECTIVE_CACHE_SIZE": f"{cache}MB",
        "MAINTENANCE_WORK_MEM": f"{_clamp(ram // 32, 64, 2 * GB)}MB",
        "WORK_MEM": f"{_clamp((ram - shared) // (max_connections * 4), 4, 256)}MB",
        "MAX_WORKER_PROCESSES": str(max(8, host.cores)),
        "MAX_PARALLEL_WORKERS": str(host.cores),
        "MAX_PARALLEL_WORKERS_PER_GATHER": str(half),
        "MAX_PARALLEL_MAINTENANCE_WORKERS": str(half),
        "MAX_WAL_SIZE": f"{max_wal}MB",
        "MIN_WAL_SIZE": f"{max_wal // 4}MB",
    }
