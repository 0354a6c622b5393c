"""psql runs the SQL files: meta-commands (\\i, \\set) work, errors name the file and line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from hrp_harness import HarnessError


def psql_argv(dsn: str, *extra: str) -> list[str]:
    psql = shutil.which("psql")
    if psql is None:
        raise HarnessError("psql not found: install postgresql-client-15 (./hrp setup does)")
    return [psql, "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--dbname", dsn, *extra]


def run_script(dsn: str, script: str, variables: dict[str, str] | None = None,
               extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run a psql script given on stdin; variables are passed with --set and used as :'name'."""
    argv = psql_argv(dsn, *extra)
    for name, value in (variables or {}).items():
        argv += ["--set", f"{name}={value}"]
    return subprocess.run(argv, input=script, capture_output=True, text=True)


def run_file(dsn: str, path: Path, single_transaction: bool = True,
             variables: dict[str, str] | None = None) -> str:
    """Run one SQL file (in one transaction by default); raise HarnessError naming the file."""
    argv = psql_argv(dsn, "--file", str(path))
    if single_transaction:
        argv.append("--single-transaction")
    for name, value in (variables or {}).items():
        argv += ["--set", f"{name}={value}"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(f"{path} failed:\n{done.stderr.strip()}")
    return done.stdout


#: conninfo keys and the libpq environment variables that carry them.
LIBPQ_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE",
    "user": "PGUSER", "password": "PGPASSWORD", "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION", "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS", "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
}


def libpq_env(dsn: str) -> dict[str, str]:
    """The dsn as libpq environment variables, for tools that take no conninfo (pg_prove)."""
    from psycopg.conninfo import conninfo_to_dict

    env = {}
    for key, value in conninfo_to_dict(dsn).items():
        if key not in LIBPQ_ENV:
            raise HarnessError(f"connection parameter {key!r} is not supported here")
        env[LIBPQ_ENV[key]] = str(value)
    return env
