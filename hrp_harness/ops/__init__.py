"""Operations on a running database: maintenance, monitoring, logs, logical backups, anonymised copies."""
