"""HAProxy's configuration (conf/haproxy.cfg.template) for a cluster's ports, checked by HAProxy
itself (`haproxy -c`): the three listeners, Patroni's checks, standby2 first for reports. No cluster."""

from __future__ import annotations

import subprocess

import pytest

from hrp_harness.ha.patroni import NODES, HaCluster
from hrp_harness.ha.haproxy import REPORTS_MEMBER, HaProxy

pytestmark = pytest.mark.unit


def test_rendered_config_is_valid_and_routes_by_patroni_role(tmp_path):
    cluster = HaCluster(tmp_path / "ha")
    cluster.meta = {"etcd": {"client_port": 2379, "peer_port": 2380},
                    "nodes": {n: {"pg_port": 5432 + i, "rest_port": 8008 + i} for i, n in enumerate(NODES)}}
    proxy = HaProxy(cluster)
    proxy.ports = {"read_write": 6000, "read_only": 6001, "reports": 6002}
    text = proxy.render()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    sections = {block.split()[0]: block for block in text.split("\nlisten ")[1:]}
    assert set(sections) == {"read_write", "read_only", "reports"}
    assert "bind 127.0.0.1:6000" in sections["read_write"] and "GET /primary" in sections["read_write"]
    assert "GET /replica" in sections["read_only"] and "balance roundrobin" in sections["read_only"]
    for i, name in enumerate(NODES):  # every member, its PostgreSQL port checked on its REST port
        assert f"server {name} 127.0.0.1:{5432 + i} check port {8008 + i}" in sections["read_write"]
    reports = [line.split() for line in sections["reports"].splitlines() if "server " in line]
    assert reports[0][1] == REPORTS_MEMBER and "backup" not in reports[0]
    assert all(line[-1] == "backup" for line in reports[1:])
    assert "on-marked-down shutdown-sessions" in text
