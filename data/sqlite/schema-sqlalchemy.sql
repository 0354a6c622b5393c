-- sqlfluff:dialect:sqlite
-- noqa: disable=CP01,CP02,CP03,CP05
-- The spec's SQLite tables and columns with the declared types SQLAlchemy emits for them (the HRP
-- app's files are written by SQLAlchemy, not by the spec's hand-written DDL): VARCHAR(n) for TEXT,
-- DATETIME for TIMESTAMP, FLOAT for REAL; INTEGER, BOOLEAN, DATE and TEXT as they are. Same
-- columns, same SQLite affinities: `invoke load` takes such a file without a mapping and loads
-- exactly the rows the spec-typed file gives (tests/test_migration.py).
-- `invoke sample --shape sqlalchemy` writes one. SQLite dialect; not applied to PostgreSQL.

CREATE TABLE races (
    id INTEGER NOT NULL,
    race_name VARCHAR(255) NOT NULL,
    race_date DATE,
    track_name VARCHAR(100),
    race_type VARCHAR(50),
    distance FLOAT,
    surface VARCHAR(50),
    weather_conditions TEXT,
    created_at DATETIME,
    updated_at DATETIME,
    PRIMARY KEY (id)
);

CREATE TABLE horses (
    id INTEGER NOT NULL,
    horse_name VARCHAR(100) NOT NULL,
    age INTEGER,
    weight FLOAT,
    jockey VARCHAR(100),
    trainer VARCHAR(100),
    owner VARCHAR(100),
    created_at DATETIME,
    updated_at DATETIME,
    PRIMARY KEY (id)
);

CREATE TABLE predictions (
    id INTEGER NOT NULL,
    race_id INTEGER,
    horse_id INTEGER,
    prediction_value FLOAT,
    confidence FLOAT,
    algorithm_version VARCHAR(20),
    created_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY (race_id) REFERENCES races (id),
    FOREIGN KEY (horse_id) REFERENCES horses (id)
);

CREATE TABLE users (
    id INTEGER NOT NULL,
    username VARCHAR(50) NOT NULL,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at DATETIME,
    last_login DATETIME,
    PRIMARY KEY (id),
    UNIQUE (username),
    UNIQUE (email)
);

CREATE TABLE api_credentials (
    id INTEGER NOT NULL,
    service_name VARCHAR(100) NOT NULL,
    api_key VARCHAR(500) NOT NULL,
    api_secret TEXT,
    endpoint_url VARCHAR(500),
    is_active BOOLEAN,
    created_at DATETIME,
    PRIMARY KEY (id)
);
