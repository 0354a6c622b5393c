"""pgBackRest and logical backups on a real cluster (hrp_harness.platform.cluster.Cluster, as the embedded
one): encrypted repository, full/diff/incr, wrong passphrase, point-in-time recovery to the second,
restore verification, retention, logical dump and restore (with its roles, on a new server); a
restore target checked before anything is touched; a failing PITR start reported at once; tasks
that never start a stopped cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from helpers import new_cluster_base

from hrp_harness.ops import logical
from hrp_harness.ha.backup import (BackupError, cluster_repository, compare, enable_archiving,
                                fingerprints, restore_copy, start_copy, verify)
from hrp_harness.platform.cluster import Cluster
from hrp_harness.platform.deploy import DATABASE, deploy
from hrp_harness.platform.paths import REPO

pytestmark = pytest.mark.cluster

SECRET = "test-backup-passphrase"
ADD_RACES = ("insert into public.races (race_name, race_date) "
             "select %s || g, date '2026-01-01' + g from generate_series(1, %s) as g")


@pytest.fixture(scope="module")
def archived():
    """A cluster with the schema and some rows, archiving into its own repository, one full backup."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HRP_BACKUP_PASSPHRASE", SECRET)
        base = new_cluster_base("hrp-backup-")
        cluster = Cluster(base / "pg", shared_buffers_mb=128)
        try:
            cluster.init().start()
            deploy(cluster.dsn(DATABASE), echo=lambda *_: None)
            repo = cluster_repository(cluster, base / "backup")
            enable_archiving(cluster, repo)
            with psycopg.connect(cluster.dsn(DATABASE)) as conn:
                conn.execute(ADD_RACES, ["seed race ", 500])
            repo.backup("full")
            yield cluster, repo, base
        finally:
            cluster.destroy()
            shutil.rmtree(base, ignore_errors=True)


def test_full_diff_incr_into_an_encrypted_compressed_repository(archived):
    cluster, repo, _ = archived
    with psycopg.connect(cluster.dsn(DATABASE)) as conn:
        conn.execute(ADD_RACES, ["diff race ", 10])
    repo.backup("diff")
    with psycopg.connect(cluster.dsn(DATABASE)) as conn:
        conn.execute(ADD_RACES, ["incr race ", 10])
    repo.backup("incr")
    info = repo.info()
    assert info["cipher"] == "aes-256-cbc"
    assert [b["type"] for b in info["backup"]][:3] == ["full", "diff", "incr"]
    # Encrypted at rest: the repository's files are openssl-format ciphertext, not pgBackRest text.
    backup_info = (repo.base / "repo" / "backup" / repo.stanza / "backup.info").read_bytes()
    assert backup_info.startswith(b"Salted__")
    assert b"[backrest]" not in backup_info
    data_files = list((repo.base / "repo" / "backup").rglob("*.zst"))
    assert data_files, "compress-type=zst: data files end in .zst"
    assert all(f.read_bytes()[:8] == b"Salted__" for f in data_files[:20])
    with pytest.raises(BackupError, match="backup type 'weekly'"):
        repo.backup("weekly")


def test_wrong_passphrase_cannot_read_the_repository(archived, tmp_path):
    _, repo, base = archived
    wrong = {"PGBACKREST_REPO1_CIPHER_PASS": "not-the-passphrase"}
    with pytest.raises(BackupError, match="stanza hrp"):
        repo.info(env=wrong)
    with pytest.raises(BackupError, match="restore .*wrong passphrase"):
        repo.restore(base / "wrong-pass-copy" / "data", env=wrong)
    # The right passphrase still reads it.
    assert repo.info()["status"]["code"] == 0


def test_a_changed_passphrase_is_refused_and_archiving_goes_on(archived, monkeypatch):
    _, repo, _ = archived
    cipher = repo.base / "conf.d" / "cipher.conf"
    before = cipher.read_text()
    monkeypatch.setenv("HRP_BACKUP_PASSPHRASE", "a-new-passphrase")
    with pytest.raises(BackupError, match="does not open the existing repository"):
        repo.write_config()
    assert cipher.read_text() == before
    monkeypatch.setenv("HRP_BACKUP_PASSPHRASE", SECRET)
    repo.write_config()
    repo.check()  # archive-push still reads the repository


def _server_now(dsn: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select clock_timestamp()").fetchone()[0]


def test_point_in_time_recovery_to_the_second(archived):
    cluster, repo, base = archived
    dsn = cluster.dsn(DATABASE)
    with psycopg.connect(dsn) as conn:
        conn.execute(ADD_RACES, ["before target ", 1])
    committed = _server_now(dsn)
    target = committed.replace(microsecond=0) + timedelta(seconds=1)  # next whole second
    while _server_now(dsn) < target + timedelta(seconds=1):
        time.sleep(0.1)
    with psycopg.connect(dsn) as conn:
        conn.execute(ADD_RACES, ["after target ", 1])
    repo.check()  # the WAL holding both commits reaches the archive
    target_text = target.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")
    restored = repo.restore(base / "pitr" / "data", target_time=target_text)
    auto_conf = (restored / "postgresql.auto.conf").read_text()
    assert f"recovery_target_time = '{target_text}'" in auto_conf
    assert "restore_command" in auto_conf
    assert (restored / "recovery.signal").exists()
    assert not (restored / "recovery.conf").exists()
    copy = start_copy(base / "pitr")
    try:
        with psycopg.connect(copy.dsn(DATABASE)) as conn:
            names = {name for (name,) in conn.execute(
                "select race_name from public.races where race_name like '% target %'")}
    finally:
        copy.destroy()
    assert names == {"before target 1"}


def test_restore_to_a_recent_second_of_an_idle_source(archived):
    """`invoke restore`: with no commit after the target, recovery could not tell it had passed it;
    restore_copy commits an empty transaction and archives first."""
    cluster, repo, base = archived
    dsn = cluster.dsn(DATABASE)
    target = _server_now(dsn).replace(microsecond=0)
    while _server_now(dsn) < target + timedelta(seconds=1.2):
        time.sleep(0.1)
    target_text = target.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")
    copy = restore_copy(repo, base / "recent", target_time=target_text, start=True, source_dsn=dsn,
                        echo=lambda *_: None)
    try:
        assert compare(fingerprints(dsn), fingerprints(copy.dsn(DATABASE))) == []
    finally:
        copy.destroy()
    with pytest.raises(BackupError, match="is not empty"):
        (base / "recent" / "data").mkdir(parents=True)
        (base / "recent" / "data" / "keep.txt").write_text("x")
        repo.restore(base / "recent" / "data")


def test_verify_restores_latest_and_matches_the_source(archived):
    cluster, repo, base = archived
    report = verify(repo, cluster.dsn(), [DATABASE], scratch=base / "verify")
    assert report["differences"] == []
    assert report["databases"][DATABASE]["tables"] >= 5
    assert report["databases"][DATABASE]["rows"] >= 500
    assert not (base / "verify" / "data").exists(), "the scratch copy is removed"


def test_fingerprint_comparison_reports_a_differing_table(archived):
    cluster, _, _ = archived
    before = fingerprints(cluster.dsn(DATABASE))
    with psycopg.connect(cluster.dsn(DATABASE)) as conn:
        conn.execute("update public.races set track_name = 'changed' where id = (select min(id) "
                     "from public.races)")
    after = fingerprints(cluster.dsn(DATABASE))
    differences = compare(before, after)
    assert len(differences) == 1
    assert differences[0].startswith("public.races: source")


def test_logical_backup_encrypted_restored_and_rotated(archived, tmp_path):
    cluster, _, _ = archived
    dump = logical.dump(cluster.dsn(), DATABASE, directory=tmp_path)
    assert dump.read_bytes()[:8] == b"Salted__"  # encrypted, not a PGDMP archive
    assert oct(dump.stat().st_mode & 0o777) == "0o600"
    assert oct(logical.roles_file(dump).stat().st_mode & 0o777) == "0o600"
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("create database hrp_logical_restore")
    try:
        # Usually openssl's "bad decrypt"; ~1 in 256 wrong keys pass the padding check and then
        # pg_restore rejects the garbage: either way the restore fails and says which file.
        with pytest.raises(logical.LogicalBackupError,
                           match=r"restore of .*\.(pgdump|roles\.sql)\.enc failed -- wrong passphrase"):
            logical.restore(dump, cluster.dsn("hrp_logical_restore"), secret="wrong")
        logical.restore(dump, cluster.dsn("hrp_logical_restore"))
        assert compare(fingerprints(cluster.dsn(DATABASE)),
                       fingerprints(cluster.dsn("hrp_logical_restore"))) == []
    finally:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("drop database if exists hrp_logical_restore")
    # Rotation: dumps older than 30 days go, the newest of each database always stays.
    old = []
    for days in (45, 31):
        stamp = (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y%m%dT%H%M%SZ")
        path = tmp_path / f"{DATABASE}-{stamp}{logical.SUFFIX}"
        shutil.copy(dump, path)
        shutil.copy(logical.roles_file(dump), logical.roles_file(path))
        os.utime(path, (time.time() - days * 86400,) * 2)
        old.append(path)
    recent = tmp_path / f"{DATABASE}-20000101T000000Z{logical.SUFFIX}.not-a-dump"
    recent.write_text("ignored: not a dump name")
    deleted = logical.rotate(tmp_path)
    assert sorted(deleted) == sorted(old)
    assert logical.backups(tmp_path) == [dump]
    assert not any(logical.roles_file(path).exists() for path in old), "roles files go with their dumps"
    assert logical.roles_file(dump).exists()


def test_retention_expires_full_backups_after_30_days(archived):
    _, repo, _ = archived
    repo.backup("full")
    labels = [b["label"] for b in repo.info()["backup"]]
    newest_full = [b["label"] for b in repo.info()["backup"] if b["type"] == "full"][-1]
    assert len(labels) >= 3
    repo.run("expire", prefix=("faketime", "+20 days"))  # within 30 days: nothing expires
    assert [b["label"] for b in repo.info()["backup"]] == labels
    repo.run("expire", prefix=("faketime", "+31 days"))  # all older than 30 days: keep the newest
    assert [b["label"] for b in repo.info()["backup"]] == [newest_full]


def test_logical_backup_carries_its_roles_to_a_new_server(archived, tmp_path):
    cluster, _, base = archived
    dump = logical.dump(cluster.dsn(), DATABASE, directory=tmp_path)
    roles = logical.roles_file(dump)
    assert roles.read_bytes()[:8] == b"Salted__"
    fresh = Cluster(base / "fresh-server", shared_buffers_mb=128)
    try:
        fresh.init().start()
        with psycopg.connect(fresh.dsn(), autocommit=True) as conn:
            assert conn.execute("select count(*) from pg_roles "
                                "where rolname like 'hrp%'").fetchone()[0] == 0
            conn.execute("create database hrp_database")
        logical.restore(dump, fresh.dsn(DATABASE))
        assert compare(fingerprints(cluster.dsn(DATABASE)), fingerprints(fresh.dsn(DATABASE))) == []
        with psycopg.connect(fresh.dsn(DATABASE)) as conn:
            assert conn.execute("select tableowner from pg_tables where schemaname = 'public' and "
                                "tablename = 'races'").fetchone()[0] == "hrp_owner"
            assert conn.execute("select has_table_privilege('hrp_app', 'public.races', "
                                "'INSERT')").fetchone()[0]
            assert conn.execute("select rolpassword is null from pg_authid "
                                "where rolname = 'hrp_app'").fetchone()[0], "no password travels"
    finally:
        fresh.destroy()


def test_restore_refuses_a_non_empty_directory_before_touching_it(archived, tmp_path):
    cluster, repo, _ = archived
    target = tmp_path / "busy"
    target.mkdir()
    target.chmod(0o755)
    (target / "keep.txt").write_text("mine")
    before = target.stat()
    with pytest.raises(BackupError, match="restore target .*busy is not empty"):
        restore_copy(repo, target, source_dsn=cluster.dsn(), echo=lambda *_: None)
    # the task refuses it too, before looking for any cluster
    done = subprocess.run([sys.executable, "-m", "invoke", "restore", "--to", str(target)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "is not empty; pick a new directory" in done.stderr
    after = target.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_a_failing_pitr_start_reports_the_servers_fatal_line_at_once(archived):
    cluster, repo, base = archived
    future = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S+00")
    started = time.monotonic()
    try:
        with pytest.raises(BackupError,
                           match="FATAL: +recovery ended before configured recovery target"):
            restore_copy(repo, base / "future", target_time=future, start=True, source_dsn=cluster.dsn(),
                         echo=lambda *_: None)
        assert time.monotonic() - started < 60, "reported when the server died, not after 120 s"
    finally:
        Cluster(base / "future").destroy()


def test_tasks_never_start_a_stopped_cluster():
    state = new_cluster_base("hrp-stopped-")
    cluster = Cluster(state / "pg", shared_buffers_mb=128)
    try:
        cluster.init()  # initialised, stopped
        env = {**os.environ, "HRP_STATE_DIR": str(state), "HRP_BACKUP_PASSPHRASE": SECRET}

        def invoke(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, env=env,
                                  capture_output=True, text=True)
        info = invoke("backup.info")
        assert info.returncode == 0, info.stderr
        assert "the embedded cluster is stopped; using the repository alone" in info.stderr
        for task in ("backup", "backup.logical", "backup.verify"):
            done = invoke(task)
            assert done.returncode == 1, task
            assert "is stopped: `invoke start` first" in done.stderr, task
        assert not cluster.running
    finally:
        cluster.destroy()
        shutil.rmtree(state, ignore_errors=True)


def test_backup_check_passes_on_a_fresh_backup_and_fails_on_an_old_one(archived):
    from hrp_harness.ops.maintenance import check_backups

    _, repo, _ = archived
    result = check_backups(repo)
    assert result["verify"] == "ok" and result["age_hours"] < 1 and result["backups"] >= 1
    with pytest.raises(BackupError, match=r"the newest backup \S+ finished 0\.\d h ago, more than "
                                          r"1e-05 h: did the daily backup run\?"):
        check_backups(repo, max_age_hours=0.00001)


def test_a_restored_copy_runs_no_pg_cron_job(archived):
    _, repo, backup_base = archived
    base = backup_base / "copy-without-cron"
    repo.restore(base / "data")
    copy = start_copy(base)
    try:
        with psycopg.connect(copy.dsn()) as conn:
            preload = conn.execute("show shared_preload_libraries").fetchone()[0]
        assert "pg_cron" not in preload and "pgaudit" in preload
    finally:
        copy.destroy()
