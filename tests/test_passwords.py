"""Role passwords: HRP_*_PASSWORD, else generated once into a 0600 secrets file, and set so that
the login works; the secrets file is refused when others can read it."""

from __future__ import annotations

import json
import os
import stat

import psycopg
import pytest

from helpers import TEST_PASSWORDS
from hrp_harness import HarnessError
from hrp_harness.platform.cluster import DATABASE
from hrp_harness.platform.passwords import ROLE_ENV, ensure_role_passwords, role_passwords, set_passwords


@pytest.mark.unit
def test_missing_passwords_are_generated_once_into_a_0600_file(tmp_path):
    first = role_passwords(tmp_path, environ={"HRP_APP_PASSWORD": "from env"})
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["hrp_app"] == ("from env", "HRP_APP_PASSWORD")
    stored = json.loads(path.read_text())
    assert set(stored) == {"hrp_readonly", "hrp_backup", "hrp_monitor"}  # the env one is not written down
    assert all(len(p) >= 40 for p in stored.values())
    assert first["hrp_readonly"] == (stored["hrp_readonly"], str(path))
    again = role_passwords(tmp_path, environ={})
    assert again["hrp_readonly"][0] == stored["hrp_readonly"]  # reused, not regenerated
    assert again["hrp_app"][0] not in ("from env", stored["hrp_readonly"])


@pytest.mark.unit
def test_a_secrets_file_open_to_others_is_refused(tmp_path):
    role_passwords(tmp_path, environ={})
    path = tmp_path / "secrets.json"
    path.chmod(0o644)
    with pytest.raises(HarnessError, match=r"secrets\.json is open to other users \(mode 0644\): chmod 600"):
        role_passwords(tmp_path, environ={})


@pytest.mark.cluster
def test_generated_passwords_are_set_and_log_in(pg_cluster, app_database, tmp_path, monkeypatch):
    for variable in ROLE_ENV.values():
        monkeypatch.delenv(variable)
    lines = []
    try:
        chosen = ensure_role_passwords(app_database, echo=lines.append, state=tmp_path)
        assert lines == [f"password of {role}: SCRAM-SHA-256, from {tmp_path / 'secrets.json'}"
                         for role in ROLE_ENV]
        for role, password in chosen.items():
            with psycopg.connect(pg_cluster.tcp_dsn(DATABASE, role, password)) as conn:
                assert conn.execute("select current_user").fetchone()[0] == role
        assert not any(password in line for line in lines for password in chosen.values())
    finally:  # roles are cluster-wide: give them the session's passwords back
        set_passwords(app_database, TEST_PASSWORDS)


@pytest.mark.cluster
def test_setting_a_password_of_a_missing_role_says_so(empty_db):
    with pytest.raises(HarnessError, match="role 'hrp_nobody' does not exist"):
        set_passwords(empty_db, {"hrp_nobody": "x"})


@pytest.mark.unit
def test_password_file_is_outside_the_repository_by_default_in_tests():
    from hrp_harness.platform.paths import REPO, state_dir

    assert not state_dir().is_relative_to(REPO)
    assert os.environ["HRP_STATE_DIR"] == str(state_dir())
