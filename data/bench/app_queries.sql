-- app_queries: the HRP app's queries as bench.queries runs them through SQLAlchemy (text(), bind
-- parameters :name) on both engines: the spec's simple SELECT by key and complex JOINs (its views
-- for one race and one trainer), the app's hot queries, and its single-row INSERT.
-- One block per query, opened by `-- name: <query>`; `-- name: <query> sqlite` gives the SQLite
-- text where the app's SQLite file needs another (it has no views; SQLAlchemy's ilike() renders
-- as LIKE there, case-insensitive for ASCII as ILIKE).
-- requires: the spec's tables and views (PostgreSQL), the spec's SQLite schema (SQLite)

-- name: point_select
select
    id,
    race_id,
    horse_id,
    prediction_value,
    confidence,
    algorithm_version,
    created_at
from predictions
where id = :prediction_id;

-- name: race_join
select
    id,
    race_name,
    race_date,
    track_name,
    prediction_count,
    avg_confidence,
    max_confidence,
    min_confidence
from race_statistics
where id = :race_id;

-- name: race_join sqlite
select
    r.id,
    r.race_name,
    r.race_date,
    r.track_name,
    count(p.id) as prediction_count,
    avg(p.confidence) as avg_confidence,
    max(p.confidence) as max_confidence,
    min(p.confidence) as min_confidence
from races as r
left join predictions as p on r.id = p.race_id
where r.id = :race_id
group by r.id, r.race_name, r.race_date, r.track_name;

-- name: trainer_join
select
    id,
    horse_name,
    total_predictions,
    avg_confidence,
    max_confidence,
    high_confidence_predictions,
    age,
    weight,
    jockey,
    trainer
from horse_performance_summary
where trainer = :trainer;

-- name: trainer_join sqlite
select
    h.id,
    h.horse_name,
    count(p.id) as total_predictions,
    avg(p.confidence) as avg_confidence,
    max(p.confidence) as max_confidence,
    count(case when p.confidence > 0.8 then 1 end) as high_confidence_predictions,
    h.age,
    h.weight,
    h.jockey,
    h.trainer
from horses as h
left join predictions as p on h.id = p.horse_id
where h.trainer = :trainer
group by h.id, h.horse_name, h.age, h.weight, h.jockey, h.trainer;

-- name: upcoming_races
select
    id,
    race_name,
    race_date,
    track_name,
    race_type,
    distance
from races
where race_date >= :from_date
order by race_date, id
limit 20;

-- name: race_predictions
select
    p.id,
    p.horse_id,
    h.horse_name,
    p.prediction_value,
    p.confidence,
    p.algorithm_version
from predictions as p
inner join horses as h on p.horse_id = h.id
where p.race_id = :race_id
order by p.confidence desc;

-- name: login_username
select
    id,
    username,
    email,
    password_hash
from users
where username = :username;

-- name: login_email
select
    id,
    username,
    email,
    password_hash
from users
where email = :email;

-- name: service_credentials
select
    service_name,
    api_key,
    api_secret,
    endpoint_url
from api_credentials
where service_name = :service_name and is_active;

-- name: horse_search
select
    id,
    horse_name,
    trainer
from horses
where horse_name ilike :pattern
-- the first 20 matches in no order (a search box's suggestions): an ORDER BY horse_name would walk
-- the name's btree index instead of the trigram index
limit 20; -- noqa: AM09

-- name: horse_search sqlite
select
    id,
    horse_name,
    trainer
from horses
where horse_name like :pattern
limit 20; -- noqa: AM09

-- name: insert_prediction
insert into predictions (race_id, horse_id, prediction_value, confidence, algorithm_version)
values (:race_id, :horse_id, :prediction_value, :confidence, :algorithm_version);
