"""Logical backups: pg_dump custom format (compressed), encrypted with openssl, rotated; restore.

A file is `DBNAME-YYYYmmddTHHMMSSZ.pgdump.enc` = openssl enc -aes-256-cbc -pbkdf2 over the output of
pg_dump -Fc -Z 6. The passphrase is the pgBackRest repository's (hrp_harness.backup.passphrase:
$HRP_BACKUP_PASSPHRASE or the 0600 secrets file); it reaches openssl through the environment, never
the command line. Decrypt by hand (docs/runbook.md):
    openssl enc -d -aes-256-cbc -pbkdf2 -iter 200000 -pass env:HRP_BACKUP_PASSPHRASE -in FILE | pg_restore ...
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from hrp_harness import HarnessError
from hrp_harness.backup import PASSPHRASE_ENV, passphrase
from hrp_harness.paths import pgbin, state_dir

SUFFIX = ".pgdump.enc"
NAME = re.compile(r"^(?P<db>.+)-(?P<ts>\d{8}T\d{6}Z)" + re.escape(SUFFIX) + "$")
#: The spec keeps full backups 30 days; logical dumps follow it.
KEEP_DAYS = 30
CIPHER = ["-aes-256-cbc", "-pbkdf2", "-iter", "200000", "-salt"]


class LogicalBackupError(HarnessError):
    """pg_dump, pg_restore or openssl failed; the message names the file and the tool's error."""


def default_dir() -> Path:
    return state_dir() / "logical"


def _env(secret: str | None) -> dict:
    return {**os.environ, PASSPHRASE_ENV: secret or passphrase()}


def _pipe(first: list[str], second: list[str], env: dict, what: str) -> None:
    """first | second; both must succeed, else LogicalBackupError with both stderrs."""
    producer = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    consumer = subprocess.run(second, stdin=producer.stdout, capture_output=True, env=env)
    producer.stdout.close()
    producer_err = producer.stderr.read().decode(errors="replace")
    producer.wait()
    if producer.returncode or consumer.returncode:
        raise LogicalBackupError(
            f"{what} failed: {Path(first[0]).name} exit {producer.returncode} "
            f"{producer_err.strip()}; {Path(second[0]).name} exit {consumer.returncode} "
            f"{consumer.stderr.decode(errors='replace').strip()}")


def dump(dsn: str, dbname: str, directory: Path | None = None, secret: str | None = None) -> Path:
    """Dump one database into DIRECTORY/DBNAME-TIMESTAMP.pgdump.enc (written whole, then renamed)."""
    from psycopg.conninfo import make_conninfo

    directory = Path(directory or default_dir())
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = directory / f"{dbname}-{stamp}{SUFFIX}"
    partial = target.with_name(target.name + ".partial")
    _pipe([pgbin("pg_dump"), "--format=custom", "--compress=6", "--dbname",
           make_conninfo(dsn, dbname=dbname)],
          ["openssl", "enc", "-e", *CIPHER, "-pass", f"env:{PASSPHRASE_ENV}", "-out", str(partial)],
          _env(secret), f"logical backup of {dbname} into {target}")
    os.chmod(partial, 0o600)
    partial.rename(target)
    return target


def restore(path: Path, dsn: str, secret: str | None = None) -> None:
    """Decrypt PATH and pg_restore it into the (empty) database of dsn, in one transaction,
    stopping at the first error, objects owned by the connecting role."""
    path = Path(path)
    if not path.is_file():
        raise LogicalBackupError(f"logical backup {path} does not exist")
    _pipe(["openssl", "enc", "-d", *CIPHER, "-pass", f"env:{PASSPHRASE_ENV}", "-in", str(path)],
          [pgbin("pg_restore"), "--exit-on-error", "--single-transaction", "--no-owner",
           "--dbname", dsn],
          _env(secret), f"restore of {path}")


def backups(directory: Path | None = None) -> list[Path]:
    """The logical backups in directory, oldest first (by the timestamp in their name)."""
    directory = Path(directory or default_dir())
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if NAME.match(p.name)]
    return sorted(found, key=lambda p: NAME.match(p.name)["ts"])


def rotate(directory: Path | None = None, keep_days: int = KEEP_DAYS,
           now: float | None = None) -> list[Path]:
    """Delete backups older than keep_days (by modification time), always keeping the newest of
    each database. Returns what was deleted."""
    now = time.time() if now is None else now
    newest = {}
    for path in backups(directory):
        newest[NAME.match(path.name)["db"]] = path
    deleted = []
    for path in backups(directory):
        if path in newest.values():
            continue
        if now - path.stat().st_mtime > keep_days * 86400:
            path.unlink()
            deleted.append(path)
    return deleted

