"""Process plumbing of the harness: every server it runs has one controller shape (Controller),
started as the server user and stopped by pid (PostgreSQL: by data directory), never by name; one
deadline helper (wait_until); free ports.

Controller is the shape of Patroni's features/environment.py AbstractController: start() launches
the server unless it runs and waits until ready() within a deadline, stop() stops it by pid,
log_tail() is what an error quotes. Its users: HttpServer (etcd, the monitoring stack),
cluster.Cluster (PostgreSQL, through pg_ctl), pgbouncer.PgBouncer, haproxy.HaProxy and the Patroni
members and their postmaster checks in ha/patroni.py.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from hrp_harness import HarnessError
from hrp_harness.platform.server_user import as_server_user, chown_for_server, make_server_dir


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def give_tree(path: Path, skip: tuple[str, ...] = ()) -> None:
    """Give a directory tree the harness wrote to the server user (dirs keep their modes), except
    the top-level entries named in skip (tls/: hrp_harness.platform.tls sets its owners itself)."""
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
        children: list[psutil.Process] = []

        def forked() -> bool:
            children[:] = psutil.Process(proc.pid).children() if psutil.pid_exists(proc.pid) else []
            if not children and proc.poll() is not None:
                raise HarnessError(f"{argv[4]} exited at once with {proc.returncode}; see {log}")
            return bool(children)
        wait_until(forked, 10, argv[4], interval=0.01, ignore=(psutil.NoSuchProcess,),
                   message=f"{argv[4]} did not start within 10 s; see {log}")
        pid = children[0].pid
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


def kill_by_cwd(directory: Path, timeout: float = 10) -> list[int]:
    """SIGKILL every process whose working directory is DIRECTORY (a postmaster's backends run in its
    data directory), again until none is left: a backend forked while its postmaster was being
    killed outlives the kill of the tree it was not yet part of, and holds the shared memory that
    keeps the member from starting again. Returns the pids killed."""
    directory = Path(directory).resolve()
    killed: list[int] = []

    def survivors() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cwd"]):
            if proc.info.get("cwd") and Path(proc.info["cwd"]) == directory:
                found.append(proc)
        return found

    def swept() -> bool:
        left = survivors()
        for proc in left:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
            except ProcessLookupError:
                pass
        return not left

    wait_until(swept, timeout, f"the processes running in {directory} to die")
    return killed


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2,
               ignore: tuple[type[BaseException], ...] = (OSError,),
               error: type[HarnessError] = HarnessError,
               message: str | Callable[[], str] | None = None) -> None:
    """The one deadline helper: call predicate until it returns true. An exception of `ignore` (a
    port not listening yet) counts as not yet; any other goes through (a predicate raises to say
    the process it waits for died). After timeout seconds: error(message) (a callable message is
    called then), by default "timed out after N s waiting for `what`"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except ignore:
            pass
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise error(text or f"timed out after {timeout:.0f} s waiting for {what}")
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


class Controller:
    """One server process the harness runs: launched as the server user (spawn) with its pid in
    pidfile, output appended to outfile (default: logfile), stopped by pid. A subclass says when it
    is ready (default: as soon as it runs) and may override launch, the messages and stop."""

    #: seconds between two looks at ready()
    poll_interval = 0.2

    def __init__(self, name: str, argv: list[str], pidfile: Path, logfile: Path, cwd: Path,
                 env: dict | None = None, outfile: Path | None = None):
        self.name, self.argv, self.env = name, argv, env
        self.pidfile, self.logfile, self.cwd = Path(pidfile), Path(logfile), Path(cwd)
        self.outfile = Path(outfile or logfile)

    @property
    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def ready(self) -> bool:
        return True

    def launch(self) -> None:
        """Start the process (not waiting for it to be ready)."""
        spawn(self.argv, self.outfile, self.pidfile, cwd=self.cwd, env=self.env)

    def start(self, timeout: float | None = 30):
        """Launch (when not running) and wait until ready; timeout None: do not wait (the caller
        judges, e.g. a Patroni member by the cluster's state)."""
        if not self.running:
            self.launch()
        if timeout is not None:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        """Until ready(); a process that exits meanwhile is reported at once with its log's tail."""
        def ready_or_dead() -> bool:
            if not self.running:
                raise HarnessError(f"{self.name} exited at start; see {self.logfile}:\n{self.log_tail()}")
            return self.ready()
        wait_until(ready_or_dead, timeout, self.name, interval=self.poll_interval,
                   message=lambda: self.timeout_message(timeout))

    def timeout_message(self, timeout: float) -> str:
        return f"timed out after {timeout:.0f} s waiting for {self.name} (log {self.logfile})"

    def stop(self, timeout: float = 30) -> None:
        """Stop by pid: SIGTERM, SIGKILL after timeout."""
        stop_pid(self.pid, timeout)
        self.pidfile.unlink(missing_ok=True)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log {self.logfile})"
        return "\n".join(text.splitlines()[-lines:])


class HttpServer(Controller):
    """A Controller that is ready when its ready URL answers 200 (etcd, the monitoring stack)."""

    def __init__(self, name: str, argv: list[str], ready_url: str, pidfile: Path, logfile: Path,
                 cwd: Path, env: dict | None = None):
        super().__init__(name, argv, pidfile, logfile, cwd, env)
        self.ready_url = ready_url

    def ready(self) -> bool:
        try:
            return http_status(self.ready_url) == 200
        except OSError:
            return False

    def timeout_message(self, timeout: float) -> str:
        return (f"timed out after {timeout:.0f} s waiting for {self.name} at {self.ready_url} "
                f"(log {self.logfile})")
