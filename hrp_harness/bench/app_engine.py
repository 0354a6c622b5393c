"""The HRP app's access path: a SQLAlchemy 2 engine over psycopg 3 with the spec's pool options
("Connection Pooling"), for a PostgreSQL conninfo or a SQLite file. Used by bench.queries and the
PgBouncer tests; psycopg keeps its defaults (it prepares a statement after 5 executions)."""
from __future__ import annotations

from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

#: The spec's SQLALCHEMY_ENGINE_OPTIONS.
SPEC_POOL_OPTIONS = {"pool_size": 20, "max_overflow": 30, "pool_pre_ping": True, "pool_recycle": 3600,
                     "pool_timeout": 30}


def postgres_engine(conninfo: str, password: str | None = None, **options):
    """Engine for a conninfo (host, port, user, dbname, TLS parameters kept), spec pool options."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import URL

    params = conninfo_to_dict(conninfo)
    url = URL.create("postgresql+psycopg", username=params.pop("user", None),
                     password=password if password is not None else params.pop("password", None),
                     host=params.pop("host", None), port=int(params.pop("port")) if "port" in params else None,
                     database=params.pop("dbname", None), query={k: str(v) for k, v in params.items()})
    return create_engine(url, **{**SPEC_POOL_OPTIONS, **options})


def sqlite_engine(path: Path, **options):
    """Engine for the app's SQLite file (SQLAlchemy 2 pools file databases with a QueuePool, so the
    spec's options apply as they are)."""
    from sqlalchemy import create_engine

    return create_engine(f"sqlite:///{Path(path).resolve()}", **{**SPEC_POOL_OPTIONS, **options})
