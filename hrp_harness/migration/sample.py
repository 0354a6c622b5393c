"""Deterministic sample SQLite databases of the HRP app, in three shapes:

  spec        the spec's SQLite schema, verbatim (data/sqlite/schema.sql)
  sqlalchemy  the same columns with the declared types SQLAlchemy writes (data/sqlite/schema-sqlalchemy.sql)
  app         the app's real 2025 schema (data/sqlite/hrp-app-2025.sql), which needs
              --mapping data/mappings/hrp-app-2025.toml

Orchestration only: every row is made by data/sample/generate.sql inside SQLite (recursive CTEs and
an integer hash of seed and row number) in the spec's shape; data/sample/app-shape.sql turns such a
file into the app's shape.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hrp_harness.platform.paths import REPO
SQLITE_SCHEMA = REPO / "data" / "sqlite" / "schema.sql"
GENERATE_SQL = REPO / "data" / "sample" / "generate.sql"
SHAPES = {"spec": SQLITE_SCHEMA, "sqlalchemy": REPO / "data" / "sqlite" / "schema-sqlalchemy.sql",
          "app": REPO / "data" / "sqlite" / "hrp-app-2025.sql"}
APP_SHAPE_SQL = REPO / "data" / "sample" / "app-shape.sql"


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
    # ten times production (5.6 M rows): the volume the loader's 10x benchmark and tests use
    "10x": Size(races=100_000, horses=500_000, predictions=5_000_000, users=10_000, credentials=100),
}


def generate(path: Path, size: str | Size = "test", seed: int = 1, shape: str = "spec") -> Path:
    """Create (or replace) the SQLite file at `path` filled for `size` from `seed`, in `shape`."""
    sz = SIZES[size] if isinstance(size, str) else size
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
    if sz.horses < 1 or sz.races < 1:
        raise ValueError("a sample needs at least one race and one horse")
    if sz.predictions and (sz.predictions + sz.races - 1) // sz.races > sz.horses:
        raise ValueError("more predictions per race than horses: (race, horse, version) must stay unique")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    spec = tmp if shape != "app" else path.with_name(path.name + ".spec.tmp")
    spec.unlink(missing_ok=True)
    try:
        _generate_spec(spec, sz, seed, SHAPES[shape] if shape != "app" else SQLITE_SCHEMA)
        if shape == "app":
            con = sqlite3.connect(tmp, isolation_level=None)
            try:
                con.execute("pragma journal_mode = off")
                con.execute("pragma synchronous = off")
                con.executescript(SHAPES["app"].read_text())
                con.execute("attach database ? as spec", (str(spec),))
                con.execute("begin")
                con.executescript(APP_SHAPE_SQL.read_text())  # commits the open transaction
                con.execute("detach database spec")
            finally:
                con.close()
    finally:
        if shape == "app":
            spec.unlink(missing_ok=True)
    tmp.replace(path)
    return path


def _generate_spec(path: Path, sz: Size, seed: int, schema: Path) -> None:
    """The rows of data/sample/generate.sql into tables made by `schema` (the spec's columns)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("pragma journal_mode = off")
        con.execute("pragma synchronous = off")
        con.execute("pragma temp_store = memory")  # the generator's temp tables (word lists, row hashes)
        con.executescript(schema.read_text())
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
