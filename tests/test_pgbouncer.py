"""PgBouncer in front of a cluster (hrp_harness/platform/pgbouncer.py): TLS 1.3 and SCRAM on both sides, the
application string (session pooling) with default SQLAlchemy and psycopg clients, 500 concurrent
clients on the transaction-pooled entry with max_connections = 100, the userlist in step with the
passwords, and why the app's string is not transaction-pooled."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from helpers import TEST_PASSWORDS
from hrp_harness.bench.app_engine import postgres_engine
from hrp_harness.platform.passwords import set_passwords
from hrp_harness.platform.pgbouncer import TX_POOL_SIZE, PgBouncer

pytestmark = pytest.mark.cluster

APP_PW = TEST_PASSWORDS["hrp_app"]


@pytest.fixture(scope="module")
def pooler(pg_cluster, app_database):
    """The session cluster's PgBouncer (hrp_database deployed with the test passwords)."""
    bouncer = PgBouncer(pg_cluster).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


def test_tls13_both_sides_and_scram(pooler, pg_cluster):
    with psycopg.connect(pooler.dsn(), password=APP_PW) as conn:
        assert conn.pgconn.ssl_in_use
        server_side = conn.execute("select version, client_addr::text from pg_stat_ssl"
                                   " join pg_stat_activity using (pid) where pid = pg_backend_pid()").fetchone()
        assert conn.info.port == pooler.port
    assert server_side == ("TLSv1.3", "127.0.0.1/32")  # PgBouncer -> PostgreSQL over TLS 1.3
    with pytest.raises(psycopg.OperationalError, match="password authentication failed|SASL"):
        psycopg.connect(pooler.dsn(), password="wrong")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pooler.dsn(sslmode="disable"), password=APP_PW)
    with pytest.raises(psycopg.OperationalError):  # TLS 1.2 is refused by PgBouncer too
        psycopg.connect(pooler.dsn(ssl_max_protocol_version="TLSv1.2"), password=APP_PW)
    with pytest.raises(psycopg.OperationalError):  # the superuser goes to PostgreSQL directly
        psycopg.connect(pooler.dsn(role="postgres"), password="x")


def test_app_string_serves_default_psycopg_clients(pooler):
    """Session pooling: psycopg's default prepare_threshold (5) works across reconnections and
    concurrent clients (server connections are reused after DISCARD ALL)."""
    errors: list[str] = []

    def client(n: int) -> None:
        try:
            for _ in range(3):
                with psycopg.connect(pooler.dsn(), password=APP_PW) as conn:
                    for i in range(8):
                        assert conn.execute("select count(*) from public.races where id > %s",
                                            [i]).fetchone()[0] >= 0
                    prepared = conn.execute("select count(*) from pg_prepared_statements").fetchone()[0]
                    assert prepared >= 1, "psycopg should have prepared the repeated statement"
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            errors.append(f"{n}: {exc}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_app_string_serves_default_sqlalchemy_client(pooler):
    from sqlalchemy import text

    engine = postgres_engine(pooler.dsn(), password=APP_PW)
    errors: list[str] = []

    def user(n: int) -> None:
        try:
            for i in range(20):
                with engine.connect() as conn:
                    conn.execute(text("select count(*) from public.horses where id > :i"), {"i": i}).scalar()
                    conn.execute(text("insert into public.races (race_name, race_date) "
                                      "values (:name, current_date)"), {"name": f"pgbouncer-{n}-{i}"})
                    conn.commit()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{n}: {exc}")

    threads = [threading.Thread(target=user, args=(n,)) for n in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        written = conn.execute(text("select count(*) from public.races where race_name like 'pgbouncer-%'")).scalar()
        conn.execute(text("delete from public.races where race_name like 'pgbouncer-%'"))
        conn.commit()
    engine.dispose()
    assert errors == [] and written == 25 * 20


def test_transaction_pooling_breaks_default_psycopg_clients(pooler):
    """Why the app's string is session-pooled: on the _tx entry a second default client gets the
    server connection where the first one's prepared statement still lives (PgBouncer 1.18)."""
    failures = []
    for _ in range(3):
        with psycopg.connect(pooler.dsn(transaction_pooling=True), password=APP_PW, autocommit=True) as conn:
            try:
                for i in range(8):
                    conn.execute("select %s::int", [i])
            except psycopg.Error as exc:
                failures.append(str(exc))
    assert any("prepared statement" in f for f in failures), failures


def test_500_clients_through_max_connections_100(pooler, pg_cluster):
    """500 client connections open at once on the transaction-pooled entry, each running
    transactions, served by at most TX_POOL_SIZE server connections: 0 errors."""
    count = "select count(*) from pg_stat_activity where usename = 'hrp_app'"
    with psycopg.connect(pg_cluster.dsn()) as conn:
        assert conn.execute("show max_connections").fetchone()[0] == "100"
        before = conn.execute(count).fetchone()[0]  # idle session-pool connections of other tests
    clients = 500
    peak = {"server_connections": 0}
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            while not stop.is_set():
                n = conn.execute(count).fetchone()[0]
                peak["server_connections"] = max(peak["server_connections"], n)
                stop.wait(0.05)

    async def main() -> list:
        connected = asyncio.Event()
        opened = 0

        async def client(n: int):
            nonlocal opened
            conn = await psycopg.AsyncConnection.connect(pooler.dsn(transaction_pooling=True),
                                                        password=APP_PW, prepare_threshold=None)
            try:
                opened += 1
                if opened == clients:
                    connected.set()
                await asyncio.wait_for(connected.wait(), 120)  # all 500 open at the same moment
                for i in range(3):
                    async with conn.transaction():
                        cur = await conn.execute("select count(*) from public.races where id > %s", [n + i])
                        await cur.fetchone()
            finally:
                await conn.close()

        return await asyncio.gather(*(client(n) for n in range(clients)), return_exceptions=True)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = asyncio.run(main())
    finally:
        stop.set()
        watcher.join()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} errors, first: {errors[:3]}"
    assert before < peak["server_connections"] <= before + TX_POOL_SIZE


def test_userlist_follows_a_password_change(pooler, pg_cluster, app_database):
    set_passwords(app_database, {"hrp_readonly": "a new one"})
    try:
        pooler.sync_userlist()
        with psycopg.connect(pooler.dsn(role="hrp_readonly"), password="a new one") as conn:
            assert conn.execute("select current_user").fetchone()[0] == "hrp_readonly"
        assert pooler.userlist.stat().st_mode & 0o077 == 0
    finally:
        set_passwords(app_database, {"hrp_readonly": TEST_PASSWORDS["hrp_readonly"]})
        pooler.sync_userlist()
