"""sqlfluff (the project's .sqlfluff, postgres dialect) is clean over every SQL file."""

import subprocess

import pytest

from hrp_harness.platform.lint import lint_argv
from hrp_harness.platform.paths import REPO

pytestmark = pytest.mark.unit


def test_sqlfluff_is_clean():
    # what `invoke lint` runs, on every core (sqlfluff's --processes 0): the unit tier's longest test
    done = subprocess.run([*lint_argv(), "--processes", "0"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
