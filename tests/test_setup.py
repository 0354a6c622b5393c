"""./hrp: the fresh-machine entry point is idempotent, and every declared dependency is in place."""

from __future__ import annotations

import subprocess

import pytest

from hrp_harness.platform.paths import REPO

pytestmark = pytest.mark.unit


def test_setup_when_done_installs_and_rebuilds_nothing():
    stamp = REPO / ".venv" / ".requirements.sha256"
    before = stamp.stat().st_mtime_ns
    done = subprocess.run([str(REPO / "hrp"), "setup"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "hrp: setup done: .venv and Debian packages are in place"
    assert stamp.stat().st_mtime_ns == before


def test_every_listed_debian_package_is_installed():
    packages = [line.split("#")[0].strip() for line in (REPO / "packages.txt").read_text().splitlines()]
    packages = [p for p in packages if p]
    done = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
                          capture_output=True, text=True)
    assert sorted(done.stdout.split("\n")[:-1]) == sorted(f"{p} installed" for p in packages)


def test_invoke_lists_a_docstring_for_every_task():
    done = subprocess.run([str(REPO / ".venv" / "bin" / "invoke"), "--list"], cwd=REPO,
                          capture_output=True, text=True)
    tasks = [line.split(None, 1) for line in done.stdout.splitlines()[2:] if line.startswith("  ")
             and not line.startswith("    ")]
    assert tasks and all(len(parts) == 2 and parts[1].strip() for parts in tasks), done.stdout


def test_patroni_comes_from_the_venv_and_runs_as_the_server_user():
    from hrp_harness.platform.paths import VENV_BIN
    from hrp_harness.platform.server_user import run_as_server

    done = run_as_server([str(VENV_BIN / "patroni"), "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    version = tuple(int(part) for part in done.stdout.split()[-1].split(".")[:2])
    assert version >= (3, 1), "Patroni >= 3.1: a stale primary cannot win the leader race"
