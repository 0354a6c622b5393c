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


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2) -> None:
    """Call predicate until it returns true; a HarnessError naming `what` after timeout seconds.
    OSError (a port not listening yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_status(url: str, timeout: float = 2.0) -> int:
    """The HTTP status of GET url (an OSError when nothing answers)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


class Server:
    """One HTTP server process the harness runs (the controller shape of every server): start it as
    the server user (spawn), wait until its ready URL answers 200 within a deadline, stop it by pid.
    Its pid file and log are RUN_DIR/NAME.pid and LOG_DIR/NAME.log."""

    def __init__(self, name: str, argv: list[str], ready_url: str, run_dir: Path, log_dir: Path,
                 cwd: Path, env: dict | None = None):
        self.name, self.argv, self.ready_url, self.env = name, argv, ready_url, env
        self.pidfile = Path(run_dir) / f"{name}.pid"
        self.logfile = Path(log_dir) / f"{name}.log"
        self.cwd = Path(cwd)

    @property
    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def ready(self) -> bool:
        try:
            return http_status(self.ready_url) == 200
        except OSError:
            return False

    def start(self, timeout: float = 30) -> int:
        """Start (when not running) and wait until ready; a dead process names its log's tail."""
        if self.pid is None:
            spawn(self.argv, self.logfile, self.pidfile, cwd=self.cwd, env=self.env)
        self.wait_ready(timeout)
        return self.pid

    def wait_ready(self, timeout: float = 30) -> None:
        def ready_or_dead() -> bool:
            if self.pid is None:
                raise HarnessError(f"{self.name} exited at start:\n{self.log_tail()}")
            return self.ready()
        wait_until(ready_or_dead, timeout, f"{self.name} at {self.ready_url} (log {self.logfile})")

    def stop(self, timeout: float = 30) -> None:
        stop_pid(self.pid, timeout)
        self.pidfile.unlink(missing_ok=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log {self.logfile})"
        return "\n".join(text.splitlines()[-lines:])
