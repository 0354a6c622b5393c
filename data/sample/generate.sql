-- sqlfluff:dialect:sqlite
-- noqa: disable=RF02,AL03,RF03,AL04
-- (INSERT ... SELECT lists are positional, so their expressions carry no aliases; the CTE chains
-- reference one row source at a time, the word lists are looked up by scalar subqueries.)
-- Sample data generator for the HRP app's SQLite database (SQLite dialect).
-- Fills the tables of data/sqlite/schema.sql with realistic, deterministic rows: every value is
-- a function of (seed, row number) through a 32-bit integer hash (the "hash32" finaliser, xor
-- written as (a | b) - (a & b) since SQLite has no xor), so the same seed always yields the same
-- file. Each hash stage is a MATERIALIZED CTE: SQLite would otherwise inline the expressions and
-- evaluate them many times over (production size in ~2 s instead of ~10 s).
-- requires: the tables of data/sqlite/schema.sql, and a table temp.gen_params(seed, n_races,
-- n_horses, n_predictions, n_users, n_credentials) holding one row
-- (hrp_harness/migration/sample.py).
-- Referential integrity holds: predictions point at existing races and horses, each
-- (race_id, horse_id, algorithm_version) is unique, horse names, usernames, emails and service
-- names are unique. Timestamps are written the way SQLite's CURRENT_TIMESTAMP writes them (UTC).

-- Word lists: pick from a list with
-- `(select w from temp.w_x where i = 1 + r % (select count(*) from temp.w_x))`.
create temp table w_track (i integer primary key, w text);
insert into w_track (w) values
('Ascot'), ('Epsom Downs'), ('Cheltenham'), ('Aintree'), ('Newmarket'), ('York'), ('Goodwood'),
('Churchill Downs'),
('Belmont Park'),
('Santa Anita Park'),
('Saratoga'),
('Keeneland'),
('Del Mar'),
('Longchamp'), ('Chantilly'), ('Flemington'), ('Randwick'), ('Meydan'), ('Tokyo'), ('Sha Tin'),
('Happy Valley'),
('The Curragh'),
('Leopardstown'),
('Doncaster'),
('Sandown Park'),
('Kempton Park'),
('Haydock Park'), ('Gulfstream Park'), ('Woodbine'), ('Deauville');

create temp table w_race_prefix (i integer primary key, w text);
insert into w_race_prefix (w) values
('Golden'), ('Royal'), ('King''s'), ('Queen''s'), ('Champion'), ('Spring'), ('Summer'), ('Autumn'),
('Winter'), ('Silver'), ('Diamond'), ('Coronation'), ('Jubilee'), ('Sprint'), ('Breeders'''),
('Juvenile'), ('Classic'), ('Heritage'), ('Festival'), ('Derby Trial');

create temp table w_race_kind (i integer primary key, w text);
insert into w_race_kind (w) values
('Stakes'), ('Handicap'), ('Cup'), ('Trophy'), ('Maiden Stakes'), ('Novice Hurdle'), ('Chase'),
('Plate'), ('Mile'), ('Classic'), ('Sprint'), ('Conditions Stakes');

create temp table w_race_type (i integer primary key, w text);
insert into w_race_type (w) values
('flat'), ('flat'), ('flat'), ('thoroughbred'), ('thoroughbred'), ('hurdle'), ('steeplechase'),
('harness'), ('quarter_horse');

create temp table w_surface (i integer primary key, w text);
insert into w_surface (w) values
('turf'), ('turf'), ('turf'), ('dirt'), ('dirt'), ('dirt'), ('synthetic'), ('sand'), ('snow');

create temp table w_weather (i integer primary key, w text, going text);
insert into w_weather (w, going) values
('sunny', 'firm'), ('sunny', 'good to firm'), ('cloudy', 'good'), ('overcast', 'good'),
('light rain', 'good to soft'), ('rain', 'soft'), ('heavy rain', 'heavy'), ('fog', 'good'),
('windy', 'good to firm'), ('snow', 'heavy');

create temp table w_horse_a (i integer primary key, w text);
insert into w_horse_a (w) values
('Silver'), ('Golden'), ('Midnight'), ('Dancing'), ('Royal'), ('Wild'), ('Brave'), ('Lucky'),
('Northern'), ('Southern'), ('Desert'), ('Ocean'), ('Thunder'), ('Shadow'), ('Crimson'), ('Velvet'),
('Iron'), ('Rapid'), ('Secret'), ('Frosted'), ('Blazing'), ('Quiet'), ('Noble'), ('Storm'),
('Misty'), ('Sea'), ('Star'), ('Copper'), ('Highland'), ('Gallant'), ('Morning'), ('Evening'),
('Emerald'), ('Scarlet'), ('Arctic'), ('Flying'), ('Dark'), ('Bright'), ('Sacred'), ('Proud'),
('Rising'), ('Distant'), ('Hidden'), ('Electric'), ('Majestic'), ('Sudden'), ('Little'), ('Big'),
('Gentle'), ('Rebel'), ('Celtic'), ('Imperial'), ('Cosmic'), ('Lunar'), ('Solar'), ('Winter'),
('Summer'), ('Autumn'), ('Spring'), ('Sapphire');

create temp table w_horse_b (i integer primary key, w text);
insert into w_horse_b (w) values
('Storm'), ('Dancer'), ('Arrow'), ('Legend'), ('Spirit'), ('Runner'), ('Prince'), ('Princess'),
('Warrior'), ('Dream'), ('Flame'), ('Comet'), ('Whisper'), ('Knight'), ('Echo'), ('Falcon'),
('Melody'), ('Glory'), ('Rocket'), ('Tiger'), ('Wind'), ('River'), ('Crown'), ('Jewel'), ('Hero'),
('Rose'), ('Blaze'), ('Charm'), ('Quest'), ('Voyager'), ('Destiny'), ('Harmony'), ('Express'),
('Rhythm'), ('Empire'), ('Bandit'), ('Mirage'), ('Phantom'), ('Sultan'), ('Duchess'), ('Captain'),
('Ranger'), ('Song'), ('Victory'), ('Thunder'), ('Horizon'), ('Oracle'), ('Pioneer'), ('Cavalier'),
('Tempest'), ('Sparrow'), ('Eagle'), ('Lion'), ('Wolf'), ('Hawk'), ('Breeze'), ('Fortune'),
('Gambler'), ('Monarch'), ('Diva');

create temp table w_horse_suffix (i integer primary key, w text);
insert into w_horse_suffix (w) values
(''), (' (IRE)'), (' (GB)'), (' (FR)'), (' (USA)'), (' (AUS)'), (' (NZ)'), (' (GER)'), (' (JPN)'),
(' (ARG)'), (' (CAN)'), (' (SAF)'), (' (ITY)'), (' (BRZ)');

create temp table w_first (i integer primary key, w text);
insert into w_first (w) values
('James'), ('Oisin'), ('Frankie'), ('Ryan'), ('William'), ('Hollie'), ('Rachael'), ('Tom'),
('Christophe'), ('Mickael'), ('John'), ('Joel'), ('Irad'), ('Flavien'), ('Javier'), ('Luis'),
('Mike'), ('Kieren'), ('Andrea'), ('Olivier'), ('Paul'), ('Aidan'), ('Joseph'), ('Charlie'),
('Roger'), ('Mark'), ('Richard'), ('Sarah'), ('Emma'), ('Laura'), ('Hayley'), ('Daniel'),
('Sean'), ('David'), ('Jamie'), ('Harry'), ('Rossa'), ('Silvestre'), ('Yutaka'), ('Hugh');

create temp table w_last (i integer primary key, w text);
insert into w_last (w) values
('Doyle'), ('Murphy'), ('Dettori'), ('Moore'), ('Buick'), ('Blackmore'), ('Marquand'),
('Soumillon'), ('Barzalona'), ('Velazquez'), ('Rosario'), ('Ortiz'), ('Prat'), ('Castellano'),
('Saez'), ('Smith'), ('Fallon'), ('Atzeni'), ('Peslier'), ('Mullins'), ('O''Brien'), ('Appleby'),
('Gosden'), ('Varian'), ('Johnston'), ('Hannon'), ('Walsh'), ('Henderson'), ('Nicholls'),
('Elliott'), ('de Bromhead'), ('Haggas'), ('Stoute'), ('Cecil'), ('Baffert'), ('Pletcher'),
('Brown'), ('Take'), ('Bowman'), ('McDonald');

create temp table w_owner_kind (i integer primary key, w text);
insert into w_owner_kind (w) values
(' Racing'), (' Bloodstock'), (' Thoroughbreds'), (' Stud'), (' Partnership'), (' Syndicate'),
(' Family'), (' Stables');

create temp table w_algorithm (i integer primary key, w text);
insert into w_algorithm (w) values
('v1.0.0'), ('v1.2.3'), ('v2.0.0'), ('v2.1.0'), ('v2.1.1'), ('v3.0.0-rc1'), ('v3.0.0'),
('xgb-2024.06'), ('lgbm-2025.01'), ('ensemble-4');

create temp table w_domain (i integer primary key, w text);
insert into w_domain (w) values
('example.com'), ('example.org'), ('example.net'), ('mail.example.com'), ('racing.example'),
('turf.example'), ('punters.example'), ('hrp.example');

create temp table w_service (i integer primary key, w text, host text);
insert into w_service (w, host) values
('racing_api', 'api.theracingapi.example'), ('betfair_exchange', 'api.betfair.example'),
('openweathermap', 'api.openweathermap.example'), ('timeform', 'api.timeform.example'),
('equibase', 'api.equibase.example'), ('racing_post', 'api.racingpost.example'),
('tab_au', 'api.tab.example'), ('jra_data', 'api.jra.example'),
('hkjc', 'api.hkjc.example'), ('sporting_life', 'api.sportinglife.example');

-- Row hashes, computed once for every table: h = hash32(seed, salt, n) for n = 1 .. the table's
-- row count, each table with its own salt. The recursive sequence starts at 1 whatever the count.
create temp table gen_hash (salt integer, n integer, h integer);

insert into gen_hash (salt, n, h)
with recursive counts (salt, total) as (
    values
    (11, (select n_races from gen_params)),
    (23, (select n_horses from gen_params)),
    (37, (select n_predictions from gen_params)),
    (41, (select n_users from gen_params)),
    (53, (select n_credentials from gen_params))
),

seq (n) as (
    select 1
    union all
    select n + 1 from seq
    where n < (select max(total) from counts)
),

h0 as materialized (
    select
        counts.salt,
        seq.n,
        (seq.n * 2654435761 + p.seed * 40503 + counts.salt * 2971215073) % 4294967296 as x
    from counts
    inner join seq on seq.n <= max(counts.total, 1)
    cross join gen_params as p
),

h1 as materialized (
    select
        salt,
        n,
        (((x | (x >> 16)) - (x & (x >> 16))) * 73244475) % 4294967296 as x
    from h0
),

h2 as materialized (
    select
        salt,
        n,
        (((x | (x >> 16)) - (x & (x >> 16))) * 73244475) % 4294967296 as x
    from h1
)

select
    salt,
    n,
    (x | (x >> 16)) - (x & (x >> 16))
from h2;

-- races ---------------------------------------------------------------------------------------
insert into races (
    id, race_name, race_date, track_name, race_type, distance, surface, weather_conditions,
    created_at, updated_at
)
with h as materialized (
    select
        n,
        h
    from gen_hash
    where salt = 11
),

r as materialized (
    select
        n,
        (h * 48271) % 2147483647 as r1,
        (h * 69621) % 2147483647 as r2,
        (h * 16807) % 2147483647 as r3,
        (h * 39373) % 2147483647 as r4,
        (h * 40692) % 2147483647 as r5,
        (h * 40014) % 2147483647 as r6,
        (h * 630360016) % 2147483647 as r7,
        (h * 742938285) % 2147483647 as r8
    from h
),

v as (
    select
        n,
        (
            select w from w_track
            where i = 1 + r1 % (select count(*) from w_track)
        ) as track,
        (
            select w from w_race_prefix
            where i = 1 + r2 % (select count(*) from w_race_prefix))
            as pfx,
        (
            select w from w_race_kind
            where i = 1 + r3 % (select count(*) from w_race_kind)
        ) as kind,
        date('2015-01-01', '+' || (r4 % 3950) || ' days') as race_date,
        (
            select w from w_race_type
            where i = 1 + r5 % (select count(*) from w_race_type))
            as race_type,
        round((5 + r6 % 20) * 201.168 + (r6 % 3) * 100.584, 2) as distance,
        (
            select w from w_surface
            where i = 1 + r7 % (select count(*) from w_surface)
        ) as surface,
        1 + r8 % (select count(*) from w_weather) as wx,
        r1,
        r2,
        r3,
        r8
    from r
)

select
    n,
    track || ' ' || pfx || ' ' || kind || ' (Race ' || (1 + r3 % 9) || ')',
    race_date,
    track,
    race_type,
    distance,
    surface,
    (
        select
            json_object(
                'condition', w, 'going', going, 'temperature_c', -5 + r8 % 38,
                'humidity_pct', 30 + r2 % 70, 'wind_kph', round((r1 % 600) / 10.0, 1)
            )
        from w_weather
        where i = wx
    ),
    datetime(race_date, '-' || (7 + r1 % 60) || ' days', '+' || (r2 % 86400) || ' seconds'),
    datetime(race_date, '+' || (r3 % 86400) || ' seconds')
from v;

-- horses: names are a bijection of the row number onto 60 x 60 x 14 = 50,400 combinations ---------
insert into horses (
    id, horse_name, age, weight, jockey, trainer, owner, created_at, updated_at
)
with h as materialized (
    select
        n,
        h
    from gen_hash
    where salt = 23
),

r as (
    select
        n,
        ((n - 1) * 7919 + (select seed from gen_params) * 31) % 50400 as k,
        (h * 48271) % 2147483647 as r1,
        (h * 69621) % 2147483647 as r2,
        (h * 16807) % 2147483647 as r3,
        (h * 39373) % 2147483647 as r4,
        (h * 40692) % 2147483647 as r5,
        (h * 40014) % 2147483647 as r6,
        (h * 630360016) % 2147483647 as r7,
        (h * 742938285) % 2147483647 as r8
    from h
)

select
    n,
    (
        select w from w_horse_a
        where i = 1 + k % 60
    )
    || ' ' || (
        select w from w_horse_b
        where i = 1 + (k / 60) % 60
    )
    || (
        select w from w_horse_suffix
        where i = 1 + k / 3600
    )
    || case when n > 50400 then ' ' || (1 + (n - 1) / 50400) else '' end,
    2 + r1 % 11,
    round(380 + r2 % 250 + (r3 % 10) / 10.0, 1),
    (
        select w from w_first
        where i = 1 + r4 % 40
    )
    || ' '
    || (
        select w from w_last
        where i = 1 + r5 % 40
    ),
    -- trainers: 1,600 names per 50,400 horses, numbered beyond (as the horse names): a stable
    -- keeps ~31 horses at every size, so a larger sample has more trainers, not larger stables
    (
        select w from w_first
        where i = 1 + r6 % 40
    )
    || ' '
    || (
        select w from w_last
        where i = 1 + r7 % 40
    )
    || case when n > 50400 then ' ' || (1 + (n - 1) / 50400) else '' end,
    case
        when r8 % 3 = 0
            then (
                select w from w_last
                where i = 1 + r1 % 40
            )
            || (
                select w from w_owner_kind
                where i = 1 + r2 % 8
            )
        else
            (
                select w from w_first
                where i = 1 + r3 % 40) || ' ' || (
                select w from w_last
                where i = 1 + r8 % 40
            )
    end,
    datetime('2014-06-01', '+' || (r4 % 3900) || ' days', '+' || (r5 % 86400) || ' seconds'),
    datetime('2024-06-01', '+' || (r6 % 500) || ' days', '+' || (r7 % 86400) || ' seconds')
from r;

-- predictions: ceil(P / R) per race, horses spread by a stride coprime to the horse count -------
insert into predictions (
    id, race_id, horse_id, prediction_value, confidence, algorithm_version, created_at
)
with h as materialized (
    select
        n,
        h
    from gen_hash
    where salt = 37
),

k as (
    select
        n,
        h,
        (n - 1) / per_race + 1 as race_id,
        (n - 1) % per_race as j
    from h, (
        select (n_predictions + n_races - 1) / n_races as per_race from gen_params
    ) as pr
)

select
    n,
    race_id,
    (race_id * 7907 + j * 104729) % (select n_horses from gen_params) + 1,
    round(((h * 48271) % 2147483647 % 1000000) / 1000000.0, 6),
    round(((h * 69621) % 2147483647 % 10001) / 10000.0, 4),
    (
        select w from w_algorithm
        where i = 1 + (h * 16807) % 2147483647 % 10
    ),
    (
        select
            datetime(
                r.race_date, '-' || (1 + (h * 39373) % 2147483647 % 14) || ' days',
                '+' || ((h * 40692) % 2147483647 % 86400) || ' seconds'
            )
        from races as r
        where r.id = k.race_id
    )
from k;

-- users ------------------------------------------------------------------------------------------
insert into users (id, username, email, password_hash, created_at, last_login)
with h as materialized (
    select
        n,
        h
    from gen_hash
    where salt = 41
),

v as (
    select
        n,
        h,
        lower((
            select w from w_first
            where i = 1 + (h * 48271) % 2147483647 % 40
        ))
        || '.'
        || lower(replace((
            select w from w_last
            where i = 1 + (h * 69621) % 2147483647 % 40
        ), '''', ''))
        || n as uname,
        datetime(
            '2019-01-01', '+' || ((h * 16807) % 2147483647 % 2000) || ' days',
            '+' || ((h * 39373) % 2147483647 % 86400) || ' seconds'
        ) as created
    from h
)

select
    n,
    replace(uname, ' ', ''),
    replace(
        uname, ' ', '') || '@' || (
        select w from w_domain
        where i = 1 + h % 8
    ),
    'pbkdf2:sha256:600000$'
    || printf('%08x%08x', (h * 40692) % 2147483647, (h * 40014) % 2147483647)
    || '$' || printf(
        '%08x%08x%08x%08x%08x%08x%08x%08x',
        (h * 48271) % 2147483647, (h * 69621) % 2147483647, (h * 16807) % 2147483647,
        (h * 39373) % 2147483647, (h * 630360016) % 2147483647, (h * 742938285) % 2147483647,
        (h * 950706376) % 2147483647, (h * 1226874159) % 2147483647
    ),
    created,
    case
        when h % 10 = 0 then null
        else datetime(created, '+' || ((h * 62089911) % 2147483647 % 30000000) || ' seconds')
    end
from v;

-- api_credentials --------------------------------------------------------------------------------
insert into api_credentials (
    id, service_name, api_key, api_secret, endpoint_url, is_active, created_at
)
with h as materialized (
    select
        n,
        h
    from gen_hash
    where salt = 53
)

select
    n,
    s.w || case when n > 10 then '_' || n else '' end,
    'key_'
    || printf(
        '%08x%08x%08x', (h * 48271) % 2147483647, (h * 69621) % 2147483647, (h * 16807) % 2147483647
    ),
    case
        when h % 4 = 0 then null
        else 'sec_' || printf('%08x%08x', (h * 39373) % 2147483647, (h * 40692) % 2147483647)
    end,
    'https://' || s.host || '/v' || (1 + h % 3),
    case when h % 5 = 0 then 0 else 1 end,
    datetime('2020-01-01', '+' || ((h * 40014) % 2147483647 % 1800) || ' days')
from h inner join w_service as s on s.i = 1 + (h.n - 1) % 10;
