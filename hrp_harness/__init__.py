"""Thin Python harness of the HRP PostgreSQL platform: cluster lifecycle, the apply ledger,
pgTAP runs, deploy. The SQL lives in schema/, functions/, views/, roles/ and data/."""


class HarnessError(Exception):
    """An error the harness reports to the user as one clear message (what and where)."""
