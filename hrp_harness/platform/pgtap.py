"""Run one pgTAP file through psql and read its TAP stream.

pytest uses this to show every failing assertion with its have/want diagnostics;
`invoke verify` uses pg_prove over the same files.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hrp_harness.platform.paths import REPO
from hrp_harness.platform.psql import psql_argv

PGTAP_DIR = REPO / "tests" / "pgtap"
TEST_LINE = re.compile(r"^(not ok|ok) (\d+)(?: - (.*))?$")


def pgtap_files() -> list[Path]:
    return sorted(PGTAP_DIR.rglob("*.sql"))


@dataclass
class Assertion:
    number: int
    ok: bool
    description: str
    diagnostics: list[str] = field(default_factory=list)

    @property
    def todo_or_skip(self) -> bool:
        return bool(re.search(r"# (TODO|SKIP)", self.description, re.I))


@dataclass
class TapResult:
    path: Path
    returncode: int
    stdout: str
    stderr: str
    planned: int | None = None
    assertions: list[Assertion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Assertion]:
        return [a for a in self.assertions if not a.ok and not a.todo_or_skip]

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and self.planned is not None
                and self.planned == len(self.assertions) and not self.failures)

    def report(self) -> str:
        """A readable account of what went wrong (empty when ok)."""
        name = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        lines = []
        if self.returncode != 0:
            lines.append(f"{name}: psql exited {self.returncode}: {self.stderr.strip()}")
        if self.planned is None:
            lines.append(f"{name}: no plan (1..N) in the output")
        elif self.planned != len(self.assertions):
            lines.append(f"{name}: planned {self.planned} tests but ran {len(self.assertions)}")
        for failure in self.failures:
            lines.append(f"not ok {failure.number} - {failure.description}")
            lines += [f"    {diag}" for diag in failure.diagnostics]
        return "\n".join(lines)


def parse_tap(path: Path, returncode: int, stdout: str, stderr: str) -> TapResult:
    result = TapResult(path, returncode, stdout, stderr)
    current: Assertion | None = None
    for line in stdout.splitlines():
        line = line.rstrip()
        if plan := re.match(r"^1\.\.(\d+)$", line):
            result.planned = int(plan.group(1))
        elif test := TEST_LINE.match(line):
            current = Assertion(int(test.group(2)), test.group(1) == "ok", test.group(3) or "")
            result.assertions.append(current)
        elif line.startswith("#"):
            (current.diagnostics if current else result.notes).append(line)
    return result


def run_pgtap(dsn: str, path: Path) -> TapResult:
    """Run one pgTAP file (it manages its own begin/rollback) and parse the TAP it prints."""
    argv = psql_argv(dsn, "--tuples-only", "--no-align", "--file", str(path))
    done = subprocess.run(argv, capture_output=True, text=True)
    return parse_tap(path, done.returncode, done.stdout, done.stderr)
