"""TLS material: the generated CA and server certificate, and real certificates from the
environment installed with the modes PostgreSQL demands and served after a reload."""

from __future__ import annotations

import stat
import subprocess

import psycopg
import pytest

from hrp_harness import HarnessError
from hrp_harness.platform import tls
from hrp_harness.platform.server_user import is_root, server_user


def openssl_text(path) -> str:
    return subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.cluster
def test_generated_server_certificate_is_for_loopback_and_signed_by_the_ca(pg_cluster):
    cert, key, ca = (pg_cluster.tls_dir / n for n in ("server.crt", "server.key", "ca.crt"))
    text = openssl_text(cert)
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    if is_root():
        import pwd

        assert pwd.getpwuid(key.stat().st_uid).pw_name == server_user()
    with psycopg.connect(pg_cluster.dsn()) as conn:
        got = dict(conn.execute("select name, setting from pg_settings where name in"
                                " ('ssl', 'ssl_min_protocol_version', 'ssl_cert_file')"))
    assert got == {"ssl": "on", "ssl_min_protocol_version": "TLSv1.3", "ssl_cert_file": str(cert)}


@pytest.mark.cluster
def test_real_certificates_from_the_environment_are_installed_and_served(
        pg_cluster, app_database, tmp_path, monkeypatch):
    from helpers import TEST_PASSWORDS

    real = tmp_path / "real"
    real.mkdir()
    tls.generate(real)  # stands in for certificates from a real CA
    monkeypatch.setenv(tls.ENV_CERT, str(real / "server.crt"))
    monkeypatch.setenv(tls.ENV_KEY, str(real / "server.key"))
    monkeypatch.setenv(tls.ENV_CA, str(real / "ca.crt"))
    pg_cluster.install_conf()
    pg_cluster.reload()
    assert (pg_cluster.tls_dir / "server.crt").read_bytes() == (real / "server.crt").read_bytes()
    assert stat.S_IMODE((pg_cluster.tls_dir / "server.key").stat().st_mode) == 0o600
    # the client trusting only the new CA is served the new certificate (reload takes effect on
    # new connections)
    dsn = pg_cluster.tcp_dsn("hrp_database", "hrp_app", TEST_PASSWORDS["hrp_app"],
                             sslrootcert=str(real / "ca.crt"))
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]


@pytest.mark.unit
def test_half_a_real_certificate_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(tls.ENV_CERT, str(tmp_path / "server.crt"))
    monkeypatch.delenv(tls.ENV_KEY, raising=False)
    with pytest.raises(HarnessError, match="set both HRP_TLS_CERT_FILE and HRP_TLS_KEY_FILE"):
        tls.install(tmp_path / "tls")


@pytest.mark.unit
def test_a_missing_real_certificate_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(tls.ENV_CERT, str(tmp_path / "nope.crt"))
    monkeypatch.setenv(tls.ENV_KEY, str(tmp_path / "nope.key"))
    with pytest.raises(HarnessError, match=r"HRP_TLS_CERT_FILE=.*nope\.crt: no such file"):
        tls.install(tmp_path / "tls")
