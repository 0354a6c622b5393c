"""Thin Python harness of the HRP PostgreSQL platform: cluster lifecycle, the apply ledger,
pgTAP runs, deploy. The SQL lives in schema/, functions/, views/, roles/ and data/."""


class HarnessError(Exception):
    """An error the harness reports to the user as one clear message (what and where).

    exit_status: the task's exit status (README, "Exit status"): 1 nothing was changed by the
    failed step; subclasses say otherwise (3: a load IS committed, a later step failed)."""

    exit_status = 1
