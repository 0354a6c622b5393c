"""Tasks of the HRP PostgreSQL platform (`invoke --list`). Declarations only: the work is in
hrp_harness/ (orchestration) and in the SQL files."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
from invoke import Collection, task

from hrp_harness import HarnessError
from hrp_harness.platform import inputs


def _report_errors(kind, exc, traceback) -> None:
    """A harness or database error ends a task with one clear line (what and where) and its exit
    status (HarnessError.exit_status; README "Exit status"). Anything else is a bug: one line
    naming it and the file that holds its traceback."""
    import os

    if issubclass(kind, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        status = 130
    elif issubclass(kind, BrokenPipeError):  # the reader of our output went away (| head)
        os._exit(141)
    elif issubclass(kind, (HarnessError, psycopg.Error)):
        print(f"error: {str(exc).strip()}", file=sys.stderr)
        status = getattr(exc, "exit_status", 1)
    else:
        status = 1
        try:
            from hrp_harness.platform.paths import write_crash_log

            log = write_crash_log(kind, exc, traceback)
            print(f"error: unexpected {kind.__name__}: {str(exc).strip()} (a bug in the harness; "
                  f"the traceback is in {log})", file=sys.stderr)
        except Exception:  # noqa: BLE001 - the crash log itself failed: show the traceback here
            sys.__excepthook__(kind, exc, traceback)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # the interpreter would exit 1 whatever the hook says


sys.excepthook = _report_errors

ns = Collection()


def declare(collection: str | None = None, **options):
    """@task, and its one registration: top level (`invoke NAME`) or in COLLECTION
    (`invoke COLLECTION.NAME`); options go to invoke's @task (name, help, positional, ...)."""
    def register(body):
        made = task(**options)(body)
        if collection is None:
            ns.add_task(made)
        else:
            if collection not in ns.collections:
                ns.add_collection(Collection(collection))
            ns.collections[collection].add_task(made)
        return made
    return register


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# -- The platform: the embedded cluster, deploy, apply, pgTAP, lint, tests (hrp_harness/platform/) --


@declare(help={"dsn": "superuser URL naming the target database (created when missing); "
                   "default: the embedded cluster",
            "sqlite": "SQLite file of the HRP app to load after the schema (an explicit load: see "
                      "`invoke load`); default: the generated test-size sample, and only into a database "
                      "that holds no data and no load wrote",
            "source_timezone": "time zone of the SQLite file's zone-less timestamps (default UTC)",
            "mapping": "mapping file for a source whose tables or columns differ from the spec's (TOML, "
                       "README \"Mapping file\"; e.g. data/mappings/hrp-app-2025.toml)"})
def deploy(c, dsn=None, sqlite=None, source_timezone="UTC", mapping=None):
    """Deploy: cluster (or --dsn), deploy.plan, passwords; load --sqlite, or the sample if no data.

    Without --sqlite the generated sample is loaded only into a database that holds no rows and no
    load ever wrote; a database holding data keeps every row (deploy then applies what is pending
    and says it left the data alone)."""
    from hrp_harness.platform.deploy import app_dsn, deploy_and_load, embedded_cluster, pooled_dsn
    from hrp_harness.platform.passwords import secrets_file

    target = deploy_and_load(dsn, sqlite, source_timezone, mapping=mapping)
    if dsn is None:
        cluster = embedded_cluster()
        print(f"deployed. Connect with:\n  psql '{target}'\n"
              f"(as the OS user that ran deploy; the server listens on 127.0.0.1:{cluster.port})\n"
              f"The application, through PgBouncer (session pooling; TLS 1.3, certificate verified, "
              f"SCRAM password from HRP_APP_PASSWORD or {secrets_file()}):\n  psql '{pooled_dsn(cluster)}'\n"
              f"Transaction pooling, for clients without prepared statements (psycopg "
              f"prepare_threshold=None):\n  psql '{pooled_dsn(cluster, transaction_pooling=True)}'\n"
              f"The application over TCP straight to PostgreSQL (TLS 1.3, server certificate verified, "
              f"SCRAM password as above):\n  psql '{app_dsn(cluster)}'")
    else:
        print("deployed.")


@declare(help={"dsn": "superuser URL of the target database; default: the embedded cluster",
            "dry_run": "list what would run, run nothing"})
def apply(c, dsn=None, dry_run=False):
    """Apply what is pending of deploy.plan (versioned once, repeatable when changed)."""
    from hrp_harness.platform.apply import apply as run_apply
    from hrp_harness.platform.deploy import DATABASE, embedded_cluster

    run_apply(dsn or embedded_cluster().dsn(DATABASE), dry_run=dry_run)


@declare(help={"dsn": "superuser URL of a deployed database; default: the embedded cluster"})
def verify(c, dsn=None):
    """Run the pgTAP suite (tests/pgtap) with pg_prove against a deployed database."""
    from hrp_harness.platform.deploy import DATABASE, embedded_cluster
    from hrp_harness.platform.pgtap import PGTAP_DIR
    from hrp_harness.platform.psql import libpq_env

    env = libpq_env(dsn or embedded_cluster().dsn(DATABASE))
    result = c.run(f"pg_prove --recurse --ext .sql {_quote(str(PGTAP_DIR))}", env=env, warn=True)
    sys.exit(result.exited)


@declare()
def lint(c):
    """sqlfluff (postgres dialect, .sqlfluff) over every SQL file of the project."""
    from hrp_harness.platform.lint import lint_argv
    from hrp_harness.platform.paths import REPO

    with c.cd(str(REPO)):  # sqlfluff reads nested .sqlfluff files relative to the cwd
        result = c.run(" ".join(_quote(arg) for arg in lint_argv()), warn=True)
    sys.exit(result.exited)


@declare(help={"k": "only tests matching this pytest -k expression",
            "slow": "run only the `slow` tests: every chaos fault x 3 rounds at production timings"})
def test(c, k=None, slow=False):
    """Run the test suite (pytest: pgTAP files, lint, harness integration tests; `slow` skipped,
    --slow runs only those)."""
    select = f" -k {_quote(k)}" if k else ""
    marker = " -m slow -s" if slow else ""
    result = c.run(f"{_quote(sys.executable)} -m pytest{marker}{select}", warn=True, pty=False)
    sys.exit(result.exited)


@declare()
def status(c):
    """Show whether the embedded cluster runs, where, and what is applied."""
    from hrp_harness.platform.deploy import status_lines

    print("\n".join(status_lines()))


@declare()
def start(c):
    """Start the embedded cluster and its PgBouncer (after `invoke stop`)."""
    from hrp_harness.platform.deploy import embedded_cluster, start_pooler

    cluster = embedded_cluster()
    cluster.start()
    pooler = start_pooler(cluster)
    print(f"started on 127.0.0.1:{cluster.port}, PgBouncer on 127.0.0.1:{pooler.port}")


@declare()
def stop(c):
    """Stop the embedded cluster's PgBouncer (by pid), then the cluster (by its data directory)."""
    from hrp_harness.platform.deploy import embedded_cluster
    from hrp_harness.platform.pgbouncer import PgBouncer

    cluster = embedded_cluster()
    PgBouncer(cluster).stop()
    cluster.stop()
    print("stopped" if cluster.initialized else "no embedded cluster")


@declare("conf", name="install")
def conf_install(c):
    """Install conf/ into the embedded cluster's conf.d, then reload or restart as needed."""
    from hrp_harness.platform.deploy import start_embedded

    start_embedded()


# -- SQLite -> PostgreSQL migration (hrp_harness/migration/) -------------------------------------

@declare(help={"sqlite": "the HRP app's SQLite file (the spec's SQLite schema, or any shape with --mapping)",
            "dsn": "URL of the deployed target database; default: the embedded cluster's hrp_database",
            "incremental": "bring an already loaded target up to date (new, changed, deleted rows)",
            "max_quarantine": "abort and roll back when more than N rows would be quarantined",
            "source_timezone": "time zone of the SQLite file's zone-less timestamps (default UTC)",
            "report": "JSON report path (default reports/migration-<database>-run-<id>.json)",
            "discard_target_changes": "load even though the target changed since the last load (rows "
                                      "the app wrote are overwritten or deleted)",
            "final": "the cutover load: the database is marked live with its commit and every later "
                     "load is refused",
            "mapping": "mapping file for a source whose tables or columns differ from the spec's (TOML, "
                       "README \"Mapping file\"; e.g. data/mappings/hrp-app-2025.toml)"})
def load(c, sqlite, dsn=None, incremental=False, max_quarantine=None, source_timezone="UTC", report=None,
         discard_target_changes=False, final=False, mapping=None):
    """Load a SQLite file into the schema: preflight, pgloader staging, SQL transform, quarantine, report."""
    from hrp_harness import migration
    from hrp_harness.platform.deploy import DATABASE, embedded_cluster

    migration.load(sqlite, dsn or embedded_cluster().dsn(DATABASE), incremental=incremental,
                 max_quarantine=max_quarantine, source_timezone=source_timezone, report_path=report,
                 discard_target_changes=discard_target_changes, final=final, mapping=mapping)


@declare(help={"dsn": "superuser URL of the loaded target database; default: the embedded cluster's "
                   "hrp_database"})
def cutover(c, dsn=None):
    """Mark the database live after its last load: the app owns the data, every later load is refused."""
    from hrp_harness.platform.deploy import DATABASE, embedded_cluster
    from hrp_harness.migration import mark_live

    run = mark_live(dsn or embedded_cluster().dsn(DATABASE))
    print(f"the database is live after load run {run}: every later load is refused")


@declare(help={"out": "SQLite file to write", "size": "test (spec's test size), production or 10x",
            "seed": "seed of the deterministic generator (default 1)",
            "shape": "spec (the spec's SQLite schema, default), sqlalchemy (its columns with SQLAlchemy's "
                     "declared types) or app (the app's 2025 schema: load it with --mapping "
                     "data/mappings/hrp-app-2025.toml)"})
def sample(c, out, size="test", seed=1, shape="spec"):
    """Generate a deterministic sample SQLite database of the HRP app (data/sample/)."""
    from hrp_harness.migration import sample as gen

    if size not in gen.SIZES or shape not in gen.SHAPES:
        raise HarnessError(f"--size is one of {', '.join(gen.SIZES)}, --shape one of {', '.join(gen.SHAPES)}")
    seed = inputs.non_negative_int(seed, "--seed")
    path = gen.generate(out, size, seed, shape=shape)
    print(f"wrote {path} ({size}, {shape} shape, seed {seed})")


# -- High availability: the Patroni cluster over etcd (hrp_harness/ha/) ----------------------------

def _json_out(data) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


@declare("cluster", name="up", help={"timings": "production (ttl 30, loop_wait 10, retry_timeout 10; default) "
                                  "or drill (20 / 1 / 3)"})
def cluster_up(c, timings="production"):
    """Start the local three-node Patroni cluster (node1, standby1 sync, standby2 reporting) over
    etcd, in STATE/ha on free loopback ports, and apply the schema to hrp_database; an existing
    cluster is brought back from whatever state it is in (stopped or frozen processes, stale
    keys, pause, a member that does not stream)."""
    from hrp_harness.ha.patroni import bring_up

    _json_out(bring_up(timings))


@declare("cluster", name="down", help={"wipe": "also delete STATE/ha (data, repository, secrets of the cluster)"})
def cluster_down(c, wipe=False):
    """Stop the Patroni cluster (replicas, then the leader, then etcd), by pid and data directory;
    stopped (frozen) processes are continued first."""
    from hrp_harness.ha.patroni import HaCluster

    HaCluster().down(wipe=wipe)
    print("stopped" + (" and wiped" if wipe else ""))


@declare("cluster", name="status")
def cluster_status(c):
    """Members of the Patroni cluster (role, state, timeline, lag, tags, pids), what is unhealthy,
    last line JSON; exit 1 unless healthy (one leader, a sync standby, every member streaming)."""
    from hrp_harness.ha.patroni import HaCluster, status_lines

    status = HaCluster().status()
    print("\n".join(status_lines(status)))
    sys.exit(0 if status["healthy"] else 1)


@declare("cluster", name="drill", help={"timings": "drill (default: ttl 20 / loop_wait 1 / retry_timeout 3) or "
                                     "production"})
def cluster_drill(c, timings="drill"):
    """Failover drill: write load, kill the primary's Patroni and postmaster, measure RTO and lost
    commits, rejoin the old primary with pg_rewind. Last line: one JSON object. Exit 1 if a target
    is missed."""
    from hrp_harness.ha.patroni import run_drill

    result, lines = run_drill(timings)
    print("\n".join(lines))
    sys.exit(0 if result["targets_met"] else 1)


@declare("cluster", name="chaos", help={"fault": "kill-primary, freeze-primary, freeze-postmaster, kill-sync-standby, "
                                   "stop-dcs or kill-dcs",
                          "rounds": "how many times (default 1)",
                          "timings": "production (default) or drill"})
def cluster_chaos(c, fault, rounds=1, timings="production"):
    """One fault under a recorded write load, ROUNDS times: acknowledged commits checked on the final
    primary, convergence required within a bound; a table, last line JSON. Exit 1 on a lost commit,
    no convergence, or a write outage over 120 s."""
    from hrp_harness.ha.chaos import passed, run_chaos

    summary = run_chaos(fault, int(rounds), timings)
    sys.exit(0 if passed(summary) else 1)


@declare("cluster", name="switchover", help={"candidate": "member to promote (default: the sync standby)"})
def cluster_switchover(c, candidate=None):
    """Planned change of primary (patronictl switchover), waiting until the cluster is healthy."""
    from hrp_harness.ha.patroni import HaCluster

    _json_out(HaCluster().switchover(candidate))


@declare("cluster", name="failover", help={"candidate": "member to promote (node1, standby1 or standby2)"})
def cluster_failover(c, candidate):
    """Manual failover to CANDIDATE (patronictl failover; also without a healthy leader), waiting
    until the cluster is healthy. A candidate that is not the sync standby may lack commits."""
    from hrp_harness.ha.patroni import HaCluster

    _json_out(HaCluster().failover(candidate))


@declare("cluster", name="member", positional=["action"],
      help={"name": "node1, standby1 or standby2", "action": "start, stop, restart or reinit"})
def cluster_member(c, name, action):
    """One member: start | stop | restart (PostgreSQL, through Patroni) | reinit (re-clone a replica
    from the leader); waits until it is done."""
    from hrp_harness.ha.patroni import HaCluster

    _json_out(HaCluster().member(name, action))


@declare("cluster", name="pause")
def cluster_pause(c):
    """Maintenance mode: Patroni stops failing over and leaves PostgreSQL alone (patronictl pause)."""
    from hrp_harness.ha.patroni import HaCluster

    _json_out(HaCluster().pause(True))


@declare("cluster", name="resume")
def cluster_resume(c):
    """End maintenance mode (patronictl resume)."""
    from hrp_harness.ha.patroni import HaCluster

    _json_out(HaCluster().pause(False))


# -- Backups and copies: pgBackRest and PITR (hrp_harness/ha/backup.py), encrypted pg_dump and
# -- anonymised copies (hrp_harness/ops/logical.py, anonymize.py) ---------------------------------

def _repository(ha: bool, need_running: bool = True):
    """The HA cluster's stanza, or the embedded cluster's, and a DSN of the source (None when it
    does not run). No task starts a stopped cluster: one that needs the server (need_running)
    fails saying it is stopped, the others work on the repository alone and say so."""
    if ha:
        from hrp_harness.ha.patroni import HaCluster

        cluster = HaCluster()
        if cluster.meta is None:
            raise HarnessError("no HA cluster (run `invoke cluster.up`)")
        running = cluster.etcd_pid() is not None and cluster.leader() is not None
        if not running and need_running:
            raise HarnessError("the HA cluster is stopped (no leader): `invoke cluster.up` first "
                               "(this task does not start it for you)")
        if not running:
            print("note: the HA cluster is stopped; using the repository alone", file=sys.stderr)
        return cluster.repository, cluster.dsn() if running else None
    from hrp_harness.ha.backup import embedded

    cluster, repo = embedded(need_running=need_running)
    if not cluster.running:
        print("note: the embedded cluster is stopped; using the repository alone", file=sys.stderr)
        return repo, None
    return repo, cluster.dsn()


_HA_HELP = "the Patroni cluster's stanza instead of the embedded cluster's"


@declare("backup", name="run", default=True, help={"type": "full, diff or incr", "ha": _HA_HELP})
def backup_run(c, type="full", ha=False):
    """Back up with pgBackRest into the encrypted repository (STATE/backup), then expire per the
    retention (full backups 30 days, WAL 7 full backups)."""
    repo, _ = _repository(ha)
    entry = repo.backup(type)
    print(f"{entry['type']} backup {entry['label']}: {entry['info']['size']} bytes, "
          f"{entry['info']['repository']['size']} in the repository")


@declare("backup", name="info", help={"ha": _HA_HELP})
def backup_info(c, ha=False):
    """The repository's backups and WAL archive range (pgbackrest info); never starts the cluster."""
    repo, _ = _repository(ha, need_running=False)
    print(repo.run("info").stdout)


@declare("backup", name="expire", help={"ha": _HA_HELP})
def backup_expire(c, ha=False):
    """Apply the retention now (a backup also does); never starts the cluster."""
    repo, _ = _repository(ha, need_running=False)
    repo.expire()


@declare("backup", name="verify", help={"ha": _HA_HELP, "database": "database(s) to compare; default hrp_database",
                           "keep": "keep the restored copy (stopped) for inspection"},
      iterable=["database"])
def backup_verify(c, ha=False, database=None, keep=False):
    """Weekly recovery test: restore the latest backup (+ archive) to a scratch directory, start it,
    compare per-table row counts and checksums with the source."""
    from hrp_harness.ha.backup import verify
    from hrp_harness.platform.deploy import DATABASE

    repo, dsn = _repository(ha)
    _json_out(verify(repo, dsn, database or [DATABASE], keep=keep))


@declare("backup", name="logical", help={"ha": "dump from the Patroni cluster's primary",
                            "database": "database to dump (default hrp_database)",
                            "keep_days": "delete dumps older than this (default 30)"})
def backup_logical(c, ha=False, database=None, keep_days=30):
    """Logical backup: pg_dump -Fc, encrypted (openssl aes-256-cbc), into STATE/logical; rotate."""
    from hrp_harness.ops import logical
    from hrp_harness.platform.deploy import DATABASE

    _, dsn = _repository(ha)
    path = logical.dump(dsn, database or DATABASE)
    deleted = logical.rotate(keep_days=int(keep_days))
    print(f"wrote {path}" + (f"; rotated out {len(deleted)} old dump(s)" if deleted else ""))


@declare("backup", name="logical-restore", help={"file": "a .pgdump.enc file", "dsn": "target database (empty)"})
def backup_logical_restore(c, file, dsn):
    """Decrypt a logical backup and pg_restore it into an empty database."""
    from hrp_harness.ops import logical

    logical.restore(file, dsn)
    print(f"restored {file}")


@declare(help={"target_time": "recover to this time, e.g. '2026-11-24 11:30:00+00' (default: end of "
                           "the archive)",
            "to": "new directory: the copy's data goes to TO/data, sockets to TO/run",
            "ha": _HA_HELP, "start": "start the copy on a free port and print how to connect"})
def restore(c, to, target_time=None, ha=False, start=False):
    """Point-in-time restore with pgBackRest into a new directory (PG 15 style: recovery.signal and
    recovery settings in postgresql.auto.conf; archive_mode off in the copy)."""
    import shlex

    from hrp_harness.ha.backup import check_restore_target, restore_copy
    from hrp_harness.platform.server_user import as_server_user

    check_restore_target(Path(to).resolve())  # before anything, the cluster included
    repo, dsn = _repository(ha, need_running=False)
    copy = restore_copy(repo, to, target_time=target_time, start=start, source_dsn=dsn)
    if copy is not None:
        print(f"started on 127.0.0.1:{copy.port}; connect: psql '{copy.dsn()}'\n"
              f"stop: {shlex.join(as_server_user(copy.pg_ctl('stop')))}")


@declare("backup", name="check", help={"ha": _HA_HELP, "max_age_hours": "the newest backup may be at most this old "
                                                            "(default 26, the backup alert's threshold)"})
def backup_check(c, ha=False, max_age_hours=26):
    """Daily backup verification (a systemd timer, conf/systemd): archiving works (pgbackrest
    check), the repository is intact (pgbackrest verify), the newest backup is recent enough."""
    from hrp_harness.ops.maintenance import check_backups

    repo, _ = _repository(ha)
    _json_out(check_backups(repo, float(max_age_hours)))


@declare(help={"to": "superuser URL of the database to copy into (created when missing; must be empty)",
            "from_": "superuser URL of the source database; default: the embedded hrp_database"})
def anonymize(c, to, from_=None):
    """Copy the database with PII replaced (usernames, emails, hashes, names, API keys) for non-production."""
    from hrp_harness.ops.anonymize import anonymize as run_anonymize

    counts = run_anonymize(to, from_)
    print(f"anonymised copy done: {sum(counts.values())} rows in {len(counts)} tables")


# -- Routine maintenance: pg_cron jobs, pg_repack, the schedule (hrp_harness/ops/maintenance.py)

_DSN_HELP = "superuser URL of the database; default: the embedded cluster's hrp_database"


def _maintenance_target(dsn):
    from hrp_harness.platform.deploy import DATABASE, embedded_cluster

    if dsn is not None:
        return dsn
    cluster = embedded_cluster()
    if not cluster.running:
        raise HarnessError("the embedded cluster is not running: `invoke start` (or `invoke deploy`) "
                           "first, or give --dsn")
    return cluster.dsn(DATABASE)


@declare("maintenance", name="run", help={"job": "the job's name in cron.job (daily_vacuum_analyze@hrp_database) or in "
                               "hrp_maintenance.schedule (daily_vacuum_analyze)", "dsn": _DSN_HELP})
def maintenance_run(c, job, dsn=None):
    """Run a maintenance job now, as pg_cron would (one transaction); print its run and findings."""
    from hrp_harness.ops.maintenance import figures_text, run_job, table_lines

    done = run_job(_maintenance_target(dsn), job)
    print(f"{done.jobname}: run {done.run_id} in {done.seconds:.2f} s: {figures_text(done.details, 400)}")
    if done.findings:
        print("\n".join(table_lines(("time", "kind", "object", "figures"),
                                    [(f"{at:%H:%M:%S}", kind, obj, figures_text(fig))
                                     for at, kind, obj, fig in done.findings])))


@declare("maintenance", name="report", help={"kind": "only findings of this kind (unused_index, table_bloat, "
                                   "slow_statement, disk_usage, ...)", "dsn": _DSN_HELP})
def maintenance_report(c, kind=None, dsn=None):
    """The findings of each maintenance job's latest run, as a table."""
    from hrp_harness.ops.maintenance import report

    print("\n".join(report(_maintenance_target(dsn), kind)))


@declare("maintenance", name="window", help={"dsn": _DSN_HELP})
def maintenance_window(c, dsn=None):
    """What runs when (UTC): pg_cron jobs, systemd timers, the spec's monthly window for heavy work."""
    from hrp_harness.ops.maintenance import window

    print("\n".join(window(_maintenance_target(dsn))))


@declare("maintenance", name="repack", help={"table": "the table to rebuild (default: every table and index with 20 % "
                                    "and 1 MB reclaimable)", "dsn": _DSN_HELP})
def maintenance_repack(c, table=None, dsn=None):
    """Rebuild bloated tables and indexes online with pg_repack (reads and writes go on)."""
    from hrp_harness.ops.maintenance import repack

    for done in repack(_maintenance_target(dsn), table):
        print(f"repacked {done.kind} {done.name}: {done.bytes_before / 2**20:.1f} MB -> "
              f"{done.bytes_after / 2**20:.1f} MB in {done.seconds:.1f} s")


# -- Monitoring and alerting (hrp_harness/ops/monitor.py, conf/monitoring/) --------------------

@declare("monitor", name="up", help={"ha": "watch the Patroni cluster (`invoke cluster.up`) instead of the embedded "
                             "one"})
def monitor_up(c, ha=False):
    """(Re)start the monitoring stack on free 127.0.0.1 ports: postgres_exporter (as hrp_monitor),
    node exporter, mtail, Patroni's /metrics (--ha), Prometheus with the alert rules, Alertmanager
    and the local webhook receiver. Last line: JSON with prometheus_url, alertmanager_url and
    exporter_url."""
    import json

    from hrp_harness.ops.monitor import bring_up

    urls = bring_up(ha=ha)
    print(f"console page: {urls['prometheus_url']}consoles/hrp-overview.html")
    print(json.dumps(urls))


@declare("monitor", name="down", help={"wipe": "also delete STATE/monitor (Prometheus's data, received alerts)"})
def monitor_down(c, wipe=False):
    """Stop the monitoring stack (each process by its pid)."""
    from hrp_harness.ops.monitor import Stack

    stack = Stack()
    if stack.meta() is None:
        print(f"no monitoring stack in {stack.base}")
        return
    stack.down(wipe=wipe)
    print("monitoring stopped" + (" and wiped" if wipe else ""))


@declare("monitor", name="status")
def monitor_status(c):
    """The stack's processes, Prometheus's targets and the alerts firing now."""
    from hrp_harness.ops.monitor import Stack

    print("\n".join(Stack().status()))


# -- Log management (hrp_harness/ops/logs.py, conf/log-retention.conf) -------------------------

@declare("report", name="slow-queries", help={"ha": "the Patroni members' logs instead of the embedded cluster's",
                                 "days": "how many days of log (default 7: the weekly report)",
                                 "out": "HTML file to write (default reports/slow-queries-<date>.html)"})
def report_slow_queries(c, ha=False, days=7, out=None):
    """The weekly slow-query report: pgbadger over the server logs of the last 7 days (statements
    slower than log_min_duration_statement = 1 s, lock waits, errors), as HTML."""
    from hrp_harness.ops.logs import log_dirs, slow_query_report

    path = slow_query_report(log_dirs(ha), out=out, days=int(days))
    print(f"wrote {path}")


@declare("logs", name="retain", help={"ha": "the Patroni members' logs instead of the embedded cluster's"})
def logs_retain(c, ha=False):
    """Apply conf/log-retention.conf (daily): copy the audit and performance entries of closed
    server logs into the archive (HRP_LOG_ARCHIVE_DIR or STATE/log-archive), then delete logs
    older than 90 days, audit archives older than 7 years, performance ones older than 1 year."""
    from hrp_harness.ops.logs import archive_dir, log_dirs, retain

    result = retain(log_dirs(ha))
    print(f"archived {len(result.archived)} file(s) into {archive_dir()}; deleted "
          f"{len(result.deleted_logs)} server log(s) and {len(result.deleted_archives)} expired "
          "archive(s) or report(s)")


# -- Benchmarks: each on throwaway clusters it creates (hrp_harness/bench/) -----------------

@declare("bench", name="migration", help={"size": "production (default), test, or 10x (5.6 M rows; also runs the "
                                       "production-size load in the same rounds: the 10x / 1x ratio)",
                               "seed": "generator seed",
                               "repeat": "rounds of every phase, medians reported (default 3)"})
def bench_migration(c, size="production", seed=1, repeat=3):
    """Benchmark: full migration vs pgloader alone vs plain COPY, side by side (medians); last line JSON."""
    from hrp_harness.bench.migration import run

    run(size=size, seed=int(seed), repeat=int(repeat))


@declare("bench", name="queries", help={"size": "production (default) or 10x (then the production size too, same run: "
                                     "each query's 10x / 1x ratio)",
                             "seconds": "how long the 50 concurrent users run per engine (default 10)",
                             "seed": "seed of the sample and of the query parameters"})
def bench_queries(c, size="production", seconds=10, seed=1):
    """Benchmark: the app's queries on SQLite and PostgreSQL (and through PgBouncer) side by side, via
    SQLAlchemy; latencies, inserts/s, 50 users; plans checked; last line JSON. Exit 1: a target missed."""
    from hrp_harness.bench.queries import run

    result = run(size=size, seconds=inputs.positive_number(seconds, "--seconds"),
                 seed=inputs.non_negative_int(seed, "--seed"))
    sys.exit(0 if result["postgres"]["targets_met"] else 1)


@declare("bench", name="load", help={"scenario": "load (50 clients), stress (clients stepped up to the knee), spike "
                                     "(10 -> 200 clients), endurance (default 10 min) or volume (10x size)",
                         "seconds": "length of a run / step (defaults: load 60, stress 15 a step, spike 20 "
                                    "a phase, volume 5 per query and size)",
                         "minutes": "endurance: how long (default 10)",
                         "seed": "seed of the sample"})
def bench_load(c, scenario="load", seconds=None, minutes=10, seed=1):
    """Load scenarios with pgbench running the app's queries (custom scripts); a table and a last JSON
    line. Exit 1: the scenario's target missed."""
    from hrp_harness.bench.load import run

    result = run(scenario, seconds=None if seconds is None else inputs.positive_number(seconds, "--seconds"),
                 minutes=inputs.positive_number(minutes, "--minutes"),
                 seed=inputs.non_negative_int(seed, "--seed"))
    sys.exit(0 if result["targets_met"] else 1)


@declare("bench", name="partitioning", help={"size": "production (default: the spec's 500,000 predictions) or 10x",
                                  "seed": "seed of the random query parameters"})
def bench_partitioning(c, size="production", seed=1):
    """Benchmark: predictions not partitioned vs by month (pg_partman) vs by race_id; last line JSON."""
    from hrp_harness.bench.partitioning import run

    run(size=size, seed=int(seed))
