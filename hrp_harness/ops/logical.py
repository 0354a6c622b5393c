"""Logical backups: pg_dump custom format (compressed), encrypted with openssl, rotated; restore.

A backup is two files: `DBNAME-YYYYmmddTHHMMSSZ.pgdump.enc` = openssl enc -aes-256-cbc -pbkdf2 over
the output of pg_dump -Fc -Z 6, and beside it `DBNAME-YYYYmmddTHHMMSSZ.roles.sql.enc`, the same
over `pg_dumpall --roles-only --no-role-passwords` (the roles the grants and owners name, without
their passwords), so that a restore on a new server finds its roles. The passphrase is the
pgBackRest repository's (hrp_harness.ha.backup.passphrase: $HRP_BACKUP_PASSPHRASE or the 0600 secrets
file); it reaches openssl through the environment, never the command line. Decrypt by hand
(docs/runbook.md):
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
from hrp_harness.ha.backup import PASSPHRASE_ENV, passphrase, passphrase_file
from hrp_harness.platform.conf import write_private
from hrp_harness.platform.paths import pgbin, state_dir

SUFFIX = ".pgdump.enc"
ROLES_SUFFIX = ".roles.sql.enc"
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


#: What openssl or pg_restore say when the passphrase is wrong: openssl's padding check fails
#: ("bad decrypt"), or, for about 1 wrong key in 256, passes and pg_restore gets garbage.
_WRONG_KEY_SIGNS = ("bad decrypt", "did not find magic string",
                    "input file does not appear to be a valid archive", "unsupported version")


def _pipe(first: list[str], second: list[str], env: dict, what: str, decrypting: bool = False) -> str:
    """first | second; both must succeed, else LogicalBackupError with both stderrs (naming a
    wrong passphrase when decrypting failed as a wrong key does). Returns second's stderr."""
    producer = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    consumer = subprocess.run(second, stdin=producer.stdout, capture_output=True, env=env)
    producer.stdout.close()
    producer_err = producer.stderr.read().decode(errors="replace")
    producer.wait()
    consumer_err = consumer.stderr.decode(errors="replace")
    if producer.returncode or consumer.returncode:
        hint = ""
        if decrypting and any(sign in producer_err + consumer_err for sign in _WRONG_KEY_SIGNS):
            hint = (f" -- wrong passphrase? It must be the one the backup was made with "
                    f"(${PASSPHRASE_ENV} or {passphrase_file()})")
        raise LogicalBackupError(
            f"{what} failed{hint}: {Path(first[0]).name} exit {producer.returncode} "
            f"{producer_err.strip()}; {Path(second[0]).name} exit {consumer.returncode} "
            f"{consumer_err.strip()}")
    return consumer_err


def roles_file(dump_path: Path) -> Path:
    """The roles file beside a dump."""
    return dump_path.with_name(dump_path.name[:-len(SUFFIX)] + ROLES_SUFFIX)


def dump(dsn: str, dbname: str, directory: Path | None = None, secret: str | None = None) -> Path:
    """Dump one database into DIRECTORY/DBNAME-TIMESTAMP.pgdump.enc (written whole, then renamed)."""
    from psycopg.conninfo import make_conninfo

    directory = Path(directory or default_dir())
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = directory / f"{dbname}-{stamp}{SUFFIX}"
    partial = target.with_name(target.name + ".partial")
    roles = roles_file(target)
    roles_partial = roles.with_name(roles.name + ".partial")
    for empty in (roles_partial, partial):  # openssl -out truncates a file and keeps its mode: 0600
        write_private(empty, "")
    _pipe([pgbin("pg_dumpall"), "--roles-only", "--no-role-passwords", "--dbname",
           make_conninfo(dsn, dbname="postgres")],
          ["openssl", "enc", "-e", *CIPHER, "-pass", f"env:{PASSPHRASE_ENV}", "-out",
           str(roles_partial)],
          _env(secret), f"roles of the logical backup {target}")
    _pipe([pgbin("pg_dump"), "--format=custom", "--compress=6", "--dbname",
           make_conninfo(dsn, dbname=dbname)],
          ["openssl", "enc", "-e", *CIPHER, "-pass", f"env:{PASSPHRASE_ENV}", "-out", str(partial)],
          _env(secret), f"logical backup of {dbname} into {target}")
    for done, final in ((roles_partial, roles), (partial, target)):
        done.rename(final)
    return target


def restore(path: Path, dsn: str, secret: str | None = None) -> None:
    """Create the roles of the backup that the server lacks (its roles file, when there is one;
    roles that exist keep their passwords), then decrypt PATH and pg_restore it into the (empty)
    database of dsn, in one transaction, stopping at the first error. Objects keep their owners
    when the backup carries its roles, else they belong to the connecting role."""
    path = Path(path)
    if not path.is_file():
        raise LogicalBackupError(f"logical backup {path} does not exist")
    roles = roles_file(path)
    if roles.is_file():
        restore_roles(roles, dsn, secret)
    _pipe(["openssl", "enc", "-d", *CIPHER, "-pass", f"env:{PASSPHRASE_ENV}", "-in", str(path)],
          [pgbin("pg_restore"), "--exit-on-error", "--single-transaction",
           *([] if roles.is_file() else ["--no-owner"]), "--dbname", dsn],
          _env(secret), f"restore of {path}", decrypting=True)


def restore_roles(roles: Path, dsn: str, secret: str | None = None) -> None:
    """Decrypt the roles file whole first (never feed psql what a wrong key made of it), check it
    is a pg_dumpall output, then run it through psql: a role that exists already fails its CREATE
    ROLE and keeps its password (the file has none); any other error stops the restore."""
    env = _env(secret)
    decrypted = subprocess.run(["openssl", "enc", "-d", *CIPHER, "-pass", f"env:{PASSPHRASE_ENV}", "-in",
                                str(roles)], capture_output=True, env=env)
    if decrypted.returncode != 0 or b"PostgreSQL database cluster dump" not in decrypted.stdout[:200]:
        raise LogicalBackupError(
            f"restore of {roles} failed -- wrong passphrase? It must be the one the backup was made "
            f"with (${PASSPHRASE_ENV} or {passphrase_file()}): openssl exit {decrypted.returncode} "
            f"{decrypted.stderr.decode(errors='replace').strip()[:200]}")
    done = subprocess.run([pgbin("psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=0",
                           "--dbname", dsn], input=decrypted.stdout, capture_output=True, env=env)
    errors = done.stderr.decode(errors="replace")
    unexpected = [line for line in errors.splitlines() if ("ERROR:" in line or "FATAL:" in line)
                  and not line.rstrip().endswith("already exists")]
    if done.returncode != 0 or unexpected:
        raise LogicalBackupError(f"roles of {roles}: " + ("; ".join(unexpected) or errors.strip()))


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
            roles_file(path).unlink(missing_ok=True)
            deleted.append(path)
    return deleted

