"""Phase 1 of a load: the source file — its tables, columns and their SQLite affinities — and the
mapping file that says which of them feed the spec's tables (data/mappings/, README "Mapping file").

A source in the spec's SQLite shape (data/sqlite/schema.sql) needs no mapping file: its tables and
columns are compared by name and by the SQLite affinity of their declared types (so SQLAlchemy's
VARCHAR(n) / DATETIME / FLOAT / BOOLEAN for the spec's TEXT / TIMESTAMP / REAL / BOOLEAN are the
same), and any other difference is refused, naming each. A source of another shape is loaded with
--mapping FILE; the mapping's meaning lives in SQL (hrp_migration.set_mapping), this module reads it.
"""

from __future__ import annotations

import re
import sqlite3
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hrp_harness import HarnessError
from hrp_harness.platform.paths import REPO

SPEC_SQLITE_SCHEMA = REPO / "data" / "sqlite" / "schema.sql"
SPEC_MAPPING = REPO / "data" / "mappings" / "spec.toml"
#: The working copy's table of the rows the preflight keeps out of pgloader (a source may not have one).
REJECTS = "hrp_preflight_rejects"
#: Table and column names pgloader's command language takes (it has no quoting for them).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sqlite_ident(name: str) -> str:
    """SQLite identifier quoting (the names are checked plain, quoted anyway)."""
    return '"' + name.replace('"', '""') + '"'


def affinity(declared: str) -> str:
    """The SQLite affinity of a declared column type (SQLite's own rules, "Datatypes In SQLite" 3.1),
    in their order: INT -> INTEGER; CHAR, CLOB, TEXT -> TEXT; BLOB or none -> BLOB; REAL, FLOA,
    DOUB -> REAL; anything else (DATETIME, DATE, BOOLEAN, NUMERIC, DECIMAL(10,2), ...) -> NUMERIC."""
    kind = declared.upper()
    if "INT" in kind:
        return "INTEGER"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in kind or not kind.strip():
        return "BLOB"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


@dataclass(frozen=True)
class Column:
    name: str
    declared: str

    @property
    def affinity(self) -> str:
        return affinity(self.declared)


@dataclass(frozen=True)
class Source:
    """What phase 1 found: the file, its size, and its tables with their columns in order."""

    path: Path
    size: int
    tables: dict[str, tuple[Column, ...]]

    def as_json(self) -> dict:
        """The shape hrp_migration.set_mapping reads."""
        return {"tables": {t: {"columns": [{"name": c.name, "type": c.declared} for c in cols]}
                           for t, cols in self.tables.items()}}


def _tables_of(con: sqlite3.Connection) -> dict[str, tuple[Column, ...]]:
    names = [name for (name,) in con.execute(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite\\_%' escape '\\' "
        "order by name")]
    return {t: tuple(Column(row[1], row[2] or "") for row in con.execute(f"pragma table_info({sqlite_ident(t)})"))
            for t in names}


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite file, refused in one line when it is no SQLite
    database."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        con.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise HarnessError(f"--sqlite {path}: not a readable SQLite database ({exc})") from None
    return con


def read_source(path: Path) -> Source:
    """The source's tables and columns (read-only). Refuses a file that is no SQLite database, that
    is not UTF-8, or whose table or column names pgloader could not name."""
    con = connect_readonly(path)
    try:
        encoding = con.execute("pragma encoding").fetchone()[0]
        if encoding != "UTF-8":
            raise HarnessError(f"{path}: database encoding is {encoding}; the loader reads UTF-8 files only "
                               f"(convert with: sqlite3 {path} .dump | sqlite3 -cmd 'pragma encoding=\"UTF-8\"' new.db)")
        tables = _tables_of(con)
    finally:
        con.close()
    odd = [t for t in tables if not NAME.fullmatch(t)] + [
        f"{t}.{c.name}" for t, cols in tables.items() for c in cols if not NAME.fullmatch(c.name)]
    if odd:
        raise HarnessError(f"{path}: pgloader cannot name these tables or columns (letters, digits and '_' "
                           f"only): {', '.join(odd)}; rename them in a copy of the file")
    if REJECTS in tables:
        raise HarnessError(f"{path}: a table named {REJECTS} is the loader's own; rename it in a copy")
    return Source(path, path.stat().st_size, tables)


def spec_tables() -> dict[str, tuple[Column, ...]]:
    """The tables and columns of the spec's SQLite schema (data/sqlite/schema.sql)."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(SPEC_SQLITE_SCHEMA.read_text())
        return _tables_of(con)
    finally:
        con.close()


def check_spec_shape(source: Source) -> None:
    """Without a mapping file: the source must be in the spec's shape, by table and column names and
    the affinity of each declared type. Every difference is named; nothing is dropped silently."""
    want = spec_tables()
    have = source.tables
    problems = []
    for table in sorted(set(have) - set(want)):
        problems.append(f"table {table!r} is not in the spec's schema; the mapping does not know it")
    for table in sorted(set(want) - set(have)):
        problems.append(f"table {table!r} is missing")
    for table in sorted(set(want) & set(have)):
        want_cols = {c.name.lower(): c for c in want[table]}
        have_cols = {c.name.lower(): c for c in have[table]}
        for col in sorted(have_cols.keys() - want_cols.keys()):
            problems.append(f"column {table}.{col} is not known to the mapping "
                            f"(declared {have_cols[col].declared or 'without type'})")
        for col in sorted(want_cols.keys() - have_cols.keys()):
            problems.append(f"expected column {table}.{col} ({want_cols[col].declared}) is missing")
        for col in sorted(want_cols.keys() & have_cols.keys()):
            if want_cols[col].affinity != have_cols[col].affinity:
                problems.append(
                    f"column {table}.{col} is declared {have_cols[col].declared!r} ({have_cols[col].affinity} "
                    f"affinity), the spec's schema says {want_cols[col].declared!r} "
                    f"({want_cols[col].affinity} affinity)")
    if problems:
        raise HarnessError(
            f"source schema check failed for {source.path} (compared with "
            f"{SPEC_SQLITE_SCHEMA.relative_to(REPO)}):\n  " + "\n  ".join(problems)
            + "\nnothing was loaded; a source in another shape loads with --mapping FILE (README, \"Mapping file\")")


def read_mapping(path: Path | None) -> tuple[dict, Path]:
    """The mapping file as a document (the spec's default when path is None). Its syntax is checked
    here (TOML, one [tables.<target>] section per target table); what it means, against the source
    and the target catalog, by hrp_migration.set_mapping."""
    file = SPEC_MAPPING if path is None else Path(path).expanduser()
    where = f"--mapping {path}" if path is not None else str(file)
    try:
        with file.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise HarnessError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise HarnessError(f"{where}: is a directory, not a mapping file") from None
    except OSError as exc:
        raise HarnessError(f"{where}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"tables"})
    if unknown:
        raise HarnessError(f"{where}: unknown top-level key(s) {', '.join(unknown)} (a mapping file has "
                           "[tables.<target table>] sections only)")
    if not isinstance(doc.get("tables", {}), dict):
        raise HarnessError(f"{where}: tables must be a table of [tables.<target table>] sections")
    return doc, file.resolve()
