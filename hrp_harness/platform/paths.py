"""Where things are: the repository and the git-ignored state directory."""

import hashlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PLAN = REPO / "deploy.plan"
CONF = REPO / "conf"
PGBIN = Path(os.environ.get("HRP_PGBIN", "/usr/lib/postgresql/15/bin"))
#: The project's venv (built by ./hrp with Debian's /usr/bin/python3, which the server user can run;
#: resolved: .venv links to /var/tmp/hrp-venv-* when the server user cannot enter the repository):
#: Patroni, patronictl and the postmaster check run from here.
VENV_BIN = Path(sys.prefix).resolve() / "bin"


def state_dir() -> Path:
    """$HRP_STATE_DIR, else .state in the repository (ignored by git).

    As root, when the unprivileged server user cannot reach the repository (a clone under /root),
    the default moves to /var/tmp/hrp-state-<hash of the repository path> so deploy still works.
    """
    if "HRP_STATE_DIR" in os.environ:
        return Path(os.environ["HRP_STATE_DIR"]).resolve()
    from hrp_harness.platform.server_user import is_root, run_as_server

    if is_root() and run_as_server(["test", "-x", str(REPO)], capture_output=True).returncode:
        digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"hrp-state-{digest}"
    return REPO / ".state"


def pgbin(program: str) -> str:
    """Full path of a PostgreSQL 15 server program (initdb, pg_ctl, ...)."""
    return str(PGBIN / program)


def write_crash_log(kind, exc, traceback) -> Path:
    """The traceback of an unexpected error, into STATE/logs/ (the task names the file)."""
    import time
    import traceback as tb

    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text("".join(tb.format_exception(kind, exc, traceback)))
    return path
