"""Security of the deployed database on a real server: SCRAM passwords, TLS 1.3 only, pg_hba,
privileges, the audit log, and hostile names and values given to the harness."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import time

import psycopg
import pytest
from psycopg import errors, sql

from helpers import TEST_PASSWORDS
from hrp_harness import HarnessError
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.platform.deploy import deploy
from hrp_harness.platform.passwords import role_passwords, set_passwords

ROLES = ("hrp_app", "hrp_readonly", "hrp_backup", "hrp_monitor")


def quiet(*_args):
    pass


def login(cluster, role: str, password: str | None = None, dbname: str = DATABASE,
          autocommit: bool = False, **params):
    password = TEST_PASSWORDS[role] if password is None else password
    return psycopg.connect(cluster.tcp_dsn(dbname, role, password, connect_timeout="5", **params),
                           autocommit=autocommit)


def server_log(cluster) -> str:
    return "".join(p.read_text(errors="replace")
                   for p in sorted((cluster.datadir / "log").glob("postgresql-*.log")))


def wait_for_log(cluster, needle: str, timeout: float = 10) -> str:
    """The server log once it holds needle (the logging collector writes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server_log(cluster)
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


# -- authentication ------------------------------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.parametrize("role", ROLES)
def test_each_role_logs_in_over_tls13_with_its_hostile_password(pg_cluster, app_database, role):
    with login(pg_cluster, role) as conn:
        version, cipher = conn.execute(
            "select version, cipher from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
        assert conn.execute("select current_user").fetchone()[0] == role
    assert version == "TLSv1.3"
    assert cipher.startswith("TLS_")


@pytest.mark.cluster
@pytest.mark.parametrize("role", ROLES)
def test_passwords_are_scram_verifiers_of_the_given_password(app_database, role):
    with psycopg.connect(app_database) as conn:
        stored = conn.execute("select rolpassword from pg_authid where rolname = %s",
                              (role,)).fetchone()[0]
    # RFC 5802 / 7677: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    head, keys = stored.split("$", 1)[1].split("$")
    iterations, salt = head.split(":")
    stored_key, server_key = keys.split(":")
    assert stored.startswith("SCRAM-SHA-256$4096:")
    salted = hashlib.pbkdf2_hmac("sha256", TEST_PASSWORDS[role].encode(), base64.b64decode(salt),
                                 int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
    assert base64.b64encode(hmac.new(salted, b"Server Key", "sha256").digest()).decode() == server_key


@pytest.mark.cluster
def test_wrong_password_is_refused(pg_cluster, app_database):
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "hrp_app"'):
        login(pg_cluster, "hrp_app", password=TEST_PASSWORDS["hrp_app"] + "x")


@pytest.mark.cluster
def test_tcp_without_tls_is_refused(pg_cluster, app_database):
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects connection .*no encryption"):
        login(pg_cluster, "hrp_app", sslmode="disable")


@pytest.mark.cluster
def test_tls_below_1_3_is_refused(pg_cluster, app_database):
    with pytest.raises(psycopg.OperationalError, match="(?i)protocol version|unsupported protocol"):
        login(pg_cluster, "hrp_app", sslmode="require", ssl_max_protocol_version="TLSv1.2")


@pytest.mark.cluster
@pytest.mark.parametrize("version, refused", [("-tls1_2", True), ("-tls1_3", False)])
def test_server_refuses_tls_below_1_3_to_any_client(pg_cluster, version, refused):
    """openssl as a second client: the refusal is the server's (alert 70), not libpq's choice."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{pg_cluster.port}", "-starttls", "postgres",
         version, "-CAfile", str(pg_cluster.ca_file)],
        input="", capture_output=True, text=True, timeout=30)
    output = done.stdout + done.stderr
    if refused:
        assert "alert protocol version" in output, output
    else:
        assert "New, TLSv1.3, Cipher is TLS_" in output and "Verify return code: 0 (ok)" in output, output


@pytest.mark.cluster
def test_login_roles_reach_only_the_application_database(pg_cluster, app_database):
    with pytest.raises(psycopg.OperationalError, match="pg_hba.conf rejects connection"):
        login(pg_cluster, "hrp_app", dbname="postgres")


@pytest.mark.cluster
def test_backup_role_may_open_a_replication_connection(pg_cluster, app_database):
    dsn = pg_cluster.tcp_dsn("replication", "hrp_backup", TEST_PASSWORDS["hrp_backup"],
                             replication="true")
    with psycopg.connect(dsn, autocommit=True) as conn:
        system = conn.execute("IDENTIFY_SYSTEM").fetchone()
    assert system[0].isdigit()  # the system identifier


# -- authorisation -------------------------------------------------------------------------------

@pytest.mark.cluster
def test_database_connect_is_for_the_four_login_roles_only(app_database):
    with psycopg.connect(app_database) as conn:
        acl = conn.execute(
            "select coalesce(nullif(a.grantee, 0)::regrole::text, 'PUBLIC'), a.privilege_type"
            " from pg_database as d, aclexplode(d.datacl) as a"
            " where d.datname = current_database() and a.grantee <> d.datdba order by 1, 2").fetchall()
    assert acl == [("hrp_app", "CONNECT"), ("hrp_backup", "CONNECT"), ("hrp_monitor", "CONNECT"),
                   ("hrp_readonly", "CONNECT")]


@pytest.mark.cluster
def test_readonly_reads_but_cannot_write(pg_cluster, app_database):
    with login(pg_cluster, "hrp_readonly") as conn:
        conn.execute("select count(*) from public.races, public.race_statistics")
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table races"):
            conn.execute("insert into public.races (race_name, race_date) values ('x', current_date)")


@pytest.mark.cluster
@pytest.mark.parametrize("statement, error", [
    ("create table public.intruder (id int)", "permission denied for schema public"),
    ("create table intruder (id int)", "permission denied for schema public"),
    ("drop table public.users", "must be owner of table users"),
    ("alter table public.users add column intruder int", "must be owner of table users"),
    ("truncate public.predictions", "permission denied for table predictions"),
    ("create schema intruder", "permission denied for database"),
    ("select * from hrp_deploy.ledger", "permission denied for schema hrp_deploy"),
    ("select * from hrp_anonymize.users", "permission denied for schema hrp_anonymize"),
    ("create role intruder", "permission denied to create role"),
])
def test_app_cannot_change_the_schema(pg_cluster, app_database, statement, error):
    with login(pg_cluster, "hrp_app") as conn:
        with pytest.raises(errors.InsufficientPrivilege, match=error):
            conn.execute(statement)


@pytest.mark.cluster
def test_app_cannot_grant(pg_cluster, app_database):
    with login(pg_cluster, "hrp_app", autocommit=True) as conn:
        conn.execute("grant select on public.users to hrp_backup")  # PostgreSQL: only a warning
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("grant hrp_readonly to hrp_backup")
    with psycopg.connect(app_database) as conn:
        assert conn.execute(
            "select has_table_privilege('hrp_backup', 'public.users', 'select')").fetchone()[0] is False


@pytest.mark.cluster
def test_app_writes_and_uses_sequences(pg_cluster, app_database):
    with login(pg_cluster, "hrp_app") as conn:
        race = conn.execute("insert into public.races (race_name, race_date) values (%s, %s)"
                            " returning id", ("pytest app write", "2026-01-01")).fetchone()[0]
        conn.execute("update public.races set track_name = 'x' where id = %s", (race,))
        conn.execute("delete from public.races where id = %s", (race,))
        conn.rollback()


# -- audit and logging ---------------------------------------------------------------------------

@pytest.mark.cluster
def test_dml_by_app_is_in_the_audit_log_with_its_parameters(pg_cluster, app_database):
    marker = f"audit probe {time.time_ns()}"
    with login(pg_cluster, "hrp_app") as conn:
        conn.execute("insert into public.races (race_name, race_date) values (%s, %s)",
                     (marker, "2026-03-04"))
        conn.rollback()
    text = wait_for_log(pg_cluster, marker)
    lines = [line for line in text.splitlines() if marker in line]
    assert lines, "the audited INSERT is not in the server log"
    line = lines[0]
    assert "user=hrp_app,db=hrp_database" in line
    assert "AUDIT: SESSION," in line and ",WRITE,INSERT," in line
    assert "insert into public.races (race_name, race_date) values ($1, $2)" in line
    assert f"{marker},2026-03-04" in line  # pgaudit.log_parameter: the bound values


@pytest.mark.cluster
def test_passwords_and_verifiers_never_reach_the_log(pg_cluster, app_database):
    deploy(pg_cluster.dsn(DATABASE), echo=quiet)  # sets the passwords again, now
    with psycopg.connect(app_database) as conn:
        verifiers = [v for (v,) in conn.execute(
            "select rolpassword from pg_authid where rolname = any(%s)", (list(ROLES),))]
    with login(pg_cluster, "hrp_app") as conn:
        marker = f"log flushed {time.time_ns()}"
        conn.execute("select %s::text", (marker,))
    text = wait_for_log(pg_cluster, marker)
    assert marker in text  # the log is being written: the checks below are not vacuous
    for password in TEST_PASSWORDS.values():
        assert password not in text
    for verifier in verifiers:
        assert verifier.split("$")[2] not in text
    assert "SCRAM-SHA-256$" not in text
    assert "alter role hrp_app password" not in text.lower()


@pytest.mark.cluster
@pytest.mark.parametrize("role", ROLES)
def test_a_role_changing_its_own_password_logs_no_password(pg_cluster, app_database, role):
    """What the app (or a person in psql) does: ALTER ROLE ... PASSWORD in clear text. pgaudit logs the
    statement redacted; log_statement (none, not the spec's ddl) would log it whole."""
    secret = f"new-secret-{role}-{time.time_ns()}"
    change = sql.SQL("alter role {} password {}").format(sql.Identifier(role), sql.Literal(secret))
    try:
        with login(pg_cluster, role, autocommit=True) as conn:
            if role == "hrp_backup":  # a replication role: PostgreSQL refuses, and logs the error
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute(change)
                password = None
            else:
                conn.execute(change)
                password = secret
        with login(pg_cluster, role, password=password) as conn:  # the change took effect (or not)
            assert conn.execute("select current_user").fetchone()[0] == role
            marker = f"log flushed {time.time_ns()}"
            conn.execute("select %s::text", (marker,))
    finally:
        set_passwords(app_database, {role: TEST_PASSWORDS[role]})
    text = wait_for_log(pg_cluster, marker)
    logs = "".join(p.read_text(errors="replace") for p in pg_cluster.base.rglob("*") if p.is_file()
                   and (p.suffix == ".log" or p.parent.name == "log"))
    assert marker in text and marker in logs  # the logs are written: the check below is not vacuous
    assert secret not in logs
    lines = [line for line in text.splitlines() if f"user={role}," in line]
    if password is None:
        assert any("must be superuser to alter replication roles" in line for line in lines)
    else:  # the change itself is audited, without the password
        assert any(",ROLE,ALTER ROLE," in line and "<REDACTED>" in line for line in lines)
    # pg_stat_statements (read by hrp_monitor) does not keep the statement either: track_utility off
    with psycopg.connect(app_database) as conn:
        kept = conn.execute("select count(*) from hrp_monitor.pg_stat_statements"
                            " where query like %s", (f"%{secret}%",)).fetchone()[0]
    assert kept == 0


@pytest.mark.cluster
def test_app_roles_reach_only_their_database_over_the_socket(pg_cluster, app_database):
    for role in ROLES:
        dsn = psycopg.conninfo.make_conninfo(host=str(pg_cluster.socket_dir), port=pg_cluster.port, user=role,
                                             password=TEST_PASSWORDS[role], dbname=DATABASE)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("select current_user").fetchone()[0] == role
        with pytest.raises(psycopg.OperationalError, match=f'pg_hba.conf rejects connection for host "\\[local\\]",'
                                                           f' user "{role}", database "postgres"'):
            psycopg.connect(psycopg.conninfo.make_conninfo(dsn, dbname="postgres"))


@pytest.mark.cluster
def test_database_scope_audit_settings_equal_the_conf_fragments(app_database):
    from hrp_harness.platform.conf import conf_settings, unquote

    wanted = {name: unquote(value) for fragment, name, value in conf_settings(("audit",))}
    with psycopg.connect(app_database) as conn:
        config = conn.execute(
            "select unnest(setconfig) from pg_db_role_setting"
            " where setdatabase = (select oid from pg_database where datname = current_database())"
            " and setrole = 0").fetchall()
    scoped = dict(item.split("=", 1) for (item,) in config)
    assert {name: scoped[name] for name in wanted} == wanted
    assert scoped["log_statement"] == "none" and scoped["log_min_duration_statement"] == "1000"


# -- hostile names and values --------------------------------------------------------------------

# every character pgloader takes in a quoted name (a single quote it cannot take: refused before
# anything is created, tests/test_data_safety.py)
HOSTILE_DB = "hrp \"x\"; revoke all on database postgres from public; --"
HOSTILE_ADMIN = 'adm"; drop role hrp_app; --'


@pytest.mark.cluster
def test_hostile_database_and_admin_names_are_quoted_never_executed(pg_cluster, app_database):
    password = "adm 'pw'; --"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} superuser login password {}").format(
            sql.Identifier(HOSTILE_ADMIN), sql.Literal(password)))
        before = conn.execute("select rolname from pg_roles order by 1").fetchall()
    try:
        lines = []
        target = deploy(pg_cluster.tcp_dsn(HOSTILE_DB, HOSTILE_ADMIN, password), echo=lines.append)
        with psycopg.connect(target) as db:
            assert db.execute("select current_database(), current_user").fetchone() == \
                (HOSTILE_DB, HOSTILE_ADMIN)
            connect = db.execute(
                "select array_agg(a.grantee::regrole::text order by a.grantee::regrole::text) from pg_database as d,"
                " aclexplode(d.datacl) as a where d.datname = current_database()"
                " and a.privilege_type = 'CONNECT' and a.grantee <> d.datdba").fetchone()[0]
            assert connect == ["hrp_app", "hrp_backup", "hrp_monitor", "hrp_readonly"]
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            assert conn.execute("select rolname from pg_roles order by 1").fetchall() == before
            assert conn.execute("select has_database_privilege('hrp_readonly', 'postgres',"
                                " 'connect')").fetchone()[0] is True  # PUBLIC's CONNECT stayed
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(HOSTILE_DB)))
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(HOSTILE_ADMIN)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(HOSTILE_ADMIN)))


@pytest.mark.unit
def test_empty_password_variable_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("HRP_READONLY_PASSWORD", "")
    with pytest.raises(HarnessError, match="HRP_READONLY_PASSWORD is set but empty"):
        role_passwords(tmp_path)
