"""invoke anonymize: a non-production copy with the PII replaced (the compliance section).

The target database is created when missing and deployed with deploy.plan (schema, roles, grants);
then, in one transaction on each side, every table of schema public is streamed with COPY from
its anonymising view hrp_anonymize.<table> on the source (views/anonymize.sql: the
replacement is SQL, on the source side, so the PII never reaches the target) into the target's
table. The source is read in one REPEATABLE READ, READ ONLY snapshot, so the copy is consistent.
The target loads with session_replication_role = replica (as pg_restore --disable-triggers
does): foreign keys hold because the snapshot was consistent. Row counts are compared before
the target commits.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from hrp_harness import HarnessError
from hrp_harness.platform.apply import apply
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.platform.deploy import embedded_cluster, ensure_database, parse_target


def _same_database(a: str, b: str) -> bool:
    one, two = conninfo_to_dict(a), conninfo_to_dict(b)
    keys = ("host", "port", "dbname")
    return all(str(one.get(k, "")) == str(two.get(k, "")) for k in keys)


def _connect(url: str, what: str, **kwargs) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise HarnessError(f"cannot connect to the {what} database: {str(exc).strip()}") from None


def tables_to_copy(source: psycopg.Connection) -> list[tuple[str, list[str]]]:
    """(table, columns) of every table of schema public, parents first; each must have a view."""
    rows = source.execute(
        """
        select c.relname, v.oid is not null,
               array(select a.attname from pg_attribute as a
                     where a.attrelid = coalesce(v.oid, c.oid) and a.attnum > 0
                       and not a.attisdropped order by a.attnum)
        from pg_class as c
        left join pg_class as v
               on v.relname = c.relname and v.relkind = 'v'
              and v.relnamespace = to_regnamespace('hrp_anonymize')
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
        order by (select count(*) from pg_constraint as f
                  where f.conrelid = c.oid and f.contype = 'f'), c.relname
        """).fetchall()
    if source.execute("select to_regnamespace('hrp_anonymize')").fetchone()[0] is None:
        raise HarnessError("the source database has no schema hrp_anonymize "
                           "(functions/anonymize.sql): run `invoke apply` on it first")
    missing = [name for name, has_view, _ in rows if not has_view]
    if missing:
        raise HarnessError(
            f"no anonymising view for table(s) {', '.join(missing)}: add hrp_anonymize.<table> to "
            "views/anonymize.sql (a table is never copied raw)")
    return [(name, list(columns)) for name, _, columns in rows]


def anonymize(to_url: str, from_url: str | None = None, echo=print) -> dict[str, int]:
    """Copy the source (default: the embedded hrp_database) to to_url with the PII replaced;
    returns the row count of each table."""
    try:
        return _anonymize(to_url, from_url, echo)
    except psycopg.Error as exc:
        raise HarnessError(f"anonymize failed, the target was rolled back: {exc}".strip()) from None


def _anonymize(to_url: str, from_url: str | None, echo) -> dict[str, int]:
    if from_url is None:
        cluster = embedded_cluster()
        if not cluster.running:
            raise HarnessError("the embedded cluster is not running: `invoke deploy` (or --from URL)")
        from_url = cluster.dsn(DATABASE)
    parse_target(to_url)
    if _same_database(to_url, from_url):
        raise HarnessError("--to names the source database itself: give another database")
    with _connect(from_url, "source", autocommit=True) as probe:
        tables = tables_to_copy(probe)
    ensure_database(to_url, echo)
    apply(to_url, echo=echo)
    counts: dict[str, int] = {}
    with _connect(from_url, "source") as source, _connect(to_url, "target") as target:
        source.execute("set transaction isolation level repeatable read, read only")
        for table, _ in tables:
            holds = target.execute(sql.SQL("select exists (select from public.{})").format(
                sql.Identifier(table))).fetchone()[0]
            if holds:
                raise HarnessError(f"the target database already holds data (table {table}): "
                                   "anonymize copies into an empty database only")
        target.execute("set local session_replication_role = replica")
        for table, columns in tables:
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            read = sql.SQL("copy (select {} from hrp_anonymize.{}) to stdout (format binary)").format(
                names, sql.Identifier(table))
            write = sql.SQL("copy public.{} ({}) from stdin (format binary)").format(
                sql.Identifier(table), names)
            with source.cursor().copy(read) as out, target.cursor().copy(write) as into:
                for block in out:
                    into.write(block)
            have = target.execute(sql.SQL("select count(*) from public.{}").format(
                sql.Identifier(table))).fetchone()[0]
            want = source.execute(sql.SQL("select count(*) from public.{}").format(
                sql.Identifier(table))).fetchone()[0]
            if have != want:
                raise HarnessError(f"{table}: copied {have} rows of {want}; the target rolled back")
            counts[table] = have
            echo(f"copied {table}: {have} rows")
        target.execute("select hrp_anonymize.reset_sequences()")
    return counts
