"""High availability and backups: the Patroni cluster over etcd, its fault drills, HAProxy, pgBackRest."""
