"""deploy: the embedded default cluster, or an existing server given by a superuser URL."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hrp_harness import HarnessError
from hrp_harness.platform.apply import apply, read_ledger
from hrp_harness.platform.cluster import DATABASE, Cluster, client_networks_from_env
from hrp_harness.platform.inputs import database_name, sqlite_source
from hrp_harness.ops.maintenance import schedule_jobs
from hrp_harness.migration.source import read_mapping
from hrp_harness.platform.passwords import ensure_role_passwords
from hrp_harness.platform.pgbouncer import PgBouncer
from hrp_harness.platform.paths import state_dir
from hrp_harness.platform.serverconf import advice_lines, server_advice


def embedded_cluster() -> Cluster:
    return Cluster(state_dir() / "pg", client_networks=client_networks_from_env())


def start_embedded(echo=print) -> Cluster:
    """Initialise once, install conf/, start; restart when a changed setting needs it."""
    cluster = embedded_cluster()
    if not cluster.initialized:
        echo(f"initialising the embedded PostgreSQL 15 cluster in {cluster.base}")
        cluster.init()
    else:
        cluster.install_conf()
    if not cluster.running:
        cluster.start()
        echo(f"started PostgreSQL on 127.0.0.1:{cluster.port} (sockets in {cluster.socket_dir})")
    else:
        cluster.reload()
        with psycopg.connect(cluster.dsn()) as conn:
            pending = [name for (name,) in conn.execute(
                "select name from pg_settings where pending_restart order by name")]
        if pending:
            echo(f"restarting PostgreSQL: changed settings need it ({', '.join(pending)})")
            cluster.restart()
    pooler = PgBouncer(cluster)
    if pooler.running:  # conf.install: its configuration too (a reload keeps the clients)
        pooler.configure()
    return cluster


def parse_target(url: str) -> dict[str, str]:
    """The --dsn's parameters, its database name checked (inputs.database_name: a name every tool
    of the chain takes, refused before CREATE DATABASE otherwise)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise HarnessError(f"--dsn is not a valid PostgreSQL URL or conninfo: {exc}") from None
    database_name(params.get("dbname") or "")
    return params


def ensure_database(url: str, echo=print, source_timezone: str | None = None) -> str:
    """Create the database the URL names when missing; check first that the URL's role is a
    superuser and (when given) that the server knows the source time zone."""
    params = parse_target(url)
    dbname = params["dbname"]
    maintenance = make_conninfo(url, dbname="postgres")
    try:
        conn = psycopg.connect(maintenance, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"
        raise HarnessError(f"cannot connect to PostgreSQL at {where}: {str(exc).strip()}") from None
    with conn:
        superuser = conn.execute(
            "select rolsuper from pg_roles where rolname = current_user").fetchone()[0]
        if not superuser:
            raise HarnessError(
                f"--dsn must connect as a superuser (deploy creates the database, roles and "
                f"extensions); {params.get('user', 'this role')!r} is not one")
        if source_timezone is not None:
            try:
                conn.execute("select now() at time zone %s", (source_timezone,))
            except psycopg.Error:
                raise HarnessError(f"--source-timezone {source_timezone!r} is not a time zone PostgreSQL "
                                   "knows (see pg_timezone_names)") from None
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            echo(f"creating database {dbname!r}")
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    return url


def deploy(dsn: str | None = None, echo=print, source_timezone: str | None = None) -> str:
    """Deploy the schema, then set the login roles' passwords (SCRAM) and schedule the maintenance
    jobs (pg_cron; without it a notice, not a failure); returns the superuser DSN of the deployed
    database. With dsn, also lists the server-wide settings a DBA must install.
    Writes no row of the spec's tables (deploy_data does, when asked or when there are none)."""
    cluster = None
    if dsn is None:
        cluster = start_embedded(echo)
        target = ensure_database(cluster.dsn(DATABASE), echo, source_timezone)
    else:
        target = ensure_database(dsn, echo, source_timezone)
    apply(target, echo=echo)
    ensure_role_passwords(target, echo)
    schedule_jobs(target, echo)  # pg_cron, or a notice when the server has none
    if dsn is not None:
        for line in advice_lines(server_advice(target)):
            echo(line)
    else:  # the embedded cluster's way in for the app: PgBouncer, its userlist in step with the passwords
        pooler = start_pooler(cluster)
        echo(f"PgBouncer on 127.0.0.1:{pooler.port} (pid {pooler.pid})")
    return target


def start_pooler(cluster: Cluster) -> PgBouncer:
    """Start (or re-configure and reload) the embedded cluster's PgBouncer."""
    return PgBouncer(cluster).start()


def data_held(target: str) -> str | None:
    """What of the spec's data a deployed database holds, as a phrase; None when no load ever
    committed into it and its five tables are empty (the only database the sample may go to)."""
    with psycopg.connect(target) as conn:
        run = conn.execute("select hrp_migration.last_committed_run()").fetchone()[0]
        counts = conn.execute(
            "select (select count(*) from public.races), (select count(*) from public.horses),"
            " (select count(*) from public.users), (select count(*) from public.api_credentials),"
            " (select count(*) from public.predictions)").fetchone()
    rows = sum(counts)
    if run is None and rows == 0:
        return None
    loaded = f"loaded by migration run {run}" if run is not None else "written by no load"
    return f"{rows} rows in its five tables, {loaded}"


def deploy_and_load(dsn: str | None = None, sqlite: str | None = None, source_timezone: str = "UTC",
                    echo=print, mapping: str | None = None) -> str:
    """`invoke deploy`: every input checked first, the schema deployed, then the data: --sqlite is
    an explicit load (migration.load and its guard); without it the generated sample goes only into
    a database that holds no data and no load ever wrote, else the data is left alone."""
    from hrp_harness import migration
    from hrp_harness.migration import sample

    source = sqlite_source(sqlite) if sqlite is not None else None
    if mapping is not None:
        if source is None:
            raise HarnessError("--mapping describes a --sqlite file: give both")
        read_mapping(mapping)  # its syntax, before anything is created
    if dsn is not None:
        parse_target(dsn)
    target = deploy(dsn, echo, source_timezone)
    if source is None:
        held = data_held(target)
        if held is not None:
            echo(f"data left alone: the database holds {held} (deploy loads the sample only into an "
                 "empty database no load wrote; `invoke load` loads a SQLite file)")
            return target
        source = state_dir() / "sample-test-seed1.sqlite"
        if not source.exists():
            echo(f"generating the test-size sample {source}")
            sample.generate(source, "test", seed=1)
    migration.load(source, target, source_timezone=source_timezone, mapping=mapping)
    return target


def app_dsn(cluster: Cluster, role: str = "hrp_app", dbname: str = DATABASE) -> str:
    """TCP conninfo of a login role straight to PostgreSQL, TLS verified (verify-full against the
    cluster's CA); the password is not in it (PGPASSWORD, ~/.pgpass, or the secrets file)."""
    return cluster.tcp_dsn(dbname, role)


def pooled_dsn(cluster: Cluster, role: str = "hrp_app", transaction_pooling: bool = False) -> str:
    """The application's connection string: through the cluster's PgBouncer (session pooling;
    transaction_pooling: the _tx entry), TLS verified, no password."""
    return PgBouncer(cluster).dsn(role, transaction_pooling=transaction_pooling)


def status_lines() -> list[str]:
    """What `invoke status` prints: the cluster, PgBouncer, the ledger; the last line one JSON
    object with app_dsn (through PgBouncer) and direct_dsn (straight to PostgreSQL)."""
    import json

    cluster = embedded_cluster()
    if not cluster.initialized:
        return [f"embedded cluster: not initialised (run `invoke deploy`); state dir {cluster.base}"]
    pooler = PgBouncer(cluster)
    summary = {"running": cluster.running, "pooler_running": pooler.running,
               "app_dsn": pooled_dsn(cluster) if pooler.configured else None,
               "app_tx_dsn": pooled_dsn(cluster, transaction_pooling=True) if pooler.configured else None,
               "direct_dsn": app_dsn(cluster), "admin_dsn": cluster.dsn(DATABASE)}
    if not cluster.running:
        return [f"embedded cluster: stopped ({cluster.datadir}); `invoke start` starts it",
                json.dumps(summary)]
    lines = [f"embedded cluster: running, pid {cluster.pid}, 127.0.0.1:{cluster.port}, "
             f"data {cluster.datadir}"]
    lines.append(f"PgBouncer: running, pid {pooler.pid}, 127.0.0.1:{pooler.port}" if pooler.running
                 else "PgBouncer: not running (`invoke start` or `invoke deploy` starts it)")
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        has_db = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
    if not has_db:
        return [*lines, f"database {DATABASE}: not created (run `invoke deploy`)", json.dumps(summary)]
    with psycopg.connect(cluster.dsn(DATABASE)) as conn:
        ledger = read_ledger(conn)
        last = conn.execute("select max(applied_at) from hrp_deploy.ledger").fetchone()[0] if ledger else None
    lines.append(f"database {DATABASE}: {len(ledger)} file(s) applied, last at {last}")
    lines.append(f"connect: psql '{cluster.dsn(DATABASE)}'")
    lines.append(json.dumps(summary))
    return lines
