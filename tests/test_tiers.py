"""The tiers' guard in tests/conftest.py: a test without exactly one tier marker, or a `unit` test
that uses the session cluster, stops the run at collection, naming the test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from hrp_harness.platform.paths import REPO

pytestmark = pytest.mark.unit

MODULE = '''
import pytest

def test_unmarked():
    pass

@pytest.mark.unit
@pytest.mark.cluster
def test_two_tiers():
    pass

@pytest.mark.unit
def test_unit_on_the_cluster(schema_db):
    pass

@pytest.mark.unit
def test_fine():
    pass
'''


def collect(tmp_path, *args: str) -> subprocess.CompletedProcess:
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(REPO / "tests" / name, tmp_path / name)
    shutil.copy(REPO / "pytest.ini", tmp_path / "pytest.ini")
    (tmp_path / "test_module.py").write_text(MODULE)
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("select", [[], ["-m", "unit"]], ids=["all", "unit only"])
def test_a_test_without_one_tier_or_a_unit_test_on_the_cluster_stops_collection(tmp_path, select):
    done = collect(tmp_path, "test_module.py", *select)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "test_module.py::test_unmarked: no tier marker (mark it with exactly one of unit, cluster, ha)" \
        in done.stderr
    assert "test_module.py::test_two_tiers: tiers cluster, unit" in done.stderr
    assert "test_module.py::test_unit_on_the_cluster: marked unit but uses the session cluster" in done.stderr
    assert "test_fine" not in done.stderr
