"""PostgreSQL refuses to run as root: when the harness runs as root, server processes run as an
unprivileged OS user ($HRP_SERVER_USER, default postgres); as a normal user, unchanged."""

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from hrp_harness import HarnessError


def is_root() -> bool:
    return os.geteuid() == 0


def current_os_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def server_user() -> str:
    """The OS user that runs PostgreSQL, Patroni, pgBackRest and etcd processes."""
    if not is_root():
        return current_os_user()
    name = os.environ.get("HRP_SERVER_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise HarnessError(
            f"running as root, server processes need the unprivileged OS user {name!r}, which does "
            "not exist: install postgresql-15 (it creates 'postgres') or set HRP_SERVER_USER"
        ) from None
    return name


def as_server_user(argv: list[str]) -> list[str]:
    """argv, run as the server user (through runuser when root)."""
    if is_root():
        return ["runuser", "-u", server_user(), "--", *argv]
    return list(argv)


def run_as_server(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server-side program as the server user from '/', so an unreadable cwd cannot matter."""
    kwargs.setdefault("cwd", "/")
    return subprocess.run(as_server_user(argv), **kwargs)


def make_server_dir(path: Path, mode: int = 0o700) -> Path:
    """Create a directory (and missing parents) owned by the server user, with mode."""
    path.mkdir(parents=True, exist_ok=True)
    if is_root():
        user = server_user()
        shutil.chown(path, user, pwd.getpwnam(user).pw_gid)
    path.chmod(mode)
    check_server_can_write(path)
    return path


def chown_for_server(path: Path) -> None:
    """Give a file the harness wrote to the server user."""
    if is_root():
        user = server_user()
        shutil.chown(path, user, pwd.getpwnam(user).pw_gid)


def check_server_can_write(path: Path) -> None:
    """Fail clearly when a parent directory keeps the server user out (e.g. a repo under /root)."""
    if not is_root():
        return
    probe = run_as_server(["test", "-w", str(path), "-a", "-x", str(path)], capture_output=True)
    if probe.returncode != 0:
        raise HarnessError(
            f"the server user {server_user()!r} cannot write {path}: a parent directory is closed to "
            "it (a clone under /root is). Set HRP_STATE_DIR to a directory it can reach, e.g. "
            "HRP_STATE_DIR=/var/lib/hrp"
        )
