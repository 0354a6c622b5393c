"""Checks of what a user hands a task, run before anything is created or changed: each bad input
gets one line saying what and where (HarnessError), never a traceback half-way through."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from hrp_harness import HarnessError

#: PostgreSQL keeps at most NAMEDATALEN - 1 bytes of a name; a longer one is silently truncated by
#: CREATE DATABASE, which then names another database than the one asked for.
MAX_NAME_BYTES = 63


def database_name(name: str, option: str = "--dsn") -> str:
    """A database name every tool of the chain takes: PostgreSQL (<= 63 bytes), psql, pg_prove,
    pgBackRest and pgloader (which quotes a name in single quotes and has no escape for one)."""
    if not name:
        raise HarnessError(f"{option} must name the target database (postgresql://USER@HOST:PORT/DBNAME)")
    problems = []
    if len(name.encode()) > MAX_NAME_BYTES:
        problems.append(f"it is {len(name.encode())} bytes long, PostgreSQL keeps {MAX_NAME_BYTES} "
                        "(a longer name is silently cut)")
    if "'" in name:
        problems.append("pgloader cannot take a single quote in a database name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problems.append("it holds a control character")
    if problems:
        raise HarnessError(f"{option}: database name {name!r} refused before anything was created: "
                           + "; ".join(problems))
    return name


def sqlite_source(path: str | os.PathLike) -> Path:
    """The SQLite file to load: an existing, readable regular file (its content is checked later)."""
    given = str(path)
    source = Path(given).expanduser()
    try:
        mode = source.stat().st_mode
    except FileNotFoundError:
        raise HarnessError(f"--sqlite {given}: no such file") from None
    except PermissionError:
        raise HarnessError(f"--sqlite {given}: a directory on the way cannot be entered") from None
    except OSError as exc:
        raise HarnessError(f"--sqlite {given}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise HarnessError(f"--sqlite {given}: is a directory, not a SQLite file")
    if not stat.S_ISREG(mode):
        raise HarnessError(f"--sqlite {given}: not a regular file (a SQLite database is one)")
    try:
        with source.open("rb"):
            pass
    except OSError as exc:
        raise HarnessError(f"--sqlite {given}: cannot be read ({exc.strerror})") from None
    return source.resolve()


def non_negative_int(value, option: str) -> int | None:
    """An option that takes a count (None stays None): '12' -> 12; 'abc', '-1', '1.5' refused."""
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+", text):
        raise HarnessError(f"{option} must be a non-negative integer, got {value!r}")
    return int(text)


def writable_file(path: str | os.PathLike, option: str) -> Path:
    """A file the task will write: its directory exists and is writable, the name fits the file
    system, and it is not a directory."""
    target = Path(path).expanduser().absolute()
    parent = target.parent
    if not parent.is_dir():
        raise HarnessError(f"{option} {path}: directory {parent} does not exist")
    try:
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except OSError:
        limit = 255
    if len(target.name.encode()) > limit:  # before is_dir(), which raises on such a name
        raise HarnessError(f"{option} {path}: the file name is longer than {limit} bytes")
    if target.is_dir():
        raise HarnessError(f"{option} {path}: is a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HarnessError(f"{option} {path}: directory {parent} is not writable")
    return target


def positive_number(value, option: str) -> float:
    """A number > 0 given on the command line (seconds, durations); one clear line otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HarnessError(f"{option} must be a number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise HarnessError(f"{option} must be a positive number, not {value!r}")
    return number
