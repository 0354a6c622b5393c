"""The checks of what a user hands a task (hrp_harness/platform/inputs.py) and of the client networks
(HRP_CLIENT_NETWORKS, hrp_harness/platform/cluster.py), without a server: each bad input is one line
naming the option and what is wrong."""

from __future__ import annotations

import pytest

from hrp_harness import HarnessError
from hrp_harness.platform.cluster import checked_networks, client_networks_from_env
from hrp_harness.platform.inputs import (MAX_NAME_BYTES, database_name, non_negative_int, positive_number,
                                sqlite_source, writable_file)

pytestmark = pytest.mark.unit


# -- database names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["hrp_database", "a;b", "a b", "a$$b", 'hrp "db"; drop database postgres; --',
                                  "é" * 31 + "x", "x" * MAX_NAME_BYTES])
def test_a_name_every_tool_takes_is_returned_as_it_is(name):
    assert database_name(name) == name


@pytest.mark.parametrize("name, problem", [
    ("q'x", "pgloader cannot take a single quote in a database name"),
    ("x" * 64, "it is 64 bytes long, PostgreSQL keeps 63 (a longer name is silently cut)"),
    ("é" * 32, "it is 64 bytes long, PostgreSQL keeps 63"),  # bytes, not characters
    ("line\nbreak", "it holds a control character"),
    ("del\x7f", "it holds a control character"),
], ids=["quote", "64 bytes", "64 bytes in 32 characters", "newline", "DEL"])
def test_a_name_a_tool_cannot_take_is_refused_saying_why(name, problem):
    with pytest.raises(HarnessError) as refused:
        database_name(name, "--target")
    assert str(refused.value).startswith(f"--target: database name {name!r} refused before anything was created: ")
    assert problem in str(refused.value)


def test_every_problem_of_a_name_is_named_at_once():
    with pytest.raises(HarnessError, match=r"is 64 bytes long.*; pgloader cannot take a single quote.*; "
                                           r"it holds a control character$"):
        database_name("'" + "\n" + "x" * 62)


def test_no_name_at_all_says_what_to_give():
    with pytest.raises(HarnessError, match=r"^--dsn must name the target database "
                                           r"\(postgresql://USER@HOST:PORT/DBNAME\)$"):
        database_name("")


# -- numbers and files ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, number", [(None, None), ("12", 12), (" 7 ", 7), (0, 0), ("0", 0)])
def test_a_count_is_a_non_negative_integer(value, number):
    assert non_negative_int(value, "--max-quarantine") == number


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", True, 2.0])
def test_anything_else_is_refused_as_a_count(value):
    with pytest.raises(HarnessError, match=rf"^--max-quarantine must be a non-negative integer, got {value!r}$"
                       .replace("(", r"\(").replace(")", r"\)")):
        non_negative_int(value, "--max-quarantine")


@pytest.mark.parametrize("value, number", [("10", 10.0), (0.5, 0.5), ("1e3", 1000.0)])
def test_a_positive_number(value, number):
    assert positive_number(value, "--seconds") == number


@pytest.mark.parametrize("value, message", [
    ("ten", "--seconds must be a number, not 'ten'"), (None, "--seconds must be a number, not None"),
    ("0", "--seconds must be a positive number, not '0'"), (-1, "--seconds must be a positive number, not -1"),
    ("nan", "--seconds must be a positive number, not 'nan'"),
    ("inf", "--seconds must be a positive number, not 'inf'"),
])
def test_anything_else_is_refused_as_a_positive_number(value, message):
    with pytest.raises(HarnessError) as refused:
        positive_number(value, "--seconds")
    assert str(refused.value) == message


def test_a_sqlite_source_is_an_existing_readable_regular_file(tmp_path):
    source = tmp_path / "app.sqlite"
    source.write_bytes(b"SQLite format 3\x00")
    assert sqlite_source(str(source)) == source.resolve()
    for given, message in [(tmp_path / "nope.sqlite", "no such file"),
                           (tmp_path, "is a directory, not a SQLite file"),
                           ("/dev/null", "not a regular file (a SQLite database is one)")]:
        with pytest.raises(HarnessError) as refused:
            sqlite_source(given)
        assert str(refused.value) == f"--sqlite {given}: {message}"


def test_a_writable_file_is_in_an_existing_directory_and_not_one(tmp_path):
    assert writable_file(tmp_path / "r.json", "--report") == tmp_path / "r.json"
    for given, message in [(tmp_path / "no" / "r.json", f"directory {tmp_path / 'no'} does not exist"),
                           (tmp_path, "is a directory"),
                           (tmp_path / ("r" * 300), "the file name is longer than 255 bytes")]:
        with pytest.raises(HarnessError) as refused:
            writable_file(given, "--report")
        assert str(refused.value) == f"--report {given}: {message}"


# -- client networks -----------------------------------------------------------------------------

def test_client_networks_come_from_the_environment_space_separated(monkeypatch):
    monkeypatch.delenv("HRP_CLIENT_NETWORKS", raising=False)
    assert client_networks_from_env() == ("127.0.0.1/32",)
    monkeypatch.setenv("HRP_CLIENT_NETWORKS", "  10.1.0.0/16\t192.168.0.0/24 ")
    assert client_networks_from_env() == ("10.1.0.0/16", "192.168.0.0/24")
    monkeypatch.setenv("HRP_CLIENT_NETWORKS", " ")
    assert client_networks_from_env(("::1/128",)) == ("::1/128",)


@pytest.mark.parametrize("networks", [("127.0.0.1/32",), ("10.0.0.0/8", "::1/128", "fd00::/8"),
                                      ("0.0.0.0/1",), ("::/1",)])
def test_networks_that_leave_someone_out_are_taken(networks):
    assert checked_networks(networks, allow_wide=True) == " ".join(networks)


def test_the_override_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("HRP_ALLOW_WIDE_CLIENT_NETWORKS", "1")
    assert checked_networks(("12.0.0.0/7",)) == "12.0.0.0/7"
    monkeypatch.setenv("HRP_ALLOW_WIDE_CLIENT_NETWORKS", "yes")  # only "1" means it
    with pytest.raises(HarnessError, match=r"12\.0\.0\.0/7 are wider than /8"):
        checked_networks(("12.0.0.0/7",))
