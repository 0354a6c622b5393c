"""hrp_harness.platform.procs without a server: the one deadline helper (wait_until) and the Controller shape
on a plain process."""

from __future__ import annotations

import sys

import pytest

from hrp_harness import HarnessError
from hrp_harness.platform import procs

pytestmark = pytest.mark.unit


class Late(HarnessError):
    pass


def test_wait_until_returns_once_the_predicate_holds():
    calls = []
    procs.wait_until(lambda: calls.append(1) or len(calls) >= 3, 5, "three calls", interval=0.01)
    assert len(calls) == 3


def test_wait_until_names_what_it_waited_for():
    with pytest.raises(HarnessError, match=r"^timed out after 0 s waiting for the moon$"):
        procs.wait_until(lambda: False, 0.05, "the moon", interval=0.01)


def test_wait_until_raises_the_given_error_and_message():
    seen = []
    with pytest.raises(Late, match=r"^late after 1 tries$"):
        procs.wait_until(lambda: seen.append(1), 0.05, "x", interval=0.01, error=Late,
                         message=lambda: "late after 1 tries" if seen else "never")


def test_wait_until_ignores_only_the_given_exceptions():
    def refused():
        raise ConnectionRefusedError  # an OSError: not yet
    with pytest.raises(HarnessError, match="timed out"):
        procs.wait_until(refused, 0.05, "a port", interval=0.01)

    def dead():
        raise HarnessError("it died")
    with pytest.raises(HarnessError, match="^it died$"):
        procs.wait_until(dead, 5, "a process", interval=0.01)


def test_a_controller_starts_waits_and_stops_a_process_by_pid(tmp_path):
    server = procs.Controller("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                              tmp_path / "sleeper.pid", tmp_path / "sleeper.log", cwd="/")
    assert server.pid is None
    server.start(timeout=5)
    pid = server.pid
    assert pid is not None and server.running
    server.stop(timeout=5)
    assert server.pid is None and not server.pidfile.exists()


class NeverReady(procs.Controller):
    def ready(self) -> bool:
        return False


def test_a_controller_reports_a_process_that_exits_at_start(tmp_path):
    argv = [sys.executable, "-c", "import time; print('bad config'); time.sleep(0.5)"]
    server = NeverReady("quitter", argv, tmp_path / "quitter.pid", tmp_path / "quitter.log", cwd="/")
    with pytest.raises(HarnessError, match=r"^quitter exited at start; see .*quitter\.log:\n(.*\n)*bad config"):
        server.start(timeout=10)


def test_a_controller_that_is_never_ready_times_out_naming_its_log(tmp_path):
    server = NeverReady("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                        tmp_path / "sleeper.pid", tmp_path / "sleeper.log", cwd="/")
    try:
        with pytest.raises(HarnessError,
                           match=r"^timed out after 0 s waiting for sleeper \(log .*sleeper\.log\)$"):
            server.start(timeout=0.3)
    finally:
        server.stop(timeout=5)


def test_kill_by_cwd_kills_every_process_running_in_the_directory_and_no_other(tmp_path):
    """The sweep after a node kill: processes whose working directory is the data directory die
    (an orphaned backend among them), one running elsewhere lives."""
    import subprocess

    inside = [subprocess.Popen(["sleep", "60"], cwd=tmp_path) for _ in range(2)]
    orphan_parent = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!"], cwd=tmp_path, stdout=subprocess.PIPE,
                                     text=True)
    orphan = int(orphan_parent.stdout.readline())
    orphan_parent.wait()
    outside = subprocess.Popen(["sleep", "60"], cwd="/")
    try:
        killed = procs.kill_by_cwd(tmp_path, timeout=5)
        assert {p.pid for p in inside} | {orphan} <= set(killed)
        assert all(p.wait(5) == -9 for p in inside)
        assert not procs.psutil.pid_exists(orphan) or procs.psutil.Process(orphan).status() == "zombie"
        assert outside.poll() is None and outside.pid not in killed
    finally:
        outside.kill()
        outside.wait()
