"""What `invoke lint` and tests/test_lint.py run: sqlfluff over the project's SQL folders."""

import sys
from pathlib import Path

from hrp_harness.platform.paths import REPO

SQL_DIRS = ("schema", "functions", "views", "roles", "data", "tests/pgtap")


def lint_argv() -> list[str]:
    sqlfluff = str(Path(sys.executable).with_name("sqlfluff"))
    dirs = [d for d in SQL_DIRS if any((REPO / d).rglob("*.sql"))]
    return [sqlfluff, "lint", "--disable-progress-bar",
            *(str(REPO / d) for d in dirs)]
