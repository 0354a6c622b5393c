"""Log management on real server logs: the retention of conf/log-retention.conf (audit entries
archived before any log is deleted, 90 days / 7 years / 1 year) over copies of the session
cluster's log, with a statement made here as the marker."""

from __future__ import annotations

import gzip
import os
import time

import psycopg
import pytest

from helpers import TEST_PASSWORDS
from hrp_harness import HarnessError
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.ops.logs import DAY, Retention, entries, retain

RETENTION = Retention(database_log_days=90, audit_log_days=2557, performance_log_days=365)


def session_log(pg_cluster, marker: str) -> str:
    """The session cluster's log text, once it holds marker."""
    deadline = time.monotonic() + 10
    while True:
        text = "".join(p.read_text(errors="replace")
                       for p in sorted((pg_cluster.datadir / "log").glob("postgresql-*.log")))
        if marker in text:
            return text
        assert time.monotonic() < deadline, "the server log was not written"
        time.sleep(0.2)


@pytest.fixture
def logs(pg_cluster, app_database, tmp_path):
    """A log directory holding a copy of the session's real log as a 100-day-old file (with an
    audited statement and a slow one made here), a 10-day-old one, and the current one."""
    marker = f"retention probe {time.time_ns()}"
    with psycopg.connect(pg_cluster.tcp_dsn(DATABASE, "hrp_app", TEST_PASSWORDS["hrp_app"])) as conn:
        conn.execute("select %s::text, pg_sleep(1.05)", (marker,))
    text = session_log(pg_cluster, marker)
    directory = tmp_path / "log"
    directory.mkdir()
    now = time.time()
    files = {}
    for name, age in (("postgresql-2026-08-01_000000.log", 100), ("postgresql-2026-11-01_000000.log", 10),
                      ("postgresql-2026-11-11_000000.log", 0)):
        path = directory / name
        path.write_text(text)
        os.utime(path, (now - age * DAY, now - age * DAY))
        files[age] = path
    return directory, files, marker, now


@pytest.mark.cluster
def test_retention_archives_audit_entries_then_deletes_old_logs(logs, tmp_path):
    directory, files, marker, now = logs
    archive = tmp_path / "archive"
    reports = tmp_path / "reports"
    reports.mkdir()
    old_report = reports / "slow-queries-2025-01-01.html"
    old_report.write_text("old")
    os.utime(old_report, (now - 400 * DAY, now - 400 * DAY))
    result = retain({"embedded": directory}, archive, RETENTION, now=now, reports=reports)
    assert not files[100].exists(), "older than 90 days, archived: deleted"
    assert files[10].exists() and files[0].exists()
    assert result.deleted_logs == [str(files[100])]
    audit = archive / "audit" / "embedded" / "audit-postgresql-2026-08-01_000000.log.gz"
    performance = archive / "performance" / "embedded" / "performance-postgresql-2026-08-01_000000.log.gz"
    ten_days = archive / "audit" / "embedded" / "audit-postgresql-2026-11-01_000000.log.gz"
    for path in (audit, performance, ten_days):
        assert path.exists() and path.stat().st_mode & 0o777 == 0o440, path
    assert abs(audit.stat().st_mtime - (now - 100 * DAY)) < 1, "an archive keeps its entries' age"
    # the current file (the newest: PostgreSQL writes it) is not archived yet
    assert not (archive / "audit" / "embedded" / "audit-postgresql-2026-11-11_000000.log.gz").exists()
    audited = gzip.open(audit, "rt").read()
    source_audit = [e for e in entries(files[0]) if " LOG:  AUDIT: " in e.split("\n", 1)[0]]
    assert audited == "".join(source_audit) and len(source_audit) > 10
    assert any(marker in e and "user=hrp_app" in e for e in source_audit)
    perf = gzip.open(performance, "rt").read()
    lines = perf.splitlines()
    detail = next(i for i, line in enumerate(lines) if "DETAIL:  parameters: " in line and marker in line)
    assert "duration: " in lines[detail - 1] and "pg_sleep(1.05)" in lines[detail - 1], "kept with its DETAIL"
    assert "AUDIT:" not in perf
    manifest = (archive / "MANIFEST").read_text()
    assert "audit/embedded/audit-postgresql-2026-08-01_000000.log.gz" in manifest
    assert not old_report.exists(), "weekly reports are kept 1 year"
    # a second run changes nothing
    again = retain({"embedded": directory}, archive, RETENTION, now=now, reports=reports)
    assert (again.archived, again.deleted_logs, again.deleted_archives) == ([], [], [])


@pytest.mark.cluster
def test_archives_expire_after_their_own_retention(logs, tmp_path):
    directory, files, _, now = logs
    archive = tmp_path / "archive"
    retain({"embedded": directory}, archive, RETENTION, now=now, reports=tmp_path)
    assert len(list(archive.rglob("*.gz"))) == 4  # audit and performance of the two closed files
    # two years later the performance archives are past 1 year, the audit ones are kept
    result = retain({"embedded": directory}, archive, RETENTION, now=now + 2 * 365 * DAY,
                    reports=tmp_path)
    assert len(list((archive / "audit").rglob("*.gz"))) == 2
    assert not list((archive / "performance").rglob("*.gz"))
    assert len(result.deleted_archives) == 2
    assert not files[10].exists(), "the 10-day-old log is now past 90 days and archived"
    # eight years later the audit archives are past 7 years
    result = retain({"embedded": directory}, archive, RETENTION, now=now + 8 * 365 * DAY,
                    reports=tmp_path)
    assert not list(archive.rglob("*.gz")) and len(result.deleted_archives) == 2
    assert files[0].exists(), "the file the server writes is never touched"


@pytest.mark.cluster
def test_a_log_whose_archive_cannot_be_written_is_kept(logs, tmp_path):
    directory, files, _, now = logs
    archive = tmp_path / "archive"
    (archive / "audit").mkdir(parents=True)
    (archive / "audit" / "embedded").write_text("not a directory")
    with pytest.raises(HarnessError, match=r"cannot archive .*postgresql-2026-08-01_000000\.log into .*: "
                                           r".*; the log file is kept"):
        retain({"embedded": directory}, archive, RETENTION, now=now, reports=tmp_path)
    assert files[100].exists(), "never deleted before its audit entries are archived"


@pytest.mark.unit
def test_the_retention_conf_holds_the_spec_values():
    retention = Retention.from_conf()
    assert retention == Retention(database_log_days=90, audit_log_days=7 * 365 + 2, performance_log_days=365)


@pytest.mark.unit
def test_retention_conf_without_a_value_is_one_clear_error(tmp_path):
    bad = tmp_path / "log-retention.conf"
    bad.write_text("database_log_days = 90\n")
    with pytest.raises(HarnessError, match="needs database_log_days, audit_log_days and "
                                           "performance_log_days"):
        Retention.from_conf(bad)
