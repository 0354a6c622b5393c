"""Tasks of the HRP PostgreSQL platform (`invoke --list`). Declarations only: the work is in
hrp_harness/ (orchestration) and in the SQL files."""

from __future__ import annotations

import sys

from invoke import Collection, task

from hrp_harness import HarnessError


def _fail(exc: HarnessError) -> None:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)


@task(help={"dsn": "superuser URL naming the target database (created when missing); "
                   "default: the embedded cluster",
            "sqlite": "SQLite file of the HRP app to load after the schema (see `invoke load`); "
                      "default: the generated test-size sample (data/sample)",
            "source_timezone": "time zone of the SQLite file's zone-less timestamps (default UTC)"})
def deploy(c, dsn=None, sqlite=None, source_timezone="UTC"):
    """Deploy: embedded cluster (or --dsn), apply deploy.plan, role passwords, load --sqlite (or the sample)."""
    from hrp_harness.deploy import app_dsn, embedded_cluster
    from hrp_harness.deploy import deploy as run_deploy
    from hrp_harness.passwords import secrets_file

    try:
        target = run_deploy(dsn)
        _load_into(target, sqlite, source_timezone=source_timezone)
    except HarnessError as exc:
        _fail(exc)
    if dsn is None:
        cluster = embedded_cluster()
        print(f"deployed. Connect with:\n  psql '{target}'\n"
              f"(as the OS user that ran deploy; the server listens on 127.0.0.1:{cluster.port})\n"
              f"The application over TCP (TLS 1.3, server certificate verified, SCRAM password "
              f"from HRP_APP_PASSWORD or {secrets_file()}):\n  psql '{app_dsn(cluster)}'")
    else:
        print("deployed.")


@task(help={"dsn": "superuser URL of the target database; default: the embedded cluster",
            "dry_run": "list what would run, run nothing"})
def apply(c, dsn=None, dry_run=False):
    """Apply what is pending of deploy.plan (versioned once, repeatable when changed)."""
    from hrp_harness.apply import apply as run_apply
    from hrp_harness.deploy import DATABASE, embedded_cluster

    try:
        run_apply(dsn or embedded_cluster().dsn(DATABASE), dry_run=dry_run)
    except HarnessError as exc:
        _fail(exc)


@task(help={"dsn": "superuser URL of a deployed database; default: the embedded cluster"})
def verify(c, dsn=None):
    """Run the pgTAP suite (tests/pgtap) with pg_prove against a deployed database."""
    from hrp_harness.deploy import DATABASE, embedded_cluster
    from hrp_harness.pgtap import PGTAP_DIR
    from hrp_harness.psql import libpq_env

    try:
        env = libpq_env(dsn or embedded_cluster().dsn(DATABASE))
    except HarnessError as exc:
        _fail(exc)
    result = c.run(f"pg_prove --recurse --ext .sql {_quote(str(PGTAP_DIR))}", env=env, warn=True)
    sys.exit(result.exited)


@task
def lint(c):
    """sqlfluff (postgres dialect, .sqlfluff) over every SQL file of the project."""
    from hrp_harness.lint import lint_argv
    from hrp_harness.paths import REPO

    with c.cd(str(REPO)):  # sqlfluff reads nested .sqlfluff files relative to the cwd
        result = c.run(" ".join(_quote(arg) for arg in lint_argv()), warn=True)
    sys.exit(result.exited)


@task(help={"k": "only tests matching this pytest -k expression"})
def test(c, k=None):
    """Run the whole test suite (pytest: pgTAP files, lint, harness integration tests)."""
    select = f" -k {_quote(k)}" if k else ""
    result = c.run(f"{_quote(sys.executable)} -m pytest{select}", warn=True, pty=False)
    sys.exit(result.exited)


@task
def status(c):
    """Show whether the embedded cluster runs, where, and what is applied."""
    from hrp_harness.deploy import status_lines

    print("\n".join(status_lines()))


@task
def start(c):
    """Start the embedded cluster (after `invoke stop`)."""
    from hrp_harness.deploy import embedded_cluster

    cluster = embedded_cluster()
    try:
        cluster.start()
    except HarnessError as exc:
        _fail(exc)
    print(f"started on 127.0.0.1:{cluster.port}")


@task
def stop(c):
    """Stop the embedded cluster (by its data directory)."""
    from hrp_harness.deploy import embedded_cluster

    cluster = embedded_cluster()
    cluster.stop()
    print("stopped" if cluster.initialized else "no embedded cluster")


@task(name="install")
def conf_install(c):
    """Install conf/ into the embedded cluster's conf.d, then reload or restart as needed."""
    from hrp_harness.deploy import start_embedded

    try:
        start_embedded()
    except HarnessError as exc:
        _fail(exc)


# -- issue 3: SQLite -> PostgreSQL migration -------------------------------------------------

def _load_into(target, sqlite=None, **options):
    from hrp_harness import migrate, sample
    from hrp_harness.paths import state_dir

    if sqlite is None:
        sqlite = state_dir() / "sample-test-seed1.sqlite"
        if not sqlite.exists():
            print(f"generating the test-size sample {sqlite}")
            sample.generate(sqlite, "test", seed=1)
    return migrate.load(sqlite, target, **options)


@task(help={"sqlite": "the HRP app's SQLite file (the spec's SQLite schema)",
            "dsn": "URL of the deployed target database; default: the embedded cluster's hrp_database",
            "incremental": "bring an already loaded target up to date (new, changed, deleted rows)",
            "max_quarantine": "abort and roll back when more than N rows would be quarantined",
            "source_timezone": "time zone of the SQLite file's zone-less timestamps (default UTC)",
            "report": "JSON report path (default reports/migration-run-<id>.json)"})
def load(c, sqlite, dsn=None, incremental=False, max_quarantine=None, source_timezone="UTC", report=None):
    """Load a SQLite file into the schema: preflight, pgloader staging, SQL transform, quarantine, report."""
    from hrp_harness import migrate
    from hrp_harness.deploy import DATABASE, embedded_cluster

    try:
        migrate.load(sqlite, dsn or embedded_cluster().dsn(DATABASE), incremental=incremental,
                     max_quarantine=None if max_quarantine is None else int(max_quarantine),
                     source_timezone=source_timezone, report_path=report)
    except HarnessError as exc:
        _fail(exc)


@task(help={"out": "SQLite file to write", "size": "test (spec's test size) or production",
            "seed": "seed of the deterministic generator (default 1)"})
def sample(c, out, size="test", seed=1):
    """Generate a deterministic sample SQLite database of the HRP app (data/sample/generate.sql)."""
    from hrp_harness import sample as gen

    path = gen.generate(out, size, int(seed))
    print(f"wrote {path} ({size}, seed {seed})")


@task(name="migration", help={"size": "production (default) or test", "seed": "generator seed"})
def bench_migration(c, size="production", seed=1):
    """Benchmark: full migration vs pgloader alone vs plain COPY, side by side; last line JSON."""
    from hrp_harness.bench_migration import run

    try:
        run(size=size, seed=int(seed))
    except HarnessError as exc:
        _fail(exc)


@task(help={"to": "superuser URL of the database to copy into (created when missing; must be empty)",
            "from_": "superuser URL of the source database; default: the embedded hrp_database"})
def anonymize(c, to, from_=None):
    """Copy the database with PII replaced (usernames, emails, hashes, names, API keys) for non-production."""
    from hrp_harness.anonymize import anonymize as run_anonymize

    try:
        counts = run_anonymize(to, from_)
    except HarnessError as exc:
        _fail(exc)
    print(f"anonymised copy done: {sum(counts.values())} rows in {len(counts)} tables")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


ns = Collection(deploy, apply, verify, lint, test, status, start, stop, anonymize, load, sample)
ns.add_collection(Collection("conf", conf_install))
ns.add_collection(Collection("bench", bench_migration))
