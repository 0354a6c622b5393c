"""Postmaster check: one per HA member, beside its Patroni (started and stopped with it by
hrp_harness.ha.patroni). Patroni watches PostgreSQL through one long-lived connection and the postmaster's
pid, so a hung postmaster (SIGSTOP, a stuck kernel call) goes unnoticed: running backends keep
working, new connections time out. This check opens a NEW connection every INTERVAL seconds over
the member's socket; when FAILURES attempts in a row time out (no answer at all: a refusal or
"starting up" / "shutting down" is an answer and resets the count), it SIGKILLs the postmaster.
Its backends then exit on postmaster death and Patroni restarts PostgreSQL in place (crash
recovery; a replica follows again, the leader keeps its lock), which is the convergence Patroni
already knows how to do. It does nothing while Patroni is paused (maintenance mode), nor when no
postmaster runs.

Runs as the server user with the project's venv python (psycopg, psutil), standalone (no
hrp_harness import): python postmaster_check.py --data DIR --socket DIR --port N --rest URL
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.request

import psutil
import psycopg


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} postmaster-check: {message}", flush=True)


def postmaster_pid(data_dir: str) -> int | None:
    """The postmaster of data_dir, if one runs (postmaster.pid's first line, checked against the
    process's own command line, so a recycled pid is never killed)."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as pidfile:
            pid = int(pidfile.readline())
        cmdline = psutil.Process(pid).cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if data_dir in cmdline and os.path.basename(cmdline[0]) == "postgres" else None


def paused(rest_url: str) -> bool:
    """Patroni's maintenance mode (GET /patroni); unknown (Patroni busy or down) counts as not."""
    try:
        with urllib.request.urlopen(rest_url + "/patroni", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("pause"))
    except (OSError, ValueError):
        return False


def answers(socket_dir: str, port: int, timeout: int) -> bool:
    """False only when the postmaster gave no answer at all within timeout seconds."""
    try:
        with psycopg.connect(host=socket_dir, port=port, dbname="postgres", user="postgres",
                             connect_timeout=timeout, application_name="hrp_postmaster_check"):
            pass  # a backend forked and authenticated us: the postmaster works
    except psycopg.OperationalError as exc:
        return "timeout expired" not in str(exc)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rest", required=True)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--timeout", type=int, default=4)
    parser.add_argument("--failures", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"watching {args.data} (new connection every {args.interval:g} s, {args.failures} "
        f"timeouts of {args.timeout} s in a row kill a hung postmaster)")
    timeouts = 0
    while True:
        time.sleep(args.interval)
        pid = postmaster_pid(args.data)
        if pid is None or answers(args.socket, args.port, args.timeout):
            timeouts = 0
            continue
        timeouts += 1
        log(f"postmaster {pid} gave no answer within {args.timeout} s ({timeouts}/{args.failures})")
        if timeouts < args.failures:
            continue
        timeouts = 0
        if paused(args.rest):
            log("Patroni is paused: leaving the postmaster alone")
            continue
        if postmaster_pid(args.data) == pid:
            log(f"postmaster {pid} hangs: SIGKILL, Patroni restarts PostgreSQL")
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
