"""The preflight's content scan of a big SQLite file, as a background process (preflight.py).

`invoke load` runs it beside staging, mapping and the transaction and waits for its verdict before
the commit. It runs at the lowest CPU priority there is, in a session of its own: with the kernel's
autogroup scheduling a thread's nice value only ranks it against its own session, so a niced thread
of the loader would still take CPU from the PostgreSQL backends; a process whose own session's
group is niced takes only CPU nothing else wants.

Usage: python -m hrp_harness.migration.scan SOURCE WORKROOT  (prints the result as one JSON object)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _lowest_priority() -> None:
    os.nice(19)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    try:  # this (new) session's scheduling group; absent without autogroup scheduling
        Path("/proc/self/autogroup").write_text("19")
    except OSError:
        pass


def main(argv: list[str]) -> int:
    _lowest_priority()
    from hrp_harness import HarnessError
    from hrp_harness.migration.preflight import preflight

    try:
        found = preflight(Path(argv[1]), Path(argv[2]))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    json.dump({"source_counts": found.source_counts, "rejects": found.rejects,
               "load_path": str(found.load_path),
               "workdir": str(found.workdir) if found.workdir else None,
               "seconds": found.seconds}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
