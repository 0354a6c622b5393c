"""hrp_harness.platform.cluster: a real PostgreSQL 15 instance per the project's conf/."""

from __future__ import annotations

import socket

import psycopg
import pytest

from helpers import new_cluster_base
from hrp_harness import HarnessError
from hrp_harness.platform.cluster import Cluster
from hrp_harness.platform.conf import render
from hrp_harness.platform.paths import CONF


@pytest.mark.cluster
def test_session_cluster_runs_with_project_conf(pg_cluster):
    with psycopg.connect(pg_cluster.dsn()) as conn:
        got = dict(conn.execute(
            "select name, setting from pg_settings where name in ('password_encryption',"
            " 'logging_collector', 'log_line_prefix', 'pgaudit.log', 'random_page_cost',"
            " 'data_checksums', 'server_encoding')"))
    assert got == {
        "password_encryption": "scram-sha-256",
        "logging_collector": "on",
        "log_line_prefix": "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
        "pgaudit.log": "all",
        "random_page_cost": "1.1",
        "data_checksums": "on",
        "server_encoding": "UTF8",
    }
    installed = sorted(p.name for p in (pg_cluster.datadir / "conf.d").iterdir())
    assert installed == ["audit.conf", "base.conf", "instance.conf", "logging.conf", "tls.conf",
                         "tuning.conf"]


@pytest.mark.cluster
def test_tcp_login_needs_a_scram_password(pg_cluster):
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg_cluster.tcp_dsn("postgres", "postgres", "not-the-password"))


@pytest.mark.unit
def test_pg_hba_gets_one_line_per_client_network(tmp_path):
    values = {**Cluster(tmp_path, port=5999).conf_values(),
              "CLIENT_NETWORKS": "127.0.0.1/32 10.1.0.0/16"}
    hba = render(CONF / "pg_hba.conf.template", values)
    for user in ("hrp_app,hrp_readonly,hrp_backup,hrp_monitor", "all"):
        lines = [line.split() for line in hba.splitlines() if line.startswith("hostssl")]
        networks = [line[3] for line in lines if line[2] == user and line[4] == "scram-sha-256"]
        assert networks == ["127.0.0.1/32", "10.1.0.0/16"], user


@pytest.mark.unit
def test_template_without_a_value_is_an_error(tmp_path):
    template = tmp_path / "x.conf.template"
    template.write_text("port = ${NOPE}\n")
    with pytest.raises(HarnessError, match=r"x\.conf\.template: no value for variable 'NOPE'"):
        render(template, {"CLIENT_NETWORKS": ""})


@pytest.mark.cluster
def test_start_on_a_taken_port_says_so():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cluster = Cluster(new_cluster_base(), port=port, shared_buffers_mb=32)
        try:
            cluster.init()
            with pytest.raises(HarnessError, match=f"port {port} on 127.0.0.1 is taken"):
                cluster.start()
            assert not cluster.running
        finally:
            cluster.destroy()


@pytest.mark.cluster
def test_init_twice_is_refused(pg_cluster):
    with pytest.raises(HarnessError, match="already a PostgreSQL data directory"):
        Cluster(pg_cluster.base).init()


@pytest.mark.unit
@pytest.mark.parametrize("networks, error", [
    (("0.0.0.0/0",), "would let the whole internet try to log in"),
    (("::/0",), "would let the whole internet try to log in"),
    (("127.0.0.1/32 trust",), "is not a CIDR network"),
    (("10.0.0.1/8",), "is not a CIDR network"),  # host bits set: a typo, not a network
    (("0.0.0.0/1", "128.0.0.0/1"), "together cover every IPv4 address"),
    (("::/1", "8000::/1", "10.0.0.0/8"), "together cover every IPv6 address"),
    (("10.0.0.0/8", "12.0.0.0/7"), r"12\.0\.0\.0/7 are wider than /8.*HRP_ALLOW_WIDE_CLIENT_NETWORKS=1"),
])
def test_bad_client_networks_are_refused_before_pg_hba_is_written(tmp_path, monkeypatch, networks, error):
    monkeypatch.delenv("HRP_ALLOW_WIDE_CLIENT_NETWORKS", raising=False)
    with pytest.raises(HarnessError, match=error):
        Cluster(tmp_path, port=5999, client_networks=networks).conf_values()


@pytest.mark.unit
def test_a_wide_client_network_needs_the_explicit_override(tmp_path, monkeypatch):
    networks = ("12.0.0.0/7", "10.0.0.0/8")
    monkeypatch.setenv("HRP_ALLOW_WIDE_CLIENT_NETWORKS", "1")
    assert Cluster(tmp_path, port=5999, client_networks=networks).conf_values()["CLIENT_NETWORKS"] == \
        "12.0.0.0/7 10.0.0.0/8"
    # not even the override lets a set that covers everyone through
    with pytest.raises(HarnessError, match="together cover every IPv4 address"):
        Cluster(tmp_path, port=5999, client_networks=("0.0.0.0/1", "128.0.0.0/1")).conf_values()
