"""invoke load (issue 3) against real PostgreSQL: a dirty corpus with exact accounting and values,
re-runs, incremental sync, kill-and-rerun, schema refusals, --max-quarantine, the sample generator."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from helpers import table_contents
from hrp_harness import HarnessError, migration
from hrp_harness.migration import sample
from hrp_harness.migration.source import SPEC_SQLITE_SCHEMA
from hrp_harness.platform.paths import REPO

UTC = dt.timezone.utc
SMALL = sample.Size(races=40, horses=300, predictions=2_000, users=20, credentials=4)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else dt.datetime.fromisoformat(text)


def load(path, dsn, **kw):
    return migration.load(path, dsn, quiet=True, report_path=Path(str(path) + ".report.json"), **kw)


def new_sqlite(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(SPEC_SQLITE_SCHEMA.read_text())
    return con


# -- the dirty corpus ------------------------------------------------------------------------
# Every kind of value real SQLite files hold. Each row's fate is asserted below.
RACES = [
    # id, race_name, race_date, track_name, race_type, distance, surface, weather, created, updated
    (1, "'Gold Cup'", "'2024-06-20'", "'Ascot'", "'flat'", "4023.36", "'turf'",
     """'{"condition": "sunny", "temperature_c": 21}'""", "'2024-06-01 10:00:00'", "'2024-06-02 11:00:00'"),
    (2, "'Derby'", "'2024-06-01'", "'Epsom Downs'", "'Flat'", "2400", "' Turf'", "NULL",
     "'2024-05-01 09:00:00'", "'2024-05-01 09:00:00'"),                    # case-folded enums
    (3, "'Chariot Race'", "'2024-01-01'", "NULL", "'chariot'", "1000", "'dirt'", "NULL", "NULL", "NULL"),
    (4, "'No Date Stakes'", "NULL", "NULL", "NULL", "1000", "NULL", "NULL", "NULL", "NULL"),
    (5, "'Far Away'", "'2024-01-02'", "NULL", "NULL", "'far'", "NULL", "NULL", "NULL", "NULL"),
    (6, "'Negative'", "'2024-01-03'", "NULL", "NULL", "-5", "NULL", "NULL", "NULL", "NULL"),
    (7, "'Too Long A Race'", "'2024-01-04'", "NULL", "NULL", "12345.678", "NULL", "NULL", "NULL", "NULL"),
    (8, "'Mile'", "'2024-01-05'", "NULL", "'hurdle'", "1609.344", "'snow'", "'sunny'",
     "1700000000", "'2024-01-01T10:00:00+02:00'"),                          # rounding, text weather, epoch, offset
    (9, "'Bad Json'", "'2024-01-06'", "NULL", "NULL", "NULL", "NULL", "'{bad json'", "NULL", "NULL"),
    (10, "'Garbage Time'", "'2024-01-07'", "NULL", "NULL", "NULL", "NULL", "NULL", "'yesterday'", "NULL"),
    (11, "CAST(x'41ff42' AS TEXT)", "'2024-01-08'", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (12, "x'4142'", "'2024-01-09'", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (13, "'Nul Track'", "'2024-01-10'", "'a' || char(0) || 'b'", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (14, "'" + "x" * 256 + "'", "'2024-01-11'", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (15, "'Leap'", "'2024-02-30'", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (16, "'Date Only'", "'2024-03-01'", "NULL", "'steeplechase'", "3200.5", "'sand'", "'[1, 2]'",
     "'2024-03-01'", "'2024-03-01 12:30'"),
]
HORSES = [
    # id, horse_name, age, weight, jockey, trainer, owner, created_at, updated_at
    (1, "'Frankel'", "5", "500.5", "'Tom Queally'", "'Henry Cecil'", "'Khalid Abdullah'",
     "'2020-01-01 00:00:00'", "'2021-01-01 00:00:00'"),
    (2, "'frankel'", "6", "510", "NULL", "NULL", "NULL", "NULL", "NULL"),          # case-variant duplicate
    (3, "'Frankel'", "5", "500.5", "NULL", "NULL", "NULL", "NULL", "NULL"),        # exact duplicate
    (4, "'Five'", "'five'", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (5, "'Old'", "25", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (6, "'Half'", "4.5", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (7, "'Heavy'", "4", "1000", "NULL", "NULL", "NULL", "NULL", "NULL"),
    (8, "'Rounded'", "4", "'455.25'", "NULL", "NULL", "NULL", "NULL", "NULL"),     # text -> REAL affinity
    (9, "'Sea The Stars'", "NULL", "NULL", "NULL", "NULL", "NULL", "'2019-05-05 05:05:05.123456'", "NULL"),
    (10, "'Ça Va Bien 🐎'", "3", "612.0", "'Søren Ólafsson'", "NULL", "'Écurie Ōkami'", "NULL", "NULL"),  # valid UTF-8
]
PREDICTIONS = [
    # id, race_id, horse_id, prediction_value, confidence, algorithm_version, created_at
    (1, "1", "1", "0.5", "0.75", "'v1'", "'2024-06-10 08:00:00'"),
    (2, "4", "1", "0.5", "0.5", "'v1'", "NULL"),          # parent race quarantined
    (3, "999", "1", "0.5", "0.5", "'v1'", "NULL"),        # parent race missing
    (4, "1", "2", "0.5", "0.5", "'v1'", "NULL"),          # parent horse quarantined (duplicate)
    (5, "NULL", "1", "0.5", "0.5", "'v1'", "NULL"),
    (6, "1", "1", "0.6", "0.7", "'V1'", "NULL"),          # case-variant duplicate of 1
    (7, "1", "9", "0.5", "1.5", "'v1'", "NULL"),
    (8, "1", "9", "NULL", "0.5", "'v2'", "NULL"),
    (9, "1", "9", "0.5", "0.5", "'" + "v" * 21 + "'", "NULL"),
    (10, "1", "9", "1e999", "0.5", "'v3'", "NULL"),       # infinity
    (11, "2", "9", "0.25", "0.12345", "'v1'", "'2024-06-11 09:00:00'"),  # confidence rounded
    (12, "12", "9", "0.5", "0.5", "'v1'", "NULL"),        # parent race rejected by the preflight
]
USERS = [
    # id, username, email, password_hash, created_at, last_login
    (1, "'alice'", "'alice@example.com'", "'h1'", "'2023-01-01 00:00:00'", "NULL"),
    (2, "'Alice'", "'alice2@example.com'", "'h2'", "NULL", "NULL"),            # case-variant username
    (3, "'bob'", "'ALICE@example.com'", "'h3'", "NULL", "NULL"),               # case-variant email
    (4, "'carol'", "'not-an-email'", "'h4'", "NULL", "NULL"),
    (5, "'dave'", "'dave@example.com'", "'h5'", "'2023-02-02 02:02:02'", "'2024-03-01'"),
]
CREDENTIALS = [
    # id, service_name, api_key, api_secret, endpoint_url, is_active, created_at
    (1, "'racing_api'", "'k1'", "'s1'", "'https://api.example/v1'", "1", "'2022-01-01 00:00:00'"),
    (2, "'weather'", "'k2'", "NULL", "NULL", "'yes'", "NULL"),
    (3, "'odds'", "'k3'", "NULL", "NULL", "'maybe'", "NULL"),
    (4, "'Racing_API'", "'k4'", "NULL", "NULL", "0", "NULL"),
    (5, "'tote'", "'k5'", "NULL", "NULL", "NULL", "NULL"),
]


def dirty_corpus(path: Path) -> Path:
    con = new_sqlite(path)
    for table, rows in (("races", RACES), ("horses", HORSES), ("predictions", PREDICTIONS),
                        ("users", USERS), ("api_credentials", CREDENTIALS)):
        for row in rows:
            con.execute(f"insert into {table} values ({', '.join(str(v) for v in row)})")
    con.close()
    return path


@pytest.mark.cluster
def test_scan_verdict_before_commit_rolls_back_and_restages(schema_db, tmp_path, monkeypatch):
    """A NUL byte in text: pgloader cuts the value at it and the staged counts still reconcile, so
    only the content scan finds the row. On a big file that scan runs beside the mapping and the
    transaction and the commit waits for it: the transaction rolls back, staging starts again from
    a copy without the row, which is quarantined with its bytes kept."""
    monkeypatch.setattr(migration, "SCAN_BESIDE_PGLOADER_BYTES", 0)
    source = tmp_path / "nul.sqlite"
    con = new_sqlite(source)
    con.execute("insert into users values (1, 'ann', 'ann@example.com', 'h1', NULL, NULL)")
    con.execute("insert into users values (2, 'b' || char(0) || 'ob', 'bob@example.com', 'h2', NULL, NULL)")
    con.close()
    report = load(source, schema_db)
    assert report["preflight"]["restaged"] is True
    assert report["preflight"]["rejected_rows"]["users"] == 1
    users = report["tables"]["users"]
    assert (users["source_rows"], users["migrated_rows"], users["quarantined_rows"]) == (2, 1, 1)
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select id, username from public.users").fetchall() == [(1, "ann")]
        assert conn.execute(
            "select source_id, reason, source_row -> 'username' from hrp_migration.quarantine").fetchall() == [
            (2, "username: NUL byte in text", {"$hex": "62006F62", "$type": "text"})]
        # the first attempt's transaction left nothing: one run, committed
        assert conn.execute("select status from hrp_migration.runs").fetchall() == [("committed",)]


@pytest.mark.cluster
def test_bulk_path_exact_duplicates_and_orphans_leave_before_the_keys(schema_db, tmp_path):
    """The bulk path inserts predictions and builds their primary key and indexes while their
    orphans and duplicates are still being marked beside: an exact duplicate (which the UNIQUE
    constraint would refuse) and an orphan are quarantined and the keys come out whole."""
    source = tmp_path / "dups.sqlite"
    con = new_sqlite(source)
    con.execute("insert into races (id, race_name, race_date) values (1, 'Derby', '2024-06-01')")
    con.execute("insert into horses (id, horse_name) values (1, 'Frankel'), (2, 'Dancer')")
    for row in ("1, 1, 1, 0.5, 0.5, 'v1', '2024-06-01 10:00:00'",
                "2, 1, 1, 0.6, 0.4, 'v1', '2024-06-01 10:00:00'",   # exact key duplicate of 1
                "3, 1, 2, 0.7, 0.3, 'v1', '2024-06-01 10:00:00'",
                "4, 7, 2, 0.7, 0.3, 'v1', '2024-06-01 10:00:00'"):  # race 7 does not exist
        con.execute(f"insert into predictions values ({row})")
    con.close()
    report = load(source, schema_db)
    assert report["path"] == "bulk (empty target)"
    predictions = report["tables"]["predictions"]
    assert (predictions["migrated_rows"], predictions["quarantined_rows"], predictions["inserted_rows"]) == (2, 2, 2)
    with psycopg.connect(schema_db) as conn:
        assert [r[0] for r in conn.execute("select id from public.predictions order by id")] == [1, 3]
        assert reasons(conn, "predictions") == {
            2: "duplicate of predictions id 1 on (race_id, horse_id, lower(algorithm_version)) (lowest id kept)",
            4: "race_id: races id 7 does not exist"}
        assert conn.execute(
            "select count(*) from pg_constraint where conrelid = 'public.predictions'::regclass "
            "and contype in ('p', 'u', 'f')").fetchone()[0] == 4


def reasons(conn, table):
    return dict(conn.execute(
        "select source_id, reason from hrp_migration.quarantine where source_table = %s", (table,)).fetchall())


# What the dirty corpus must give: per table its accounting, normalisations, each quarantined
# row's reason, and the exact values of every migrated row. One load (module_db) serves every case.
DIRTY_ACCOUNTING = {
    "races": (16, 4, 12), "horses": (10, 4, 6), "predictions": (12, 2, 10),
    "users": (5, 2, 3), "api_credentials": (5, 3, 2)}
DIRTY_NORMALISATIONS = {
    "races": {"enum_label_case_folded": 1, "real_rounded_to_scale": 1, "text_as_json_string": 1,
              "timestamp_from_epoch": 1, "timestamp_offset_to_utc": 1, "timestamp_from_date_only": 1},
    "horses": {"real_rounded_to_scale": 1},
    "predictions": {"real_rounded_to_scale": 1},
    "users": {"timestamp_from_date_only": 1},
    "api_credentials": {"boolean_from_text": 1}}
DIRTY_REASONS = {
    "races": {
        3: "race_type: unknown label",
        4: "race_date: NULL in a NOT NULL column",
        5: "distance: not a finite number",
        6: "distance: violates check_races_distance_positive",
        7: "distance: out of range of decimal(6,2)",
        9: "weather_conditions: malformed JSON",
        10: "created_at: unparseable timestamp",
        11: "race_name: invalid UTF-8",
        12: "race_name: BLOB value (no BLOB columns in the target)",
        13: "track_name: NUL byte in text",
        14: "race_name: longer than 255 characters",
        15: "race_date: not a calendar date YYYY-MM-DD"},
    "horses": {
        2: "duplicate of horses id 1 on lower(horse_name) (lowest id kept)",
        3: "duplicate of horses id 1 on lower(horse_name) (lowest id kept)",
        4: "age: not an integer", 5: "age: violates check_horses_age_range", 6: "age: not an integer",
        7: "weight: violates check_horses_weight_range"},
    "predictions": {
        2: "race_id: parent races id 4 is quarantined",
        3: "race_id: races id 999 does not exist",
        4: "horse_id: parent horses id 2 is quarantined",
        5: "race_id: NULL in a NOT NULL column",
        6: "duplicate of predictions id 1 on (race_id, horse_id, lower(algorithm_version)) (lowest id kept)",
        7: "confidence: violates check_predictions_confidence_range",
        8: "prediction_value: NULL in a NOT NULL column",
        9: "algorithm_version: longer than 20 characters",
        10: "prediction_value: not a finite number",
        12: "race_id: parent races id 12 is quarantined"},
    "users": {
        2: "duplicate of users id 1 on lower(username) (lowest id kept)",
        3: "duplicate of users id 1 on lower(email) (lowest id kept)",
        4: "email: violates valid_email"},
    "api_credentials": {
        3: "is_active: not a boolean",
        4: "duplicate of api_credentials id 1 on lower(service_name) (lowest id kept)"}}
DIRTY_VALUES = {
    "races": (
        "select id, race_name, race_date, track_name, race_type::text, distance, surface::text,"
        " weather_conditions, created_at, updated_at from races order by id", [
            (1, "Gold Cup", dt.date(2024, 6, 20), "Ascot", "flat", Decimal("4023.36"), "turf",
             {"condition": "sunny", "temperature_c": 21}, ts("2024-06-01 10:00:00"), ts("2024-06-02 11:00:00")),
            (2, "Derby", dt.date(2024, 6, 1), "Epsom Downs", "flat", Decimal("2400.00"), "turf", None,
             ts("2024-05-01 09:00:00"), ts("2024-05-01 09:00:00")),
            (8, "Mile", dt.date(2024, 1, 5), None, "hurdle", Decimal("1609.34"), "snow", "sunny",
             ts("2023-11-14 22:13:20"), ts("2024-01-01 08:00:00")),
            (16, "Date Only", dt.date(2024, 3, 1), None, "steeplechase", Decimal("3200.50"), "sand", [1, 2],
             ts("2024-03-01 00:00:00"), ts("2024-03-01 12:30:00"))]),
    "horses": (
        "select id, horse_name, age, weight, jockey, trainer, owner, pedigree, created_at, updated_at"
        " from horses order by id", [
            (1, "Frankel", 5, Decimal("500.5"), "Tom Queally", "Henry Cecil", "Khalid Abdullah", None,
             ts("2020-01-01 00:00:00"), ts("2021-01-01 00:00:00")),
            (8, "Rounded", 4, Decimal("455.3"), None, None, None, None, None, None),
            (9, "Sea The Stars", None, None, None, None, None, None, ts("2019-05-05 05:05:05.123456"), None),
            (10, "Ça Va Bien 🐎", 3, Decimal("612.0"), "Søren Ólafsson", None, "Écurie Ōkami", None, None,
             None)]),
    "predictions": (
        "select id, race_id, horse_id, prediction_value, confidence, algorithm_version, created_at,"
        " updated_at from predictions order by id", [
            (1, 1, 1, Decimal("0.500000"), Decimal("0.7500"), "v1", ts("2024-06-10 08:00:00"),
             ts("2024-06-10 08:00:00")),
            (11, 2, 9, Decimal("0.250000"), Decimal("0.1235"), "v1", ts("2024-06-11 09:00:00"),
             ts("2024-06-11 09:00:00"))]),
    "users": (
        "select id, username, email, password_hash, is_active, is_admin, preferences, created_at,"
        " updated_at, last_login from users order by id", [
            (1, "alice", "alice@example.com", "h1", True, False, {}, ts("2023-01-01 00:00:00"),
             ts("2023-01-01 00:00:00"), None),
            (5, "dave", "dave@example.com", "h5", True, False, {}, ts("2023-02-02 02:02:02"),
             ts("2023-02-02 02:02:02"), ts("2024-03-01 00:00:00"))]),
    "api_credentials": (
        "select id, service_name, api_key, api_secret, endpoint_url, is_active, rate_limit, created_at"
        " from api_credentials order by id", [
            (1, "racing_api", "k1", "s1", "https://api.example/v1", True, 1000, ts("2022-01-01 00:00:00")),
            (2, "weather", "k2", None, None, True, 1000, None),
            (5, "tote", "k5", None, None, None, 1000, None)])}


@pytest.fixture(scope="module")
def dirty(module_db, tmp_path_factory):
    """The dirty corpus loaded once, the big-file way (the content scan in the background finds the
    rows, staging restarts): (report, dsn, the source's sha256 before and after)."""
    source = dirty_corpus(tmp_path_factory.mktemp("dirty") / "dirty.sqlite")
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(migration, "SCAN_BESIDE_PGLOADER_BYTES", 0)
        report = load(source, module_db)
    return report, module_db, before, hashlib.sha256(source.read_bytes()).hexdigest()


@pytest.mark.cluster
def test_dirty_corpus_leaves_the_source_file_unchanged(dirty):
    _, _, before, after = dirty
    assert after == before, "the source file must not change"


@pytest.mark.cluster
def test_dirty_corpus_restages_without_the_rows_pgloader_cannot_carry(dirty):
    report = dirty[0]
    assert report["preflight"]["rejected_rows"]["races"] == 3
    assert report["preflight"]["restaged"] is True  # pgloader ran again, on a copy without them


@pytest.mark.cluster
@pytest.mark.parametrize("table", migration.TABLES)
def test_dirty_corpus_accounting(dirty, table):
    row = dirty[0]["tables"][table]
    assert (row["source_rows"], row["migrated_rows"], row["quarantined_rows"]) == DIRTY_ACCOUNTING[table]
    assert row["checksum_match"]


@pytest.mark.cluster
@pytest.mark.parametrize("table", migration.TABLES)
def test_dirty_corpus_normalisations(dirty, table):
    assert dirty[0]["tables"][table]["normalised_by_rule"] == DIRTY_NORMALISATIONS[table]


@pytest.mark.cluster
def test_dirty_corpus_reason_counts_in_the_report(dirty):
    t = dirty[0]["tables"]
    assert t["races"]["quarantined_by_reason"]["race_name: invalid UTF-8"] == 1
    assert t["predictions"]["quarantined_by_reason"]["race_id: parent races id N is quarantined"] == 2
    assert t["horses"]["quarantined_by_reason"][
        "duplicate of horses id N on lower(horse_name) (lowest id kept)"] == 2


@pytest.mark.cluster
@pytest.mark.parametrize("table, source_id", [(t, i) for t, rows in DIRTY_REASONS.items() for i in rows])
def test_dirty_corpus_quarantined_row_and_its_reason(dirty, table, source_id):
    with psycopg.connect(dirty[1]) as conn:
        assert reasons(conn, table).get(source_id) == DIRTY_REASONS[table][source_id]


@pytest.mark.cluster
@pytest.mark.parametrize("table", migration.TABLES)
def test_dirty_corpus_quarantines_nothing_else(dirty, table):
    with psycopg.connect(dirty[1]) as conn:
        assert set(reasons(conn, table)) == set(DIRTY_REASONS[table])


@pytest.mark.cluster
def test_dirty_corpus_keeps_the_bytes_json_cannot_hold(dirty):
    with psycopg.connect(dirty[1]) as conn:
        rows = dict(conn.execute(
            "select source_id, source_row from hrp_migration.quarantine where source_table = 'races'").fetchall())
    assert rows[11]["race_name"] == {"$hex": "41FF42", "$type": "text"}
    assert rows[12]["race_name"] == {"$hex": "4142", "$type": "blob"}
    assert rows[13]["track_name"] == {"$hex": "610062", "$type": "text"}
    assert rows[5]["distance"] == "far" and rows[10]["created_at"] == "yesterday"
    assert rows[14]["race_name"] == "x" * 256


@pytest.mark.cluster
@pytest.mark.parametrize("table", migration.TABLES)
def test_dirty_corpus_exact_values_of_every_migrated_row(dirty, table):
    query, want = DIRTY_VALUES[table]
    with psycopg.connect(dirty[1]) as conn:
        assert conn.execute(query).fetchall() == want


@pytest.mark.cluster
@pytest.mark.parametrize("table", migration.TABLES)
def test_dirty_corpus_never_both_migrated_and_quarantined(dirty, table):
    with psycopg.connect(dirty[1]) as conn:
        both = conn.execute(
            f"select count(*) from {table} join hrp_migration.quarantine q"
            f" on q.source_table = '{table}' and q.source_id = {table}.id").fetchone()[0]
    assert both == 0


@pytest.mark.cluster
def test_dirty_corpus_sequences_past_the_highest_id_and_the_run_recorded(dirty):
    report, dsn = dirty[0], dirty[1]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select nextval('races_id_seq')").fetchone()[0] == 17
        assert conn.execute("select nextval('horses_id_seq')").fetchone()[0] == 11
        assert conn.execute(
            "select status, mode from hrp_migration.runs where run_id = %s", (report["run_id"],)).fetchone() == \
            ("committed", "full")
        assert conn.execute("select count(*) from hrp_migration.run_tables where run_id = %s",
                            (report["run_id"],)).fetchone()[0] == 5


def snapshot(dsn) -> dict:
    """Everything a load writes, but the run ledger."""
    out = table_contents(dsn)
    with psycopg.connect(dsn) as conn:
        out["quarantine"] = conn.execute(
            "select quarantine_id, run_id, source_table, source_id, reason, source_row"
            " from hrp_migration.quarantine order by quarantine_id").fetchall()
        out["sequences"] = conn.execute(
            "select sequencename, last_value from pg_sequences where schemaname = 'public' order by 1").fetchall()
    return out


@pytest.mark.cluster
def test_rerun_changes_nothing_and_source_timezone(schema_db, tmp_path):
    source = dirty_corpus(tmp_path / "dirty.sqlite")
    load(source, schema_db, source_timezone="Europe/Paris")
    first = snapshot(schema_db)
    again = load(source, schema_db, source_timezone="Europe/Paris")
    assert again["path"] == "merge"
    assert all((v["inserted_rows"], v["updated_rows"], v["deleted_rows"]) == (0, 0, 0)
               for v in again["tables"].values())
    assert snapshot(schema_db) == first
    with psycopg.connect(schema_db) as conn:  # naive times are Paris local times (UTC+2 in June)
        assert conn.execute("select created_at from races where id = 1").fetchone()[0] == \
            ts("2024-06-01 08:00:00")


@pytest.mark.cluster
def test_max_quarantine_rolls_back(schema_db, tmp_path):
    source = dirty_corpus(tmp_path / "dirty.sqlite")
    with pytest.raises(HarnessError, match=r"quarantine limit exceeded: 33 rows quarantined, --max-quarantine is 5"):
        load(source, schema_db, max_quarantine=5)
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select count(*) from races").fetchone()[0] == 0
        assert conn.execute("select count(*) from hrp_migration.quarantine").fetchone()[0] == 0
        assert conn.execute("select status from hrp_migration.runs").fetchall() == [("failed",)]
    assert load(source, schema_db, max_quarantine=33)["quarantined_total"] == 33


@pytest.mark.cluster
@pytest.mark.parametrize("change, message", [
    ("alter table races add column purse real", r"column races\.purse is not known to the mapping"),
    ("alter table horses drop column owner", r"expected column horses\.owner \(TEXT\) is missing"),
    ("create table alembic_version (version_num text)", r"table 'alembic_version' is not in the spec's schema"),
])
def test_source_schema_mismatch_is_refused(schema_db, tmp_path, change, message):
    path = tmp_path / "changed.sqlite"
    sample.generate(path, SMALL, seed=3)
    con = sqlite3.connect(path)
    con.execute(change)
    con.close()
    with pytest.raises(HarnessError, match=message):
        load(path, schema_db)
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select count(*) from horses").fetchone()[0] == 0


@pytest.mark.cluster
def test_utf16_source_is_refused(schema_db, tmp_path):
    path = tmp_path / "utf16.sqlite"
    con = sqlite3.connect(path)
    con.execute("pragma encoding = 'UTF-16le'")
    con.executescript(SPEC_SQLITE_SCHEMA.read_text())
    con.close()
    with pytest.raises(HarnessError, match=r"database encoding is UTF-16le; the loader reads UTF-8 files only"):
        load(path, schema_db)


@pytest.mark.cluster
def test_incremental_sync_new_changed_deleted_rows(schema_db, tmp_path):
    path = tmp_path / "app.sqlite"
    sample.generate(path, SMALL, seed=5)
    with pytest.raises(HarnessError, match="--incremental needs a target loaded before"):
        load(path, schema_db, incremental=True)
    first = load(path, schema_db)
    assert first["quarantined_total"] == 0
    assert first["tables"]["predictions"]["migrated_rows"] == 2_000
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript("""
        insert into races (id, race_name, race_date, race_type, created_at, updated_at)
        values (41, 'New Race', '2025-01-01', 'flat', '2025-01-01 00:00:00', '2025-01-01 00:00:00');
        update horses set weight = 601.5, updated_at = '2025-02-02 02:02:02' where id = 7;
        delete from predictions where id in (10, 11, 12);
        delete from races where id = 40;   -- its predictions become orphans
        update users set email = 'changed@example.com' where id = 3;
    """)
    orphans = con.execute("select count(*) from predictions where race_id = 40").fetchone()[0]
    con.close()
    assert orphans > 0
    second = load(path, schema_db, incremental=True)
    t = second["tables"]
    assert second["mode"] == "incremental" and second["path"] == "merge"
    assert (t["races"]["inserted_rows"], t["races"]["updated_rows"], t["races"]["deleted_rows"]) == (1, 0, 1)
    assert (t["horses"]["inserted_rows"], t["horses"]["updated_rows"], t["horses"]["deleted_rows"]) == (0, 1, 0)
    assert t["predictions"]["deleted_rows"] == 3 + orphans
    assert t["predictions"]["quarantined_rows"] == orphans
    assert t["users"]["updated_rows"] == 1
    assert all(v["checksum_match"] for v in t.values())
    with psycopg.connect(schema_db) as conn:
        # the source's updated_at is kept: the spec's update trigger did not overwrite it
        assert conn.execute("select weight, updated_at from horses where id = 7").fetchone() == \
            (Decimal("601.5"), ts("2025-02-02 02:02:02"))
        assert conn.execute("select race_name from races where id = 41").fetchone()[0] == "New Race"
        assert conn.execute("select count(*) from races where id = 40").fetchone()[0] == 0
        assert conn.execute("select count(*) from predictions").fetchone()[0] == 2_000 - 3 - orphans
        assert conn.execute("select count(*) from hrp_migration.quarantine where source_table = 'predictions'"
                            " and reason = 'race_id: races id 40 does not exist'").fetchone()[0] == orphans
        assert conn.execute("select email from users where id = 3").fetchone()[0] == "changed@example.com"
        assert conn.execute("select nextval('races_id_seq')").fetchone()[0] == 42
    # the update trigger works again after the load
    with psycopg.connect(schema_db) as conn:
        conn.execute("update horses set age = 3 where id = 7")
        assert conn.execute("select updated_at > now() - interval '1 minute' from horses where id = 7"
                            ).fetchone()[0]


def _load_cli(path, dsn, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "load", "--sqlite", str(path), "--dsn", dsn,
         "--report", str(path) + ".cli.json", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.cluster
@pytest.mark.parametrize("kill_when", ["staging", "transaction"])
def test_kill_and_rerun_gives_the_same_end_state(pg_cluster, schema_db, tmp_path, kill_when):
    path = tmp_path / "app.sqlite"
    sample.generate(path, sample.Size(races=300, horses=1_500, predictions=15_000, users=30, credentials=5), seed=9)
    dirty = sqlite3.connect(path)
    dirty.execute("update races set race_type = 'Chariot' where id = 7")
    dirty.commit()
    dirty.close()
    probe = {"staging": "select count(*) from pg_stat_activity where query ~* '^\\s*copy '",
             "transaction": "select count(*) from pg_stat_activity where state = 'active' and query ~ "
                            "'\"hrp_migration\"\\.\"(sync_quarantine|drop_keys|apply_table|restore_keys|finish_table)\"'"
                 }[kill_when]
    proc = _load_cli(path, schema_db)
    killed = False
    with psycopg.connect(schema_db, autocommit=True) as watch:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if watch.execute(probe).fetchone()[0]:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole load: invoke, bash lanes, pgloader
                killed = True
                break
            time.sleep(0.005)
    proc.wait()
    assert killed, f"the load finished before it could be killed during {kill_when}"
    # autocommit: pg_stat_activity is a snapshot per transaction
    with psycopg.connect(schema_db, autocommit=True) as conn:  # nothing of the killed load is visible
        deadline = time.monotonic() + 10      # (its backend may take a moment to notice)
        while conn.execute("select count(*) from pg_stat_activity where datname = current_database()"
                           " and pid <> pg_backend_pid() and backend_type = 'client backend'").fetchone()[0]:
            assert time.monotonic() < deadline, conn.execute(
                "select pid, state, backend_type, wait_event_type, wait_event, query, now() - query_start from pg_stat_activity where datname = current_database()"
                " and pid <> pg_backend_pid()").fetchall()
            time.sleep(0.05)
        assert conn.execute("select count(*) from races").fetchone()[0] == 0
        assert conn.execute("select count(*) from hrp_migration.runs where status = 'committed'").fetchone()[0] == 0
        assert conn.execute("select count(*) from pg_indexes where tablename = 'predictions'").fetchone()[0] == 10
    rerun = _load_cli(path, schema_db)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    reference = pg_cluster.dsn("hrp_kill_reference")
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute("drop database if exists hrp_kill_reference")
        admin.execute("create database hrp_kill_reference template hrp_schema_template")
    try:
        load(path, reference)
        got, want = snapshot(schema_db), snapshot(reference)
        for key in ("quarantine",):  # ids of the ledger differ between databases; compare content
            got[key] = [row[2:] for row in got[key]]
            want[key] = [row[2:] for row in want[key]]
        assert got == want
        assert len(want["quarantine"]) == 1 + 50  # the chariot race and its 50 predictions
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
            admin.execute("drop database hrp_kill_reference")


@pytest.mark.unit
def test_sample_generator_is_deterministic_and_sized(tmp_path):
    a, b, c = (sample.generate(tmp_path / f"{n}.sqlite", SMALL, seed=s) for n, s in (("a", 7), ("b", 7), ("c", 8)))

    def dump(path):
        con = sqlite3.connect(path)
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()

    assert dump(a) == dump(b)
    assert dump(a) != dump(c)
    test = sample.generate(tmp_path / "test.sqlite", "test", seed=1)
    con = sqlite3.connect(test)
    counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in migration.TABLES}
    uniques = con.execute("select count(distinct horse_name), (select count(distinct email) from users),"
                          " (select count(*) from (select distinct race_id, horse_id, algorithm_version"
                          " from predictions)) from horses").fetchone()
    orphans = con.execute("select count(*) from predictions p where not exists (select 1 from races r"
                          " where r.id = p.race_id) or not exists (select 1 from horses h where h.id = p.horse_id)"
                          ).fetchone()[0]
    con.close()
    assert counts == {"races": 1_000, "horses": 5_000, "predictions": 50_000, "users": 100, "api_credentials": 5}
    assert uniques == (5_000, 100, 50_000) and orphans == 0


@pytest.mark.unit
def test_sample_beyond_production_size_has_more_trainers_not_larger_stables(tmp_path):
    """Horses past the 50,400th get trainers of their own block (numbered, as the horse names): at 10x
    a trainer keeps the stable size of 1x, so the trainer JOIN compares like with like."""
    path = sample.generate(tmp_path / "big.sqlite", sample.Size(races=5, horses=100_800, predictions=5,
                                                                users=2, credentials=1), seed=1)
    con = sqlite3.connect(path)
    try:
        trainers, biggest = con.execute(
            "select count(*), max(horses) from (select trainer, count(*) as horses from horses"
            " group by trainer)").fetchone()
        first_block = con.execute("select count(distinct trainer) from horses where id <= 50400").fetchone()[0]
    finally:
        con.close()
    assert first_block <= 1_600 and trainers == 2 * first_block
    assert biggest < 100  # ~31 on average; the first 1,600 names are not shared across blocks


@pytest.mark.cluster
def test_load_over_tls_with_a_password_and_user_pgloader_cannot_take_in_a_url(pg_cluster, schema_db, tmp_path):
    """pgloader gets user, host and password through PGUSER, PGHOST, PGPASSWORD (its URLs have no
    quoting and do not decode escapes), and TLS."""
    password = "p@ss w%rd:/?x"
    user = "hrp loader 'test'@x"
    role = psycopg.sql.Identifier(user)
    dbname = psycopg.conninfo.conninfo_to_dict(schema_db)["dbname"]
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("drop role if exists {}").format(role))
        admin.execute(psycopg.sql.SQL("create role {} login superuser password {}").format(
            role, psycopg.sql.Literal(password)))
    try:
        dsn = pg_cluster.tcp_dsn(dbname, user, password)
        assert "verify-full" in dsn
        path = sample.generate(tmp_path / "app.sqlite", SMALL, seed=11)
        report = load(path, dsn)
        assert {t: v["migrated_rows"] for t, v in report["tables"].items()} == {
            "races": 40, "horses": 300, "users": 20, "api_credentials": 4, "predictions": 2_000}
        with psycopg.connect(schema_db) as conn:
            assert conn.execute("select count(*) from predictions").fetchone()[0] == 2_000
    finally:
        with psycopg.connect(schema_db, autocommit=True) as admin:  # the work tables it created
            admin.execute(psycopg.sql.SQL("reassign owned by {} to postgres").format(role))
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("drop role {}").format(role))


@pytest.mark.cluster
def test_reconciliation_catches_rows_pgloader_drops_silently(schema_db, tmp_path, monkeypatch):
    """With the preflight's content scan switched off, a BLOB in a TEXT column makes pgloader drop
    rows without a word (exit status 0); the count reconciliation still stops the load."""
    path = sample.generate(tmp_path / "app.sqlite", SMALL, seed=13)
    con = sqlite3.connect(path)
    con.execute("update horses set jockey = x'00ff' where id = 150")
    con.commit()
    con.close()
    real = migration.preflight
    monkeypatch.setattr(migration, "preflight", lambda source, workroot, scan=True: real(source, workroot, False))
    with pytest.raises(HarnessError, match=r"staging does not reconcile with the source.*\n  horses: staged \d+ rows, "
                                           r"source has 300"):
        load(path, schema_db)
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select count(*) from horses").fetchone()[0] == 0
        assert conn.execute("select status from hrp_migration.runs").fetchall() == [("failed",)]


# -- real files: SQLAlchemy's declared types, the app's own schema with a mapping file -----------

APP_MAPPING = REPO / "data" / "mappings" / "hrp-app-2025.toml"



@pytest.mark.cluster
def test_sqlalchemy_declared_types_load_exactly_the_rows_of_the_spec_typed_file(pg_cluster, schema_db, tmp_path):
    """VARCHAR(n) / DATETIME / FLOAT / BOOLEAN / DATE / INTEGER / TEXT for the spec's columns: the same
    affinities, so no mapping is needed and the rows come out exactly as from the spec's DDL."""
    spec = sample.generate(tmp_path / "spec.sqlite", SMALL, seed=31)
    orm = sample.generate(tmp_path / "orm.sqlite", SMALL, seed=31, shape="sqlalchemy")
    con = sqlite3.connect(orm)
    assert con.execute("select type from pragma_table_info('api_credentials') where name = 'api_key'"
                       ).fetchone()[0] == "VARCHAR(500)"
    con.close()
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute("drop database if exists hrp_orm_reference")
        admin.execute("create database hrp_orm_reference template hrp_schema_template")
    try:
        load(orm, schema_db)
        load(spec, pg_cluster.dsn("hrp_orm_reference"))
        assert table_contents(schema_db) == table_contents(pg_cluster.dsn("hrp_orm_reference"))
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
            admin.execute("drop database hrp_orm_reference")


@pytest.mark.cluster
def test_a_declared_type_of_another_affinity_is_refused_naming_it(schema_db, tmp_path):
    """Declared types are compared by SQLite affinity: INTEGER for the spec's age is INTEGER, TEXT
    is not (SQLite would have stored '4' as text, not as a number)."""
    path = tmp_path / "odd.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SPEC_SQLITE_SCHEMA.read_text().replace("    age INTEGER,", "    age VARCHAR(3),"))
    con.close()
    with pytest.raises(HarnessError, match=r"column horses\.age is declared 'VARCHAR\(3\)' \(TEXT affinity\), "
                                           r"the spec's schema says 'INTEGER' \(INTEGER affinity\)"):
        load(path, schema_db)


@pytest.mark.cluster
def test_the_apps_real_schema_is_refused_without_its_mapping_naming_the_differences(schema_db, tmp_path):
    path = sample.generate(tmp_path / "app.sqlite", SMALL, seed=33, shape="app")
    with pytest.raises(HarnessError) as refused:
        load(path, schema_db)
    message = str(refused.value)
    for difference in ("table 'race_horses' is not in the spec's schema", "column races.name is not known",
                       "expected column races.race_name (TEXT) is missing",
                       "column api_credentials.provider is not known",
                       "a source in another shape loads with --mapping FILE"):
        assert difference in message
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select count(*) from hrp_migration.runs").fetchone()[0] == 0


@pytest.mark.cluster
def test_the_apps_real_schema_loads_with_its_mapping_every_row_accounted_for(schema_db, tmp_path):
    path = sample.generate(tmp_path / "app.sqlite", SMALL, seed=34, shape="app")
    src = sqlite3.connect(path)
    source_counts = {t: src.execute(f"select count(*) from {t}").fetchone()[0]
                     for t in ("races", "horses", "race_horses", "predictions", "users", "api_credentials")}
    first = src.execute("select date, weather, surface, weight from races join horses using (id) where id = 1"
                        ).fetchone()
    src.close()
    report = load(path, schema_db, mapping=APP_MAPPING)
    t = report["tables"]
    # every row of every mapped table migrated or quarantined
    for table in migration.TABLES:
        assert t[table]["source_rows"] == source_counts[table]
        assert t[table]["source_rows"] == t[table]["migrated_rows"] + t[table]["quarantined_rows"]
        assert t[table]["checksum_match"]
    assert t["predictions"]["quarantined_by_reason"] == {
        "duplicate of predictions id N on (race_id, horse_id, lower(algorithm_version)) (lowest id kept)": 4}
    assert t["api_credentials"]["quarantined_by_reason"] == {"api_key: NULL in a NOT NULL column": 1}
    assert t["races"]["normalised_by_rule"] == {
        "date_from_timestamp": 40, "enum_label_case_folded": 40, "text_as_json_string": 40}
    # what went where
    assert report["unmapped_tables"] == {"race_horses": source_counts["race_horses"]}
    assert report["mapping"]["tables"]["horses"]["columns"]["horse_name"] == "name"
    assert "weight" in report["mapping"]["tables"]["horses"]["extra_columns"]
    assert report["extra_columns"] == {"races": 40, "horses": 300, "predictions": source_counts["predictions"],
                                      "api_credentials": 4}
    with psycopg.connect(schema_db) as conn:
        race_date, weather, surface = conn.execute(
            "select race_date, weather_conditions, surface::text from races where id = 1").fetchone()
        assert (str(race_date), weather, surface) == (first[0][:10], first[1], first[2].lower())
        # nothing unmapped is dropped: the full timestamp, the carried weight, the association table
        extra = conn.execute("select extra_values from hrp_migration.source_extras where source_table = 'races'"
                             " and source_id = 1").fetchone()[0]
        assert extra["date"] == first[0] and "race_class" in extra and len(extra) == 42
        assert conn.execute("select extra_values ->> 'weight' from hrp_migration.source_extras"
                            " where source_table = 'horses' and source_id = 1").fetchone()[0] == str(first[3])
        assert conn.execute("select weight from horses where id = 1").fetchone()[0] is None  # target default
        assert conn.execute("select count(*) from hrp_migration_unmapped.race_horses").fetchone()[0] == \
            source_counts["race_horses"]
        assert conn.execute("select count(*) from hrp_migration.quarantine").fetchone()[0] == 5
        password = conn.execute("select extra_values ->> 'password' from hrp_migration.source_extras"
                                " where source_table = 'api_credentials' and source_id = 3").fetchone()[0]
        assert password.startswith("pw_")
        assert conn.execute("select has_table_privilege('hrp_app', 'hrp_migration.source_extras', 'select')"
                            ).fetchone()[0] is False
        assert conn.execute("select mapping -> 'unmapped_tables' from hrp_migration.runs").fetchone()[0] == ["race_horses"]
    # a re-run with the same file and mapping changes nothing
    again = load(path, schema_db, mapping=APP_MAPPING, incremental=True)
    assert all((v["inserted_rows"], v["updated_rows"], v["deleted_rows"]) == (0, 0, 0)
               for v in again["tables"].values())


@pytest.mark.cluster
@pytest.mark.parametrize("text, message", [
    ("[tables.races\n", r"--mapping .*: not valid TOML"),
    ("[tables.jockeys]\nsource = 'jockeys'\n", r"\[tables\.jockeys\] is not a target table"),
    ("[tables.races.columns]\nrace_name = 'title'\n", r"table races, column race_name: the source table races "
                                                       r"has no column title"),
    ("[tables.races.columns]\nrace_date = { source = 'race_date', rule = 'guess' }\n",
     r"column race_date: unknown rule guess \(known: date_part\)"),
    ("[tables.horses.columns]\nid = false\n", r"no source column for its primary key id"),
    ("version = 2\n", r"unknown top-level key\(s\) version"),
])
def test_a_mapping_that_does_not_fit_is_refused_before_anything(schema_db, tmp_path, text, message):
    path = sample.generate(tmp_path / "app.sqlite", SMALL, seed=35)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(text)
    with pytest.raises(HarnessError, match=message):
        load(path, schema_db, mapping=mapping)
    with psycopg.connect(schema_db) as conn:
        assert conn.execute("select count(*) from races").fetchone()[0] == 0
        assert conn.execute("select count(*) from hrp_migration.runs where status = 'committed'").fetchone()[0] == 0


@pytest.mark.cluster
def test_the_readmes_rules_table_is_the_rule_set(schema_db):
    """README "Per-column rules" against what functions/migration_map.sql generates (for the spec's
    shape, plus a date_part and an interval column so that every kind of rule is in it) and the
    orphan, duplicate and timestamp rules: every reason and normalisation the SQL can give is in the
    table, and the table names none the SQL does not give."""
    import json
    import re

    from hrp_harness.migration.source import Source, read_mapping, spec_tables

    readme = (REPO / "README.md").read_text()
    table = readme.split("### Per-column rules", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    documented_reasons = {r for row in rows for r in re.findall(r"`([^`]+)`", row[2])}
    documented_norms = {n for row in rows for n in re.findall(r"`([a-z_]+)`", row[3])}
    spec = read_mapping(None)[0]
    other = json.loads(json.dumps(spec))
    other["tables"]["races"] = {"columns": {"race_date": {"source": "created_at", "rule": "date_part"}}}
    other["tables"]["api_credentials"]["columns"]["rate_limit_window"] = "service_name"
    sql_text = ""
    with psycopg.connect(schema_db) as conn:
        for mapping in (spec, other):
            conn.execute("select hrp_migration.set_mapping(%s, %s)",
                         (json.dumps(Source(REPO, 0, spec_tables()).as_json()), json.dumps(mapping)))
            sql_text += "\n".join(q for (q,) in conn.execute(
                "select hrp_migration.mapped_query(t) from unnest(hrp_migration.target_tables()) as t"))
        sql_text += "\n".join(src for (src,) in conn.execute(
            "select prosrc from pg_proc where pronamespace = 'hrp_migration'::regnamespace"
            " and proname in ('mark_orphans', 'mark_duplicates', 'ts_norms')"))
    # the reasons the generated queries give, with the column, the numbers, the type made general
    given = set()
    for text in re.findall(r"'[a-z_]+: ([^']+)'", sql_text):
        text = re.sub(r"decimal\(\d+,\d+\)", "decimal(p,s)", text)
        text = re.sub(r"longer than \d+ characters", "longer than n characters", text)
        text = re.sub(r"out of range of (smallint|integer|bigint)$", "out of range of <type>", text)
        text = re.sub(r"violates \w+", "violates <constraint name>", text)
        given.add(text.replace("\\\\", "\\"))  # format(%L) doubles a backslash
    for pattern, general in ((r"' \|\| f\.parent \|\| ' id %s does not exist'", "<parent> id N does not exist"),
                             (r"parent ' \|\| f\.parent \|\| ' id %s is quarantined'",
                              "parent <parent> id N is quarantined"),
                             (r"'duplicate of ' \|\| p_table \|\| ' id %s on '", "duplicate of <table> id N on <key> "
                                                                                 "(lowest id kept)")):
        if re.search(pattern, sql_text):
            given.add(general)
    assert given == documented_reasons
    norms = set(re.findall(r"'([a-z]+(?:_[a-z]+)+)'", sql_text)) & {
        n for n in re.findall(r"[a-z]+(?:_[a-z]+)+", sql_text)
        if n.startswith(("real_", "date_from", "timestamp_", "boolean_from", "enum_label", "text_as"))}
    assert norms == documented_norms
