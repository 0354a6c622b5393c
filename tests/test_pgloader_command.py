"""pgloader's command files and connection (hrp_harness/migration/staging.py), without a server:
the target URL carries only the database name (quoted unless plain) and sslmode, everything
pgloader cannot quote goes through the environment; a source path pgloader cannot name is read
through a plain symbolic link; the command file takes one table, its casts and batch size, and
excludes the tables pgloader's LIKE would also take."""

from __future__ import annotations

import pytest

from hrp_harness import HarnessError
from hrp_harness.migration.staging import (BATCH_ROWS, _like, pgloader_source, pgloader_target,
                                           render_pgloader)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dsn, url", [
    ("host=/run/pg port=5433 user=postgres dbname=hrp_database", "postgresql:///hrp_database"),
    ("host=/run/pg dbname='a b'", "postgresql:///'a b'"),
    ("host=/run/pg dbname=a;b", "postgresql:///'a;b'"),
    ("postgresql://u@127.0.0.1:5432/hrp_database", "postgresql:///hrp_database?sslmode=prefer"),
    ("postgresql://u@127.0.0.1/db?sslmode=verify-full", "postgresql:///db?sslmode=require"),
    ("postgresql://u@127.0.0.1/db?sslmode=verify-ca", "postgresql:///db?sslmode=require"),
    ("postgresql://u@127.0.0.1/db?sslmode=disable", "postgresql:///db?sslmode=disable"),
    ("postgresql://u@127.0.0.1/db?sslmode=allow", "postgresql:///db?sslmode=allow"),
], ids=["socket", "space quoted", "semicolon quoted", "tcp default prefer", "verify-full",
        "verify-ca", "disable", "allow"])
def test_the_url_holds_the_database_name_and_sslmode_only(dsn, url):
    assert pgloader_target(dsn)[0] == url


def test_user_host_port_and_password_go_through_the_environment(monkeypatch):
    for variable in ("PGDATABASE", "PGSERVICE", "PGHOSTADDR"):
        monkeypatch.setenv(variable, "stale")
    url, env = pgloader_target("host=127.0.0.1 port=6543 user='us@er:/x' password='p@ss word/\\'q'"
                               " dbname=db sslrootcert=/etc/ca.crt")
    assert url == "postgresql:///db?sslmode=prefer"
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGPASSWORD"]) == \
        ("127.0.0.1", "6543", "us@er:/x", "p@ss word/'q")
    assert env["SSL_CERT_FILE"] == "/etc/ca.crt"
    assert not {"PGDATABASE", "PGSERVICE", "PGHOSTADDR"} & set(env)
    assert "us@er" not in url and "p@ss" not in url


def test_defaults_when_the_dsn_leaves_them_out(monkeypatch):
    monkeypatch.delenv("PGUSER", raising=False)
    monkeypatch.setenv("PGPASSWORD", "from the caller's environment")
    _, env = pgloader_target("dbname=db")
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"]) == ("localhost", "5432", "postgres")
    assert "PGPASSWORD" not in env  # only the DSN's password reaches pgloader


@pytest.mark.parametrize("dsn, problem", [
    ("host=/run/pg", "--dsn must name the target database"),
    ("host=/run/pg dbname=q'x", "pgloader cannot take a single quote in a database name"),
    ("host=/run/pg dbname=" + "x" * 64, "it is 64 bytes long, PostgreSQL keeps 63"),
])
def test_a_database_name_pgloader_cannot_take_is_refused(dsn, problem):
    with pytest.raises(HarnessError, match=problem):
        pgloader_target(dsn.replace("q'x", "'q\\'x'"))


def test_a_plain_source_path_is_read_as_it_is(tmp_path):
    source = tmp_path / "app.sqlite"
    source.touch()
    assert pgloader_source(source, tmp_path / "work") == source


def test_a_source_path_pgloader_cannot_name_is_read_through_a_plain_link(tmp_path):
    source = tmp_path / "it's the app's file (copy).sqlite"
    source.write_bytes(b"x")
    work = tmp_path / "work"
    work.mkdir()
    link = pgloader_source(source, work)
    assert link == work / "source.sqlite" and link.is_symlink() and link.resolve() == source
    other = tmp_path / "another one.sqlite"
    other.write_bytes(b"y")
    assert pgloader_source(other, work).resolve() == other  # a stale link is replaced
    assert pgloader_source(other, work) == link  # and kept when it already points there


def test_a_work_directory_pgloader_cannot_name_is_refused(tmp_path):
    source = tmp_path / "a b.sqlite"
    source.touch()
    work = tmp_path / "work dir"
    work.mkdir()
    with pytest.raises(HarnessError, match=r"pgloader cannot read its work directory .*work dir by name: "
                                           r"move the state directory \(HRP_STATE_DIR\)"):
        pgloader_source(source, work)


@pytest.mark.parametrize("pattern, name, like", [
    ("races", "races", True), ("races", "RACES", True), ("race_s", "race_s", True), ("race_s", "raceXs", True),
    ("race_s", "races", False), ("race_s", "race_ss", False), ("races", "races2", False), ("%", "races", False),
])
def test_like_is_sqlites_like_of_a_plain_name(pattern, name, like):
    assert _like(pattern, name) is like


def test_the_command_file_loads_one_table_as_text_with_its_batch_size(tmp_path):
    text = render_pgloader(tmp_path / "app.sqlite", "postgresql:///db", "predictions",
                           [("predictions", "id"), ("predictions", "confidence")], BATCH_ROWS["predictions"],
                           others=["races", "horses", "predictions"])
    assert f"from sqlite://{tmp_path / 'app.sqlite'}\n    into postgresql:///db\n" in text
    assert "batch rows = 5000" in text
    assert "including only table names like 'predictions'\n" in text
    assert "excluding" not in text.split("-- Measured")[1]
    assert ("cast column predictions.id to text drop typemod drop default using float-to-string,\n"
            "     column predictions.confidence to text drop typemod drop default using float-to-string\n;") in text
    assert "set search_path to 'hrp_migration_stage'" in text and "data only" in text
    assert "${" not in text


def test_tables_like_would_also_take_are_excluded_and_twins_refused(tmp_path):
    text = render_pgloader(tmp_path / "a.sqlite", "postgresql:///db", "user_s", [("user_s", "id")], 1000,
                           others=["user_s", "users", "userXs", "USER_S2", "races"])
    assert "excluding table names like 'userXs'\n" in text
    # SQLite's LIKE ignores the case of ASCII letters: users and USERS take each other
    with pytest.raises(HarnessError, match="pgloader cannot tell source tables users and USERS apart"):
        render_pgloader(tmp_path / "a.sqlite", "postgresql:///db", "users", [("users", "id")], 500,
                        others=["users", "USERS"])


def test_the_spec_batch_sizes():
    assert BATCH_ROWS == {"races": 1000, "horses": 2000, "predictions": 5000, "users": 500, "api_credentials": 10}
