"""HRP PostgreSQL platform harness: thin orchestration around PostgreSQL, Patroni and pgBackRest."""
