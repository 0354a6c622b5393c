"""Phase 6 of a load: the report. The JSON file (written in full before the commit, renamed into
place after it) and the table printed per target table, with what went where."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from hrp_harness import HarnessError
from hrp_harness.platform.inputs import writable_file
from hrp_harness.platform.paths import REPO


class ReportFile:
    """The run's JSON report. A temporary file in the report's directory is made before the load
    starts, so a path that cannot be written fails before anything changes; the report is written
    into it in full before the commit, and renamed to its name after the commit (a rename within a
    directory)."""

    def __init__(self, path: str | Path | None, dbname: str):
        if path is None:
            self.directory = REPO / "reports"
            self.fixed = None
            # a database name may hold any character but a quote: the file name keeps the plain ones
            self.stem = "migration-" + (re.sub(r"[^A-Za-z0-9_.-]", "_", dbname).lstrip(".") or "db")
            try:
                self.directory.mkdir(exist_ok=True)
            except OSError as exc:
                raise HarnessError(f"cannot create the report directory {self.directory}: {exc.strerror}; "
                                   "name a report file with --report") from None
        else:
            self.fixed = writable_file(path, "--report")
            self.directory = self.fixed.parent
        try:
            handle, name = tempfile.mkstemp(prefix=".hrp-report-", suffix=".tmp", dir=self.directory)
        except OSError as exc:
            where = path if path is not None else self.directory
            raise HarnessError(f"--report {where}: cannot write in {self.directory} "
                               f"({exc.strerror})") from None
        os.close(handle)
        self.temp: Path | None = Path(name)

    def final(self, run_id: int) -> Path:
        return self.fixed or self.directory / f"{self.stem}-run-{run_id}.json"

    def write(self, report: dict) -> None:
        try:
            with self.temp.open("w") as out:
                out.write(json.dumps(report, indent=2, default=str) + "\n")
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise HarnessError(f"writing the report {self.temp} failed ({exc.strerror}); "
                               "the load was not committed") from None

    def publish(self, run_id: int) -> Path:
        final = self.final(run_id)
        os.replace(self.temp, final)
        self.temp = None
        return final

    def discard(self) -> None:
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None



def print_report(report: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"migration run {report['run_id']} ({report['mode']}, {report['path']}) — "
                        f"{report['seconds']} s", title_justify="left")
    for col in ("table", "source", "migrated", "quarantined", "quarantined by reason", "normalised by rule",
                "ins/upd/del", "checksum", "s"):
        table.add_column(col, overflow="fold")
    for name, row in report["tables"].items():
        reasons = "\n".join(f"{n} {r}" for r, n in sorted(row["quarantined_by_reason"].items())) or "-"
        norms = "\n".join(f"{n} {r}" for r, n in sorted(row["normalised_by_rule"].items())) or "-"
        table.add_row(name, str(row["source_rows"]), str(row["migrated_rows"]),
                      f"[bold red]{row['quarantined_rows']}[/]" if row["quarantined_rows"] else "0",
                      reasons, norms, f"{row['inserted_rows']}/{row['updated_rows']}/{row['deleted_rows']}",
                      "match" if row["checksum_match"] else "[bold red]MISMATCH[/]", str(row["seconds"]))
    console.print(table)
    if report["quarantined_total"]:
        console.print(f"[bold red]{report['quarantined_total']} source rows are in hrp_migration.quarantine[/] "
                      f"(select source_table, source_id, reason, source_row from hrp_migration.quarantine)")
    for name, rows in report.get("unmapped_tables", {}).items():
        console.print(f"source table {name}: no target table takes it; {rows} rows copied to "
                      f"hrp_migration_unmapped.{name}")
    for name, rows in report.get("extra_columns", {}).items():
        columns = ", ".join(report["mapping"]["tables"][name]["extra_columns"])
        console.print(f"{name}: source columns no target column takes ({columns}) kept for {rows} rows in "
                      f"hrp_migration.source_extras")
    console.print(f"report: {report['report_file']}")

