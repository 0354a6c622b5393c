"""Deterministic sample SQLite databases in the spec's SQLite schema.

Orchestration only: the schema is data/sqlite/schema.sql (the spec's, verbatim) and every row is made
by data/sample/generate.sql inside SQLite (recursive CTEs and an integer hash of seed and row number).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .paths import REPO
SQLITE_SCHEMA = REPO / "data" / "sqlite" / "schema.sql"
GENERATE_SQL = REPO / "data" / "sample" / "generate.sql"


@dataclass(frozen=True)
class Size:
    races: int
    horses: int
    predictions: int
    users: int
    credentials: int

    @property
    def rows(self) -> int:
        return self.races + self.horses + self.predictions + self.users + self.credentials


# The spec's "Test Dataset Size" and the "Migration Batch Sizes" table's estimated production rows.
SIZES = {
    "test": Size(races=1_000, horses=5_000, predictions=50_000, users=100, credentials=5),
    "production": Size(races=10_000, horses=50_000, predictions=500_000, users=1_000, credentials=10),
}


def generate(path: Path, size: str | Size = "test", seed: int = 1) -> Path:
    """Create (or replace) the SQLite file at `path` filled for `size` from `seed`."""
    sz = SIZES[size] if isinstance(size, str) else size
    if sz.horses < 1 or sz.races < 1:
        raise ValueError("a sample needs at least one race and one horse")
    if sz.predictions and (sz.predictions + sz.races - 1) // sz.races > sz.horses:
        raise ValueError("more predictions per race than horses: (race, horse, version) must stay unique")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("pragma journal_mode = off")
        con.execute("pragma synchronous = off")
        con.execute("pragma temp_store = memory")  # the generator's temp tables (word lists, row hashes)
        con.executescript(SQLITE_SCHEMA.read_text())
        con.execute(
            "create temp table gen_params (seed, n_races, n_horses, n_predictions, n_users, n_credentials)"
        )
        con.execute(
            "insert into gen_params values (?, ?, ?, ?, ?, ?)",
            (seed, sz.races, sz.horses, sz.predictions, sz.users, sz.credentials),
        )
        con.execute("begin")
        con.executescript(GENERATE_SQL.read_text())  # executescript commits the open transaction
    finally:
        con.close()
    tmp.replace(path)
    return path
