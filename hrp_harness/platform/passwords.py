"""Passwords of the login roles: from the environment, else generated once into a 0600 file.

HRP_APP_PASSWORD, HRP_READONLY_PASSWORD, HRP_BACKUP_PASSWORD, HRP_MONITOR_PASSWORD set the
passwords of hrp_app, hrp_readonly, hrp_backup and hrp_monitor (the monitoring exporter's role).
An unset one is generated once (secrets.token_urlsafe, 256 bits) and kept in
STATE_DIR/secrets.json (mode 0600, never in the repository), so later deploys reuse it.

The password never reaches the server in clear: libpq's PQencryptPasswordConn (what psql's
\\password runs) turns it into a SCRAM-SHA-256 verifier on the client, and ALTER ROLE receives
that, quoted by psycopg.sql, in a transaction that switches off statement, duration, error-statement
and pgaudit logging first, so not even the verifier lands in a log.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

import psycopg
from psycopg import sql

from hrp_harness import HarnessError
from hrp_harness.platform.conf import write_private
from hrp_harness.platform.paths import state_dir

ROLE_ENV = {
    "hrp_app": "HRP_APP_PASSWORD",
    "hrp_readonly": "HRP_READONLY_PASSWORD",
    "hrp_backup": "HRP_BACKUP_PASSWORD",
    "hrp_monitor": "HRP_MONITOR_PASSWORD",
}
SECRETS_NAME = "secrets.json"

#: Run first in the transaction that sets passwords: nothing of it may be logged.
SILENCE = (
    "set local log_statement = 'none'",
    "set local log_min_duration_statement = -1",
    "set local log_min_error_statement = 'panic'",
    "set local \"pgaudit.log\" = 'none'",
)


def secrets_file(state: Path | None = None) -> Path:
    return (state or state_dir()) / SECRETS_NAME


def _read_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise HarnessError(f"{path} is open to other users (mode {mode:04o}): chmod 600 {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise HarnessError(f"{path} must hold a JSON object of role name -> password")
    return data


def role_passwords(state: Path | None = None,
                   environ: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """role -> (password, where it comes from); generates and stores the missing ones."""
    environ = os.environ if environ is None else environ
    path = secrets_file(state)
    stored = _read_secrets(path)
    result: dict[str, tuple[str, str]] = {}
    generated = False
    for role, variable in ROLE_ENV.items():
        if variable in environ:
            if environ[variable] == "":
                raise HarnessError(f"{variable} is set but empty: unset it (a password is then "
                                   f"generated) or give the password of {role}")
            result[role] = (environ[variable], variable)
        else:
            if role not in stored:
                stored[role] = secrets.token_urlsafe(32)
                generated = True
            result[role] = (stored[role], str(path))
    if generated:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(stored, indent=2, sort_keys=True) + "\n")
    return result


def scram_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier libpq computes for role's password (salted, 4096 iterations)."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return verifier.decode()


def set_passwords(dsn: str, passwords: dict[str, str]) -> None:
    """ALTER ROLE ... PASSWORD '<SCRAM verifier>' for each role, in one unlogged transaction."""
    try:
        conn = psycopg.connect(dsn)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to set role passwords: {str(exc).strip()}") from None
    with conn, conn.transaction():
        for statement in SILENCE:
            conn.execute(statement)
        for role, password in passwords.items():
            missing = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
            if missing is None:
                raise HarnessError(f"role {role!r} does not exist: apply roles/roles.sql first")
            conn.execute(sql.SQL("alter role {} password {}").format(
                sql.Identifier(role), sql.Literal(scram_verifier(conn, role, password))))


def ensure_role_passwords(dsn: str, echo=print, state: Path | None = None) -> dict[str, str]:
    """Set the login roles' passwords (environment or secrets file); say where each is from."""
    chosen = role_passwords(state)
    set_passwords(dsn, {role: password for role, (password, _) in chosen.items()})
    for role, (_, source) in chosen.items():
        echo(f"password of {role}: SCRAM-SHA-256, from {source}")
    return {role: password for role, (password, _) in chosen.items()}
