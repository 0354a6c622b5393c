"""Background server processes started as the server user and stopped by pid, never by name."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from hrp_harness import HarnessError
from hrp_harness.cluster import free_port  # noqa: F401  (re-exported for ha.py)
from hrp_harness.server_user import as_server_user, chown_for_server, make_server_dir


def give_tree(path: Path, skip: tuple[str, ...] = ()) -> None:
    """Give a directory tree the harness wrote to the server user (dirs keep their modes), except
    the top-level entries named in skip (tls/: hrp_harness.tls sets its owners itself)."""
    for root, dirs, files in os.walk(path):
        if Path(root) == Path(path):
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        chown_for_server(Path(root))
        for name in files:
            chown_for_server(Path(root) / name)


def server_dir(path: Path, mode: int = 0o700) -> Path:
    return make_server_dir(Path(path), mode)


def spawn(argv: list[str], log: Path, pidfile: Path, cwd: Path, env: dict | None = None) -> int:
    """Start argv as the server user, detached (own session), output appended to log.

    Returns the pid of the program itself (not of runuser, which forks and waits) and writes it
    to pidfile, so that it can be killed alone, as a crash drill needs.
    """
    argv = as_server_user(argv)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, env=env, start_new_session=True)
    chown_for_server(log)
    pid = proc.pid
    if argv[0] == "runuser":
        deadline = time.monotonic() + 10
        while True:
            children = psutil.Process(proc.pid).children() if psutil.pid_exists(proc.pid) else []
            if children:
                pid = children[0].pid
                break
            if proc.poll() is not None:
                raise HarnessError(f"{argv[4]} exited at once with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{argv[4]} did not start within 10 s; see {log}")
            time.sleep(0.01)
    pidfile.write_text(f"{pid}\n")
    return pid


def read_pid(pidfile: Path) -> int | None:
    """The pid in pidfile (first line: our pid files and postmaster.pid alike) if it is alive."""
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    return pid


def gone(proc: psutil.Process) -> bool:
    """Exited: no such process, or a zombie (dead, waiting for its parent to reap it)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(victims: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited (zombies count as exited); returns those still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in victims if not gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if not gone(p)]
    return alive


def stop_pid(pid: int | None, timeout: float = 30.0, sig: int = signal.SIGTERM) -> None:
    """Send sig to pid, wait up to timeout for it to exit, then SIGKILL it."""
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        continue_stopped([proc])  # a stopped process would not act on sig
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        return
    if wait_gone([proc], timeout):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            return
        wait_gone([proc], 10)


def continue_stopped(processes: list[psutil.Process]) -> int:
    """SIGCONT every stopped process of the list, and its stopped runuser parent: util-linux's
    runuser stops itself when its child stops and, left stopped, never reaps it (the child stays a
    zombie). Returns how many processes were continued."""
    continued = 0
    for proc in processes:
        try:
            parent = proc.parent()
            family = [proc, *([parent] if parent is not None and parent.name() == "runuser" else [])]
        except psutil.NoSuchProcess:
            continue
        for one in family:
            try:
                if one.status() == psutil.STATUS_STOPPED:
                    one.send_signal(signal.SIGCONT)
                    continued += 1
            except psutil.NoSuchProcess:
                pass
    return continued


def kill_tree_now(pids: list[int]) -> None:
    """SIGKILL every pid in the list and all their descendants, collected before the first kill,
    so that they die at the same moment (a node crash)."""
    victims = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        victims.append(proc)
        victims.extend(proc.children(recursive=True))
    for proc in victims:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_gone(victims, timeout=10)
