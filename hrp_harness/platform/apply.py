"""Versioned apply of deploy.plan with a checksum ledger (hrp_deploy.ledger).

- versioned files run once; a changed applied versioned file is refused, naming it;
- repeatable files run again whenever their sha256 differs from the ledger's; a repeatable file
  marked `-- hrp:rerun-after-any-change` in its header (roles/grants.sql) also runs again whenever
  any other file is applied, so objects added later get its treatment;
- each file runs in its own transaction together with its ledger record, under ON_ERROR_STOP,
  in one psql session; a session advisory lock serialises concurrent applies on one database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from hrp_harness import HarnessError
from hrp_harness.platform.paths import PLAN, REPO
from hrp_harness.platform.psql import run_script

KINDS = ("versioned", "repeatable")
NO_TRANSACTION = "-- hrp:no-transaction"
RERUN_AFTER_ANY_CHANGE = "-- hrp:rerun-after-any-change"
# pg_advisory_lock key: "hrp_apply" as a 64-bit number; any fixed value private to the project.
APPLY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"hrp_apply").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class PlanEntry:
    kind: str
    path: str  # relative to the plan's directory (the repository root), as the ledger records it
    root: Path = REPO

    @property
    def file(self) -> Path:
        return self.root / self.path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.file.read_bytes()).hexdigest()

    @property
    def transactional(self) -> bool:
        head = self.file.read_text().splitlines()[:10]
        return not any(line.strip() == NO_TRANSACTION for line in head)

    @property
    def rerun_after_any_change(self) -> bool:
        head = self.file.read_text().splitlines()[:20]
        return self.kind == "repeatable" and any(
            line.strip() == RERUN_AFTER_ANY_CHANGE for line in head)


@dataclass(frozen=True)
class Step:
    entry: PlanEntry
    checksum: str
    reason: str  # "new", "changed" or "after changes"


def read_plan(plan: Path = PLAN) -> list[PlanEntry]:
    """Parse deploy.plan: `KIND PATH` per line, # comments; every file must exist, once."""
    entries: list[PlanEntry] = []
    seen: set[str] = set()
    for number, raw in enumerate(plan.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{plan.name}:{number}"
        if len(parts) != 2 or parts[0] not in KINDS:
            raise HarnessError(f"{where}: expected 'versioned PATH' or 'repeatable PATH', got {raw!r}")
        kind, path = parts
        if path in seen:
            raise HarnessError(f"{where}: {path} is listed twice")
        if not (plan.parent / path).is_file():
            raise HarnessError(f"{where}: {path} does not exist")
        seen.add(path)
        entries.append(PlanEntry(kind, path, plan.parent))
    return entries


def read_ledger(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """path -> (kind, checksum) of every applied file; empty before the first apply."""
    exists = conn.execute("select to_regclass('hrp_deploy.ledger') is not null").fetchone()[0]
    if not exists:
        return {}
    rows = conn.execute("select file_path, change_kind, sha256 from hrp_deploy.ledger").fetchall()
    return {path: (kind, checksum) for path, kind, checksum in rows}


def pending_steps(entries: list[PlanEntry], ledger: dict[str, tuple[str, str]]) -> list[Step]:
    """What an apply would run, in plan order; refuses changed applied versioned files."""
    changed = []
    steps = []
    for entry in entries:
        checksum = entry.checksum
        recorded = ledger.get(entry.path)
        if recorded is None:
            steps.append(Step(entry, checksum, "new"))
        elif recorded[1] != checksum:
            if entry.kind == "versioned":
                changed.append(entry.path)
            else:
                steps.append(Step(entry, checksum, "changed"))
    if steps:
        due = {step.entry.path for step in steps}
        followers = [entry for entry in entries
                     if entry.rerun_after_any_change and entry.path not in due]
        if followers:
            order = {entry.path: number for number, entry in enumerate(entries)}
            steps += [Step(entry, entry.checksum, "after changes") for entry in followers]
            steps.sort(key=lambda step: order[step.entry.path])
    if changed:
        raise HarnessError(
            "refusing to apply: these versioned files were changed after they were applied to this "
            f"database: {', '.join(changed)}. Versioned files are append-only: restore them and put "
            "the change in a new numbered file listed in deploy.plan"
        )
    return steps


def driver_script(steps: list[Step]) -> tuple[str, dict[str, str]]:
    """One psql script running every step; file names and checksums travel as psql variables."""
    lines = []
    variables: dict[str, str] = {}
    for number, step in enumerate(steps):
        variables[f"hrp_file_{number}"] = str(step.entry.file)
        variables[f"hrp_path_{number}"] = step.entry.path
        variables[f"hrp_kind_{number}"] = step.entry.kind
        variables[f"hrp_sum_{number}"] = step.checksum
        record = (f"select hrp_deploy.record_applied(:'hrp_path_{number}', :'hrp_kind_{number}', "
                  f":'hrp_sum_{number}');")
        lines.append(f"\\echo 'hrp-apply-start {number}'")
        if step.entry.transactional:
            lines += ["begin;", f"\\i :hrp_file_{number}", "\\o /dev/null", record, "\\o", "commit;"]
        else:
            lines += [f"\\i :hrp_file_{number}", "\\o /dev/null", record, "\\o"]
        lines.append(f"\\echo 'hrp-apply-done {number}'")
    return "\n".join(lines) + "\n", variables


def apply(dsn: str, dry_run: bool = False, echo=print, plan: Path = PLAN) -> list[Step]:
    """Apply what is pending of the plan to the database at dsn; return the steps run."""
    entries = read_plan(plan)
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the target database: {exc}".strip()) from None
    with conn:
        if not dry_run:
            conn.execute("select pg_advisory_lock(%s)", (APPLY_LOCK_KEY,))
        steps = pending_steps(entries, read_ledger(conn))
        if not steps:
            echo("apply: nothing to do, every file of deploy.plan is applied and unchanged")
            return []
        for step in steps:
            echo(f"{'would apply' if dry_run else 'applying'} {step.entry.kind:<10} "
                 f"{step.entry.path} ({step.reason})")
        if dry_run:
            return steps
        script, variables = driver_script(steps)
        done = run_script(dsn, script, variables)
        finished = {int(n) for n in re.findall(r"^hrp-apply-done (\d+)$", done.stdout, re.M)}
        if done.returncode != 0:
            failed = steps[len(finished)].entry.path if len(finished) < len(steps) else "?"
            kept = ", ".join(steps[n].entry.path for n in sorted(finished)) or "none"
            raise HarnessError(
                f"apply failed in {failed} (rolled back; files applied before it stay: {kept}):\n"
                f"{done.stderr.strip()}"
            )
        echo(f"apply: {len(steps)} file(s) applied")
        return steps
