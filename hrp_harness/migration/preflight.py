"""Phase 2 of a load: the preflight. SQL over the SQLite file (read-only) finds the rows pgloader
cannot carry — a BLOB anywhere, a NUL byte or invalid UTF-8 in text (pgloader 3.6 silently cuts a
value at a NUL and drops the rest of a table at invalid UTF-8) — in every source table. Such rows
are kept out of pgloader in a working copy and staged as escaped JSON for the quarantine. On big
files this content scan runs as a background process (scan.py) beside staging, mapping and the
transaction, and the commit waits for its verdict (rows found: roll back, stage again)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hrp_harness import HarnessError
from hrp_harness.platform.paths import REPO
from hrp_harness.migration.source import REJECTS, _tables_of, connect_readonly, sqlite_ident

#: Source files at least this big get their content scan in the background, beside the load.
SCAN_BESIDE_PGLOADER_BYTES = 8 * 2**20
#: Rows the content scan joins and decodes at a time.
SCAN_ROWS = 250_000


def _utf8_ok(value) -> int:
    """SQLite UDF for the drill-down only: SQLite has no UTF-8 validator of its own."""
    if value is None:
        return 1
    try:
        bytes(value).decode("utf-8")
        return 1
    except UnicodeDecodeError:
        return 0


@dataclass
class Preflight:
    source_counts: dict[str, int]  # source table -> rows
    rejects: dict[str, int]  # source table -> rows kept out of pgloader
    load_path: Path  # the file pgloader reads: the source itself, or a working copy
    workdir: Path | None = None
    seconds: float = 0.0

    @property
    def total_rejects(self) -> int:
        return sum(self.rejects.values())


def _escaped(col: str) -> str:
    """SQL: a column value as JSON for source_row; bytes JSON cannot hold become {$hex, $type}."""
    c = "s." + sqlite_ident(col)
    return (f"case when typeof({c}) = 'blob' or (typeof({c}) = 'text' and (instr(cast({c} as blob), x'00') > 0 "
            f"or not hrp_utf8_ok(cast({c} as blob)))) then json_object('$hex', hex({c}), '$type', typeof({c})) "
            f"when typeof({c}) = 'real' then printf('%!.17g', {c}) else cast({c} as text) end")


def preflight(source: Path, workroot: Path, scan: bool = True) -> Preflight:
    """Row counts of every source table, and (scan) the rows pgloader cannot carry (SQL queries, no
    row loops); rows are named by their rowid (the id of an INTEGER PRIMARY KEY table). scan=False
    stops after the counts (the loader runs the content scan in the background)."""
    started = time.monotonic()
    con = connect_readonly(source)
    try:
        con.create_function("hrp_utf8_ok", 1, _utf8_ok, deterministic=True)
        schema = {t: [c.name for c in cols] for t, cols in _tables_of(con).items()}
        counts = {t: con.execute(f"select count(*) from {sqlite_ident(t)}").fetchone()[0] for t in schema}
        if not scan:
            return Preflight(counts, {t: 0 for t in schema}, source, None, time.monotonic() - started)
        bad: list[tuple[str, str]] = []  # (table, SQL selecting rowid, reason)
        for table, cols in schema.items():
            t = sqlite_ident(table)
            # pass 1: the storage classes of each column. typeof() names sort blob < integer <
            # null < real < text, so min() is 'blob' iff the column holds a BLOB and max() is
            # 'text' iff it holds text
            classes = con.execute("select " + ", ".join(
                f"min(typeof({sqlite_ident(c)})), max(typeof({sqlite_ident(c)}))" for c in cols)
                + f" from {t}").fetchone()
            blob_cols = [c for i, c in enumerate(cols) if classes[2 * i] == "blob"]
            text_cols = [c for i, c in enumerate(cols) if classes[2 * i + 1] == "text"]
            # pass 2, over the columns holding text only: every value joined by newlines (a
            # separator that cannot complete a broken UTF-8 sequence) for one NUL search and one
            # UTF-8 decode. Numbers a column also holds are ASCII; its BLOBs may raise a false
            # alarm, which the drill-down queries (text values only) settle
            has_nul = utf8_bad = False
            if text_cols:
                # SCAN_ROWS rows at a time (keyset by rowid), so that the joined values of a 10x
                # file (5 M rows) never sit in memory whole
                cols_sql = ", ".join(sqlite_ident(c) for c in text_cols)
                query = ("select max(rowid), " + ", ".join(
                    f"cast(group_concat({sqlite_ident(c)}, x'0a') as blob)" for c in text_cols)
                    + f" from (select rowid, {cols_sql} from {t} where rowid >= ? order by rowid limit ?)")
                start = con.execute(f"select min(rowid) from {t}").fetchone()[0]
                while start is not None:
                    last, *values = con.execute(query, (start, SCAN_ROWS)).fetchone()
                    for value in values:
                        value = bytes(value or b"")
                        has_nul = has_nul or b"\x00" in value
                        if not utf8_bad:
                            try:
                                value.decode("utf-8")
                            except UnicodeDecodeError:
                                utf8_bad = True
                    start = last + 1 if last is not None and last < 2**63 - 1 else None
            for col in blob_cols:
                bad.append((table, f"select rowid, '{col}: BLOB value (no BLOB columns in the target)' "
                                   f"from {t} where typeof({sqlite_ident(col)}) = 'blob'"))
            for col in text_cols:
                c = sqlite_ident(col)
                if has_nul:
                    bad.append((table, f"select rowid, '{col}: NUL byte in text' from {t} "
                                       f"where typeof({c}) = 'text' and instr(cast({c} as blob), x'00') > 0"))
                if utf8_bad:
                    bad.append((table, f"select rowid, '{col}: invalid UTF-8' from {t} where typeof({c}) = 'text' "
                                       f"and instr(cast({c} as blob), x'00') = 0 and not hrp_utf8_ok(cast({c} as blob))"))
        if not bad:
            return Preflight(counts, {t: 0 for t in schema}, source, None, time.monotonic() - started)
        # a working copy without the unloadable rows, plus the table of them (escaped) for pgloader
        workdir = Path(tempfile.mkdtemp(prefix="hrp-load-", dir=workroot))
        work = workdir / "source-without-rejects.sqlite"
        dest = sqlite3.connect(work)
        con.backup(dest)
        dest.close()
    finally:
        con.close()
    wcon = sqlite3.connect(work, isolation_level=None)
    try:
        wcon.create_function("hrp_utf8_ok", 1, _utf8_ok, deterministic=True)
        wcon.execute("begin")
        wcon.execute("create temp table hrp_bad (tbl text, id integer, reason text)")
        for table, select in bad:
            wcon.execute(f"insert into hrp_bad select '{table}', * from ({select})")
        wcon.execute(f"create table {REJECTS} (source_table text, source_id integer, reason text, source_row text)")
        rejects = {}
        for table, cols in schema.items():
            t = sqlite_ident(table)
            obj = ", ".join(f"'{col}', {_escaped(col)}" for col in cols)
            wcon.execute(
                f"insert into {REJECTS} select '{table}', b.id, b.reason, json_object({obj}) "
                f"from (select id, group_concat(reason, '; ') as reason from hrp_bad where tbl = '{table}' "
                f"group by id) as b join {t} as s on s.rowid = b.id")
            wcon.execute(f"delete from {t} where rowid in (select id from hrp_bad where tbl = '{table}')")
            rejects[table] = wcon.execute(
                f"select count(*) from {REJECTS} where source_table = '{table}'").fetchone()[0]
        wcon.execute("commit")
    finally:
        wcon.close()
    return Preflight(counts, rejects, work, workdir, time.monotonic() - started)


def _die_with_parent() -> None:
    """In a child before exec: SIGKILL it when the loader dies (prctl PDEATHSIG), so a killed load
    never leaves a child (pgloader, the scan) working for nobody."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


class BackgroundScan:
    """The preflight's content scan of a big file as a process of its own, at the lowest CPU
    priority in a session of its own (scan.py says why): it takes only CPU the load leaves idle.
    result() waits for it."""

    def __init__(self, source: Path, workroot: Path):
        self.source = source
        # a directory of its own for the working copy it may make: stop() removes it whatever
        # became of the process
        self.dir = Path(tempfile.mkdtemp(prefix="hrp-scan-", dir=workroot))
        self.proc: subprocess.Popen | None = None
        self._found: Preflight | None = None

    def start(self) -> None:
        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hrp_harness.migration.scan", str(self.source), str(self.dir)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True, preexec_fn=_die_with_parent)

    def result(self) -> Preflight:
        if self._found is None:
            self.start()
            out, err = self.proc.communicate()
            if self.proc.returncode != 0:
                raise HarnessError(f"the preflight content scan of {self.source} failed "
                                   f"(exit {self.proc.returncode}): {err.strip()}")
            found = json.loads(out)
            self._found = Preflight(found["source_counts"], found["rejects"], Path(found["load_path"]),
                                    Path(found["workdir"]) if found["workdir"] else None, found["seconds"])
        return self._found

    def stop(self) -> None:
        """Ends the process if it still runs, and removes the working copy it made, if any."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)
