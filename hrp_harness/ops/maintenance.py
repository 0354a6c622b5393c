"""Routine maintenance (issue 15), orchestration only: the jobs are SQL (functions/maintenance_*.sql),
their schedule is data (schema/0021_maintenance_schedule.sql), pg_cron runs them.

- schedule_jobs: deploy's last step: the schedule into pg_cron (data/maintenance/schedule_in_cron.sql
  in the cron database), or a notice when the server has no pg_cron (never a failed deploy);
- run_job: `invoke maintenance.run JOB`: a job's command, now, in its database;
- report / window: the latest findings; what runs when (pg_cron jobs, systemd timers, the window);
- repack: `invoke maintenance.repack`: pg_repack of one table, or of what is bloated;
- check_backups: the daily backup verification a systemd timer runs (`invoke backup.check`).
Every input is checked before anything changes; errors are one HarnessError line.
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hrp_harness import HarnessError
from hrp_harness.platform.paths import CONF, REPO, pgbin
from hrp_harness.platform.psql import libpq_env, run_file

CRON_SYNC_SQL = REPO / "data" / "maintenance" / "schedule_in_cron.sql"
SYSTEMD_DIR = CONF / "systemd"
#: The spec's "Scheduled Maintenance": monthly, Sunday 02:00-06:00 (here: the month's first Sunday,
#: in UTC like every pg_cron schedule of pg_cron 1.4).
WINDOW = "the first Sunday of each month, 02:00-06:00 UTC"
#: pg_repack's defaults for `maintenance.repack` without --table (hrp_maintenance.bloat thresholds).
REPACK_MIN_PERCENT = 20
REPACK_MIN_BYTES = 1024 * 1024
#: How long pg_repack may wait for a lock before it gives up (it never cancels the app's sessions).
REPACK_WAIT_TIMEOUT_S = 60
#: The monitoring issue's alert threshold for the newest backup's age.
BACKUP_MAX_AGE_HOURS = 26


def _connect(dsn: str, **kwargs) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        params = conninfo_to_dict(dsn)
        where = f"{params.get('host', 'localhost')}:{params.get('port', '5432')}"
        raise HarnessError(f"cannot connect to PostgreSQL at {where}: {' '.join(str(exc).split())}") from None


def _deployed(conn: psycopg.Connection, dbname: str) -> None:
    if conn.execute("select to_regclass('hrp_maintenance.schedule')").fetchone()[0] is None:
        raise HarnessError(f"database {dbname!r} has no schema hrp_maintenance: run `invoke deploy` "
                           "(or `invoke apply`) first")


# -- scheduling ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CronServer:
    """Where pg_cron keeps its jobs on a server, if it runs there."""

    database: str | None  # cron.database_name, None when pg_cron is not loaded
    reason: str = ""      # why not, in words

    @property
    def available(self) -> bool:
        return self.database is not None


def cron_server(conn: psycopg.Connection) -> CronServer:
    preloaded, cron_db = conn.execute(
        "select 'pg_cron' = any(string_to_array(replace(current_setting('shared_preload_libraries'),"
        " ' ', ''), ',')), current_setting('cron.database_name', true)").fetchone()
    if not preloaded or not cron_db:
        return CronServer(None, "pg_cron is not in shared_preload_libraries of this server")
    if not conn.execute("select 1 from pg_database where datname = %s", (cron_db,)).fetchone():
        return CronServer(None, f"cron.database_name names the database {cron_db!r}, which does not exist")
    return CronServer(cron_db)


def _has_cron_tables(conn: psycopg.Connection) -> bool:
    """pg_cron is loaded on the server, but is its extension created (by a deploy) yet?"""
    return conn.execute("select to_regclass('cron.job') is not null").fetchone()[0]


@dataclass
class Scheduled:
    cron_database: str | None
    jobs: list[tuple[str, str, bool]] = field(default_factory=list)  # jobname, schedule, active
    notice: str = ""


def schedule_jobs(target: str, echo=print) -> Scheduled:
    """Put the target database's schedule (hrp_maintenance.schedule) into pg_cron as jobs
    `<job>@<database>` (cron.schedule_in_database from the cron database); unschedule the jobs of
    that database the schedule no longer lists. Without pg_cron on the server: a notice, no error."""
    with _connect(target, autocommit=True) as conn:
        dbname = conn.execute("select current_database()").fetchone()[0]
        _deployed(conn, dbname)
        missing = conn.execute("select hrp_maintenance.ensure_extensions()").fetchone()[0]
        jobs = conn.execute("select hrp_maintenance.cron_jobs()").fetchone()[0]
        server = cron_server(conn)
    if missing:
        echo(f"maintenance: not available on this server: {', '.join(missing)} (the jobs skip the "
             "parts that need them; see `invoke maintenance.report`)")
    if not server.available:
        notice = (f"maintenance jobs NOT scheduled: {server.reason}. A DBA adds pg_cron to "
                  "shared_preload_libraries with cron.database_name and cron.use_background_workers "
                  "(conf/base.conf), restarts, and runs deploy again; until then run the jobs with "
                  "`invoke maintenance.run JOB`")
        echo(notice)
        return Scheduled(None, notice=notice)
    too_long = [job["jobname"] for job in jobs if len(job["jobname"].encode()) > 63]
    if too_long:
        notice = (f"maintenance jobs NOT scheduled: pg_cron job names hold at most 63 bytes and "
                  f"{too_long[0]!r} is longer (a shorter database name fits)")
        echo(notice)
        return Scheduled(None, notice=notice)
    cron_dsn = make_conninfo(target, dbname=server.database)
    run_file(cron_dsn, CRON_SYNC_SQL, variables={"database": dbname, "jobs": json.dumps(jobs)})
    with _connect(cron_dsn) as conn:
        rows = conn.execute("select jobname, schedule, active from cron.job where database = %s and "
                            "username = current_user order by jobname", (dbname,)).fetchall()
    echo(f"maintenance: {len(rows)} job(s) of {dbname} in pg_cron (database {server.database}, "
         f"UTC): " + ", ".join(f"{name} '{when}'" + ("" if active else " (paused)")
                               for name, when, active in rows))
    return Scheduled(server.database, rows)


# -- running a job now --------------------------------------------------------------------------

@dataclass(frozen=True)
class JobRun:
    jobname: str
    run_id: int | None
    seconds: float
    details: dict
    findings: list[tuple]


def _resolve_job(target: str, job: str) -> tuple[str, str, str]:
    """(jobname, database, command) of JOB: its name in cron.job (`daily_vacuum_analyze@hrp_database`)
    or, in the target database, its name in the schedule (`daily_vacuum_analyze`)."""
    with _connect(target) as conn:
        dbname = conn.execute("select current_database()").fetchone()[0]
        _deployed(conn, dbname)
        server = cron_server(conn)
        schedule = dict(conn.execute("select job_name, command from hrp_maintenance.schedule").fetchall())
    short = job.removesuffix(f"@{dbname}")
    if server.available:
        with _connect(make_conninfo(target, dbname=server.database)) as conn:
            found = _has_cron_tables(conn) and conn.execute(
                "select jobname, database, command from cron.job where jobname = %s and database = %s "
                "and username = current_user", (f"{short}@{dbname}", dbname)).fetchone()
        if found:
            return found
    if short in schedule and "@" not in short:
        return f"{short}@{dbname}", dbname, schedule[short]
    known = ", ".join(f"{name}@{dbname}" for name in sorted(schedule)) or "none"
    raise HarnessError(f"unknown maintenance job {job!r} in {dbname}: the jobs are {known}")


def run_job(target: str, job: str) -> JobRun:
    """`invoke maintenance.run JOB`: the job's command, as pg_cron would run it, now (one
    transaction); the run it recorded and its findings. A failing job raises (nothing recorded)."""
    jobname, dbname, command = _resolve_job(target, job)
    started = time.monotonic()
    with _connect(make_conninfo(target, dbname=dbname)) as conn:
        conn.execute("set application_name = 'hrp maintenance.run'")
        result = conn.execute(command).fetchone()
    seconds = time.monotonic() - started
    run_id = result[0] if result and isinstance(result[0], int) else None
    details, findings = {}, []
    if run_id is not None:
        with _connect(make_conninfo(target, dbname=dbname)) as conn:
            row = conn.execute("select details from hrp_maintenance.runs where run_id = %s",
                               (run_id,)).fetchone()
            details = row[0] if row else {}
            findings = conn.execute(
                "select found_at, kind, object, figures from hrp_maintenance.findings where run_id = %s"
                " order by finding_id", (run_id,)).fetchall()
    return JobRun(jobname, run_id, seconds, details, findings)


# -- report and window --------------------------------------------------------------------------

#: The figures a reader looks at first, in this order; the others follow.
FIRST_FIGURES = ("bytes", "size_bytes", "bloat_bytes", "bloat_percent", "growth_bytes_per_day",
                 "used_percent", "days_to_warning", "days_to_critical", "calls", "total_ms", "mean_ms",
                 "max_ms", "done", "reason", "seconds")


def figures_text(figures: dict, width: int = 110) -> str:
    """A finding's figures on one line: key=value, the non-null ones, query text last."""
    keys = [k for k in FIRST_FIGURES if k in figures] + [k for k in figures if k not in FIRST_FIGURES]
    parts = [f"{key}={figures[key]}" for key in keys if figures[key] is not None and key != "query"]
    text = ", ".join(parts)
    if figures.get("query"):
        text += f", query={' '.join(str(figures['query']).split())}"
    return text if len(text) <= width else text[: width - 1] + "…"


def table_lines(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    cells = [tuple(str(c) for c in header)] + [tuple("" if c is None else str(c) for c in r) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for number, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def report(target: str, kind: str | None = None) -> list[str]:
    """`invoke maintenance.report`: the findings of each job's latest finished run, as a table."""
    with _connect(target) as conn:
        dbname = conn.execute("select current_database()").fetchone()[0]
        _deployed(conn, dbname)
        kinds = [k for (k,) in conn.execute(
            "select distinct kind from hrp_maintenance.findings order by 1")]
        if kind is not None and kind not in kinds:
            raise HarnessError(f"no findings of kind {kind!r} in {dbname}; kinds found: "
                               f"{', '.join(kinds) or 'none (no job has run yet)'}")
        rows = conn.execute(
            "select job, run_id, to_char(found_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC',"
            " kind, object, figures from hrp_maintenance.latest_findings"
            " where %(kind)s::text is null or kind = %(kind)s"
            " order by job, kind, (figures ->> 'bloat_bytes')::numeric desc nulls last,"
            " (figures ->> 'total_ms')::numeric desc nulls last, object", {"kind": kind}).fetchall()
    if not rows:
        return [f"no findings yet in {dbname}: no maintenance job has finished a run "
                "(`invoke maintenance.run JOB`)"]
    return table_lines(("job", "run", "time", "kind", "object", "figures"),
                       [(job, run, at, k, obj, figures_text(fig)) for job, run, at, k, obj, fig in rows])


@dataclass(frozen=True)
class Timer:
    unit: str
    on_calendar: str
    description: str
    command: str

    def next_elapse(self) -> str:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            return ""
        done = subprocess.run([analyze, "calendar", self.on_calendar], capture_output=True, text=True)
        found = dict(line.strip().split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
        return found.get("(in UTC)", found.get("Next elapse", ""))


def timers(directory: Path = SYSTEMD_DIR) -> list[Timer]:
    """The systemd timer/service pairs of conf/systemd: schedule, what and the command run."""
    found = []
    for timer_file in sorted(directory.glob("*.timer")):
        timer = configparser.ConfigParser(interpolation=None, strict=False)
        timer.read(timer_file)
        service = configparser.ConfigParser(interpolation=None, strict=False)
        service.read(timer_file.with_suffix(".service"))
        found.append(Timer(timer_file.name, timer["Timer"]["OnCalendar"],
                           timer["Unit"]["Description"], service["Service"]["ExecStart"]))
    return found


def first_sundays(after: dt.date, count: int = 2) -> list[dt.date]:
    """The next `count` first Sundays of a month on or after `after` (the spec's window days)."""
    days, month = [], dt.date(after.year, after.month, 1)
    while len(days) < count:
        sunday = month + dt.timedelta(days=(6 - month.weekday()) % 7)
        if sunday >= after:
            days.append(sunday)
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return days


def window(target: str) -> list[str]:
    """`invoke maintenance.window`: what runs when (UTC): the pg_cron jobs with their last run, the
    systemd timers with their next run, and the spec's monthly window for the heavy ones."""
    with _connect(target) as conn:
        dbname = conn.execute("select current_database()").fetchone()[0]
        _deployed(conn, dbname)
        schedule = conn.execute(
            "select job_name, schedule, description from hrp_maintenance.schedule order by job_name").fetchall()
        server = cron_server(conn)
    scheduled = {}
    if server.available:
        with _connect(make_conninfo(target, dbname=server.database)) as conn:
            if not _has_cron_tables(conn):
                server = CronServer(None, f"the pg_cron extension is not created in {server.database} "
                                          "yet (deploy creates it)")
    if server.available:
        with _connect(make_conninfo(target, dbname=server.database)) as conn:
            for name, when, active, status, end in conn.execute(
                    "select j.jobname, j.schedule, j.active, d.status,"
                    " to_char(d.end_time at time zone 'UTC', 'YYYY-MM-DD HH24:MI')"
                    " from cron.job as j left join lateral (select status, end_time"
                    " from cron.job_run_details as r where r.jobid = j.jobid"
                    " order by r.runid desc limit 1) as d on true"
                    " where j.database = %s and j.username = current_user", (dbname,)):
                scheduled[name] = (when, active, f"{status} {end}" if status else "never run")
    lines = [f"pg_cron jobs of {dbname} (UTC; "
             + (f"cron database {server.database})" if server.available else
                f"NOT scheduled: {server.reason})")]
    rows = []
    for name, when, description in schedule:
        jobname = f"{name}@{dbname}"
        cron_when, active, last = scheduled.get(jobname, (None, None, "not in pg_cron"))
        state = "" if active in (True, None) else " (paused)"
        rows.append((jobname, (cron_when or when) + state, last, description))
    lines += ["  " + line for line in table_lines(("job", "schedule", "last run", "what"), rows)]
    lines.append("")
    lines.append("systemd timers (conf/systemd/, installed by a DBA: docs/maintenance.md)")
    lines += ["  " + line for line in table_lines(
        ("timer", "OnCalendar", "next", "what"),
        [(t.unit, t.on_calendar, t.next_elapse(), t.description) for t in timers()])]
    days = ", ".join(day.isoformat() for day in first_sundays(dt.datetime.now(dt.timezone.utc).date()))
    heavy = [t.unit for t in timers() if "Sun *-*-01..07" in t.on_calendar]
    lines.append("")
    lines.append(f"monthly maintenance window (the spec's Sunday 02:00-06:00): {WINDOW}; next: {days}."
                 f" Heavy work in it: {', '.join(heavy) or 'none'}")
    return lines


# -- pg_repack ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Repacked:
    name: str
    kind: str  # table or index
    bytes_before: int
    bytes_after: int
    seconds: float


def _repack_targets(conn: psycopg.Connection, table: str | None, dbname: str) -> list[tuple[str, str]]:
    """(kind, name) to rebuild: --table's table (checked: it exists, has a key pg_repack can use), or
    the tables and indexes hrp_maintenance.bloat finds."""
    if table is not None:
        try:
            row = conn.execute(
                "select c.oid::regclass::text, c.relkind,"
                " exists (select 1 from pg_index as i where i.indrelid = c.oid and i.indisvalid and"
                "   (i.indisprimary or (i.indisunique and i.indpred is null and i.indexprs is null"
                "    and not exists (select 1 from unnest(i.indkey) as k (attnum)"
                "      join pg_attribute as a on a.attrelid = c.oid and a.attnum = k.attnum"
                "      where not a.attnotnull))))"
                " from pg_class as c where c.oid = to_regclass(%s)", (table,)).fetchone()
        except psycopg.Error as exc:  # an unparsable name
            raise HarnessError(f"--table {table!r}: {exc.diag.message_primary}") from None
        if row is None:
            raise HarnessError(f"--table {table!r}: no such table in {dbname}")
        name, relkind, keyed = row
        if relkind not in ("r", "m"):
            raise HarnessError(f"--table {table!r}: {name} is not a plain table (pg_repack rebuilds "
                               "tables and indexes; a partitioned table is repacked partition by partition)")
        if not keyed:
            raise HarnessError(f"--table {table!r}: pg_repack needs a primary key or a unique index on "
                               f"NOT NULL columns, and {name} has neither")
        return [("table", name)]
    bloated = conn.execute("select object_name::text, object_kind,"
                           " (select indrelid::regclass::text from pg_index where indexrelid = object_name)"
                           " from hrp_maintenance.bloat(%s, %s)", (REPACK_MIN_PERCENT, REPACK_MIN_BYTES)).fetchall()
    tables = [name for name, kind, _ in bloated if kind == "table"]
    indexes = [name for name, kind, owner in bloated if kind == "index" and owner not in tables]
    return [("table", name) for name in tables] + [("index", name) for name in indexes]


def repack(target: str, table: str | None = None, echo=print,
           wait_timeout: int = REPACK_WAIT_TIMEOUT_S) -> list[Repacked]:
    """`invoke maintenance.repack [--table T]`: rebuild T (or every table and index hrp_maintenance.bloat
    finds above 20 % and 1 MB) online with pg_repack: reads and writes go on; pg_repack takes an
    ACCESS EXCLUSIVE lock only for moments at the start and the swap, waits at most wait_timeout
    seconds for it and then gives up, never cancelling the app's sessions (--no-kill-backend).
    Each rebuild is a `repacked` finding of a `repack` run."""
    binary = pgbin("pg_repack")
    if not Path(binary).exists():
        raise HarnessError(f"{binary} is missing: `./hrp setup` installs postgresql-15-repack")
    with _connect(target, autocommit=True) as conn:
        dbname = conn.execute("select current_database()").fetchone()[0]
        _deployed(conn, dbname)
        if not conn.execute("select 1 from pg_extension where extname = 'pg_repack'").fetchone():
            raise HarnessError(f"the pg_repack extension is not installed in {dbname}: the server needs "
                               "postgresql-15-repack, then `invoke deploy` creates it")
        objects = _repack_targets(conn, table, dbname)
        if not objects:
            echo(f"nothing to repack in {dbname}: no table or index has {REPACK_MIN_PERCENT} % and "
                 f"{REPACK_MIN_BYTES // 1024 // 1024} MB reclaimable")
            return []
        run_id = conn.execute("select hrp_maintenance.start_run('repack', %s)",
                              (json.dumps({"table": table, "objects": len(objects)}),)).fetchone()[0]
        env = {**libpq_env(target)}
        done: list[Repacked] = []
        for kind, name in objects:
            before = _size(conn, kind, name)
            argv = [binary, "--dbname", dbname, "--no-kill-backend", f"--wait-timeout={wait_timeout}",
                    "--elevel=WARNING"]
            argv += ["--no-order", "--table", name] if kind == "table" else ["--index", name]
            echo(f"repacking {kind} {name} ({before / 2**20:.1f} MB)")
            started = time.monotonic()
            proc = subprocess.run(argv, env={**_base_env(), **env}, capture_output=True, text=True)
            seconds = time.monotonic() - started
            if proc.returncode != 0:
                finished = ", ".join(d.name for d in done) or "none"
                raise HarnessError(f"pg_repack of {kind} {name} failed (exit {proc.returncode}; the {kind} "
                                   f"is unchanged, objects repacked before it: {finished}): "
                                   f"{(proc.stderr or proc.stdout).strip()}")
            after = _size(conn, kind, name)
            done.append(Repacked(name, kind, before, after, round(seconds, 2)))
            conn.execute("select hrp_maintenance.add_finding(%s, 'repacked', %s, %s)",
                         (run_id, name, json.dumps({"kind": kind, "bytes_before": before,
                                                    "bytes_after": after, "seconds": round(seconds, 2)})))
        conn.execute("select hrp_maintenance.finish_run(%s, %s)",
                     (run_id, json.dumps({"repacked": len(done),
                                          "bytes_freed": sum(d.bytes_before - d.bytes_after for d in done)})))
    return done


def _size(conn: psycopg.Connection, kind: str, name: str) -> int:
    """A table's bytes with its indexes and TOAST, or an index's bytes."""
    return conn.execute("select case when %s = 'table' then pg_total_relation_size(%s::regclass)"
                        " else pg_relation_size(%s::regclass) end", (kind, name, name)).fetchone()[0]


def _base_env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


# -- backups ------------------------------------------------------------------------------------

def preload_without_cron() -> str:
    """conf/base.conf's shared_preload_libraries less pg_cron, quoted: for servers that must run no
    job (restored copies)."""
    from hrp_harness.platform.conf import conf_settings

    [value] = [value for _, name, value in conf_settings(("base",)) if name == "shared_preload_libraries"]
    libraries = [lib for lib in value.strip("'").split(",") if lib.strip() != "pg_cron"]
    return "'" + ",".join(libraries) + "'"


def check_backups(repo, max_age_hours: float = BACKUP_MAX_AGE_HOURS) -> dict:
    """The daily backup verification (`invoke backup.check`, a systemd timer): WAL archiving works
    (pgbackrest check), the repository's backups and archive are intact (pgbackrest verify), and
    the newest backup finished less than max_age_hours ago. Raises naming what failed."""
    from hrp_harness.ha.backup import BackupError

    repo.check()
    backups = repo.info()["backup"]
    if not backups:
        raise BackupError(f"no backup in {repo.base / 'repo'}: run `invoke backup --type full`")
    newest = backups[-1]
    age_hours = (time.time() - newest["timestamp"]["stop"]) / 3600
    repo.run("verify")
    if age_hours > max_age_hours:
        raise BackupError(f"the newest backup {newest['label']} finished {age_hours:.1f} h ago, more "
                          f"than {max_age_hours} h: did the daily backup run?")
    return {"newest": newest["label"], "type": newest["type"], "age_hours": round(age_hours, 2),
            "backups": len(backups), "verify": "ok", "archive": "ok"}
