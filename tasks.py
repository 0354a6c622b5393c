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
                   "default: the embedded cluster"})
def deploy(c, dsn=None):
    """Deploy: start the embedded cluster (or use --dsn) and apply deploy.plan."""
    from hrp_harness.deploy import deploy as run_deploy
    from hrp_harness.deploy import embedded_cluster

    try:
        target = run_deploy(dsn)
    except HarnessError as exc:
        _fail(exc)
    if dsn is None:
        cluster = embedded_cluster()
        print(f"deployed. Connect with:\n  psql '{target}'\n"
              f"(as the OS user that ran deploy; the server listens on 127.0.0.1:{cluster.port})")
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


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


ns = Collection(deploy, apply, verify, lint, test, status, start, stop)
ns.add_collection(Collection("conf", conf_install))
