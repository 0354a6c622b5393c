"""Run PostgreSQL-side processes as the OS user `postgres` (PostgreSQL refuses root)."""
import os
import shutil
from pathlib import Path

SERVER_USER = "postgres"


def as_server_user(argv: list[str]) -> list[str]:
    """argv prefixed with runuser when we are root, unchanged otherwise."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *[str(a) for a in argv]]
    return [str(a) for a in argv]


def chown_for_server(*paths: Path) -> None:
    """Give paths (recursively) to the server user when we are root."""
    if os.geteuid() != 0:
        return
    for path in paths:
        for root, dirs, files in os.walk(path):
            shutil.chown(root, SERVER_USER, SERVER_USER)
            for name in files:
                shutil.chown(os.path.join(root, name), SERVER_USER, SERVER_USER)
        if Path(path).is_file():
            shutil.chown(path, SERVER_USER, SERVER_USER)
