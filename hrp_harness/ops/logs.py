"""The server logs (the spec's "Log Management", issue 14): the weekly slow-query report (pgbadger)
and the retention of conf/log-retention.conf (database logs 90 days, audit 7 years, performance
1 year).

Retention, for every log directory (the embedded cluster's DATADIR/log, or each Patroni member's):
  1. every closed log file (all but the newest of its directory: PostgreSQL writes that one) has
     its audit entries (pgaudit's `AUDIT:` lines) copied into ARCHIVE/audit/<instance>/ and its
     performance entries (slow statements, lock waits, checkpoints, deadlocks) into
     ARCHIVE/performance/<instance>/, one gzip file each per log file, made read-only, its sha256
     recorded in ARCHIVE/MANIFEST; an entry is a prefixed line with the lines that continue it (a
     multi-line statement, its DETAIL/HINT/CONTEXT lines);
  2. a log file older than database_log_days is deleted, and only once both its archives exist and
     read back with the number of entries written;
  3. archives older than their own retention are deleted, and so are the weekly reports.
ARCHIVE is STATE/log-archive, or $HRP_LOG_ARCHIVE_DIR. An archive keeps the source file's mtime,
so its age is the age of its entries.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hrp_harness import HarnessError
from hrp_harness.platform.conf import fragment_values
from hrp_harness.platform.paths import CONF, REPO, state_dir

RETENTION_CONF = CONF / "log-retention.conf"
LOG_GLOB = "postgresql-*.log"
ARCHIVE_ENV = "HRP_LOG_ARCHIVE_DIR"
REPORTS = REPO / "reports"
#: A line with conf/logging.conf's log_line_prefix '%t [%p]: [%l-1] user=...,client=%h ': a
#: timestamp and the pid; a continuation is such a line whose message is a DETAIL, HINT, ...
ENTRY_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[(\d+)\]: ")
CONTINUATION = re.compile(r"client=\S* (DETAIL|HINT|CONTEXT|STATEMENT|QUERY|LOCATION):  ")
#: Which entries each archive keeps (on the entry's first line).
KINDS = {
    "audit": re.compile(r" LOG:  AUDIT: "),
    "performance": re.compile(r" LOG:  (duration: |process \d+ (still waiting for|acquired) |"
                              r"checkpoint (starting|complete)|automatic (vacuum|analyze) )"
                              r"| ERROR:  deadlock detected"),
}
DAY = 86400


@dataclass(frozen=True)
class Retention:
    database_log_days: int
    audit_log_days: int
    performance_log_days: int

    @classmethod
    def from_conf(cls, path: Path = RETENTION_CONF) -> Retention:
        values = fragment_values(path)
        try:
            return cls(**{name: int(values[name]) for name in
                          ("database_log_days", "audit_log_days", "performance_log_days")})
        except (KeyError, ValueError) as exc:
            raise HarnessError(f"{path}: needs database_log_days, audit_log_days and "
                               f"performance_log_days as whole days ({exc})") from None

    def days(self, kind: str) -> int:
        return {"audit": self.audit_log_days, "performance": self.performance_log_days}[kind]


@dataclass
class RetainResult:
    archived: list[str]
    deleted_logs: list[str]
    deleted_archives: list[str]


def log_dirs(ha: bool = False) -> dict[str, Path]:
    """The server log directories by instance name: the embedded cluster's, or each Patroni
    member's."""
    if ha:
        from hrp_harness.ha.patroni import HaCluster

        cluster = HaCluster()
        if cluster.meta is None:
            raise HarnessError(f"no HA cluster in {cluster.base} (run `invoke cluster.up`)")
        return {name: cluster.data_dir(name) / "log" for name in cluster.meta["nodes"]}
    from hrp_harness.platform.deploy import embedded_cluster

    cluster = embedded_cluster()
    if not cluster.initialized:
        raise HarnessError(f"no embedded cluster in {cluster.base} (run `invoke deploy` first)")
    return {"embedded": cluster.datadir / "log"}


def archive_dir() -> Path:
    return Path(os.environ.get(ARCHIVE_ENV) or state_dir() / "log-archive").resolve()


def entries(path: Path):
    """The log file's entries as strings: a first line, then the lines that continue it: lines
    without a prefix (a multi-line statement) and the DETAIL, HINT, CONTEXT, STATEMENT lines
    PostgreSQL writes right after it for the same process (log_line_prefix's [%p])."""
    current: list[str] = []
    pid = None
    with open(path, errors="replace") as log:
        for line in log:
            start = ENTRY_START.match(line)
            if start:
                continues = start.group(1) == pid and CONTINUATION.search(line)
                if current and not continues:
                    yield "".join(current)
                    current = []
                pid = start.group(1)
            current.append(line)
    if current:
        yield "".join(current)


def _write_archive(target: Path, chunks: list[str], source: Path) -> str:
    """Write chunks gzip'd to target (via a temporary name), read it back, make it read-only with
    the source's mtime; returns its sha256."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    with gzip.open(temporary, "wt") as out:
        out.writelines(chunks)
    with gzip.open(temporary, "rt") as back:
        if sum(1 for _ in back) != sum(chunk.count("\n") for chunk in chunks):
            temporary.unlink()
            raise HarnessError(f"{target}: the archive does not read back as written")
    os.chmod(temporary, 0o440)
    stat = source.stat()
    os.utime(temporary, (stat.st_atime, stat.st_mtime))
    os.replace(temporary, target)
    return hashlib.sha256(target.read_bytes()).hexdigest()


def archive_path(archive: Path, kind: str, instance: str, source: Path) -> Path:
    """ARCHIVE/<kind>/<instance>/<kind>-<log file name>.log.gz"""
    return archive / kind / instance / f"{kind}-{source.stem}.log.gz"


def archive_log(source: Path, instance: str, archive: Path) -> list[Path]:
    """The audit and performance archives of one closed log file (written once; existing ones are
    kept as they are). Returns the archives written now."""
    written = []
    for kind, pattern in KINDS.items():
        target = archive_path(archive, kind, instance, source)
        if target.exists():
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            chunks = [entry for entry in entries(source) if pattern.search(entry.split("\n", 1)[0])]
            digest = _write_archive(target, chunks, source)
            with open(archive / "MANIFEST", "a") as manifest:
                manifest.write(f"{digest}  {target.relative_to(archive)}  {len(chunks)} entries "
                               f"from {source}\n")
        except OSError as exc:
            raise HarnessError(f"cannot archive {source} into {target}: {exc}; the log file is "
                               "kept") from None
        written.append(target)
    return written


def retain(dirs: dict[str, Path], archive: Path | None = None, retention: Retention | None = None,
           now: float | None = None, reports: Path = REPORTS) -> RetainResult:
    """`invoke logs.retain`: archive, then delete what is past its retention (module docstring).
    dirs: instance name -> its log directory (log_dirs())."""
    retention = retention or Retention.from_conf()
    archive = Path(archive or archive_dir())
    now = time.time() if now is None else now
    archive.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = RetainResult([], [], [])
    for instance, directory in dirs.items():
        logs = sorted(Path(directory).glob(LOG_GLOB), key=lambda p: (p.stat().st_mtime, p.name))
        for source in logs[:-1]:  # the newest is the one the server writes
            result.archived += [str(p) for p in archive_log(source, instance, archive)]
            archived = all(archive_path(archive, kind, instance, source).exists() for kind in KINDS)
            if archived and now - source.stat().st_mtime > retention.database_log_days * DAY:
                source.unlink()
                result.deleted_logs.append(str(source))
    for kind in KINDS:
        for old in sorted((archive / kind).rglob("*.log.gz")):
            if now - old.stat().st_mtime > retention.days(kind) * DAY:
                old.unlink()
                result.deleted_archives.append(str(old))
    for report in sorted(Path(reports).glob("slow-queries-*.html")):
        if now - report.stat().st_mtime > retention.performance_log_days * DAY:
            report.unlink()
            result.deleted_archives.append(str(report))
    return result


def log_line_prefix() -> str:
    """log_line_prefix as conf/logging.conf sets it (pgbadger must parse the same prefix)."""
    return fragment_values(CONF / "logging.conf")["log_line_prefix"]


def slow_query_report(dirs: dict[str, Path], out: Path | None = None, days: int = 7,
                      now: float | None = None) -> Path:
    """`invoke report.slow-queries`: pgbadger's HTML report of the last `days` days of server log
    (statements slower than log_min_duration_statement, lock waits, errors, connections), into
    reports/slow-queries-<date>.html (0600: it quotes statements)."""
    now = time.time() if now is None else now
    begin = now - days * DAY
    files = sorted(p for d in dirs.values() for p in Path(d).glob(LOG_GLOB)
                   if p.stat().st_mtime >= begin)
    if not files:
        raise HarnessError(f"no server log of the last {days} days in "
                           f"{', '.join(map(str, dirs.values()))}")
    day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")
    out = Path(out or REPORTS / f"slow-queries-{day}.html").resolve()
    if not out.parent.is_dir():
        raise HarnessError(f"--out {out}: directory {out.parent} does not exist")
    begin_text = datetime.fromtimestamp(begin, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    argv = ["pgbadger", "--quiet", "--no-progressbar", "--format", "stderr",
            "--prefix", log_line_prefix(), "--begin", begin_text, "--jobs", "1",
            "--title", f"HRP slow queries, {days} days to {day}", "--outfile", str(out),
            *map(str, files)]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TZ": "UTC"})
    if done.returncode != 0 or not out.exists():
        raise HarnessError(f"pgbadger failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")
    out.chmod(0o600)
    return out
