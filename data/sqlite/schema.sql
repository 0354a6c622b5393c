-- sqlfluff:dialect:sqlite
-- noqa: disable=CP01,CP03,CP05
-- The HRP app's SQLite schema, exactly as the spec gives it (postgresql-migration-spec.md,
-- "SQLite Schema" of each table). It is the contract of the migration: the loader's source schema
-- check compares a source file's tables and columns against these, and the sample generator
-- (data/sample/generate.sql) creates its files from it. SQLite dialect; not applied to PostgreSQL.
-- Verbatim from the spec, hence in upper case (the capitalisation rules are disabled above).

CREATE TABLE races (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    race_name TEXT NOT NULL,
    race_date DATE,
    track_name TEXT,
    race_type TEXT,
    distance REAL,
    surface TEXT,
    weather_conditions TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE horses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    horse_name TEXT NOT NULL,
    age INTEGER,
    weight REAL,
    jockey TEXT,
    trainer TEXT,
    owner TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    race_id INTEGER,
    horse_id INTEGER,
    prediction_value REAL,
    confidence REAL,
    algorithm_version TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (race_id) REFERENCES races (id),
    FOREIGN KEY (horse_id) REFERENCES horses (id)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT UNIQUE NOT NULL,
    email TEXT UNIQUE NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    last_login TIMESTAMP
);

CREATE TABLE api_credentials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_name TEXT NOT NULL,
    api_key TEXT NOT NULL,
    api_secret TEXT,
    endpoint_url TEXT,
    is_active BOOLEAN DEFAULT 1,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
