-- The per-column rules of the SQLite -> PostgreSQL transform (issue 3), one view per source table:
-- each staged (all-text) row -> the typed values of the target table's columns, plus
--   reason  NULL when every rule passed, else the failed rules ("column: what") joined by '; '
--   norms   the documented lossless normalisations applied to this row (counted per rule)
-- REAL -> DECIMAL(p,s) rounds half away from zero to the target scale; it counts as the
-- normalisation real_rounded_to_scale only when the double carries more than `s` decimals in its 15
-- significant digits (binary noise such as 0.17974299999999999 for 0.179743 is not counted).
-- Duplicates and orphans depend on other rows and are decided later (functions/migration_load.sql).
-- The declared source time zone is the setting hrp.source_timezone (set by the loader,
-- default UTC).
-- README.md "Migration from SQLite" has the same rules as a table; keep the two in step.
-- requires: schema/0010_migration.sql, functions/migration_parse.sql, the spec's tables and enums.
-- Repeatable (CREATE OR REPLACE).

create or replace view migration.races_mapped as
select
    p.id as source_id,
    p.id_n as id,
    case when length(p.race_name) <= 255 then p.race_name end::varchar(255) as race_name,
    p.race_date_d as race_date,
    case when length(p.track_name) <= 100 then p.track_name end::varchar(100) as track_name,
    p.race_type_l::race_type_enum as race_type,
    case
        when round(p.distance_n, 2) > 0 and round(p.distance_n, 2) < 10000
            then round(p.distance_n, 2)
    end::numeric(6, 2
    ) as distance,
    p.surface_l::surface_enum as surface,
    case
        when p.weather_json is not null then p.weather_json
        when ltrim(p.weather_conditions) !~ '^[\[{"]' then to_jsonb(p.weather_conditions)
    end as weather_conditions,
    migration.parse_ts(p.created_at, p.created_kind, p.tz) as created_at,
    migration.parse_ts(p.updated_at, p.updated_kind, p.tz) as updated_at,
    nullif(concat_ws(
        '; ',
        case when p.id_n is null then 'id: not an integer' end,
        case
            when p.race_name is null then 'race_name: NULL in a NOT NULL column'
            when length(p.race_name) > 255 then 'race_name: longer than 255 characters'
        end,
        case
            when p.race_date is null then 'race_date: NULL in a NOT NULL column'
            when p.race_date_d is null then 'race_date: not a calendar date YYYY-MM-DD'
        end,
        case when length(p.track_name) > 100 then 'track_name: longer than 100 characters' end,
        case
            when p.race_type is not null and p.race_type_l is null
                then 'race_type: unknown label'
        end,
        case
            when
                p.distance is not null and p.distance_n is null
                then 'distance: not a finite number'
            when round(p.distance_n, 2) <= 0 then 'distance: not > 0 (check)'
            when round(p.distance_n, 2) >= 10000 then 'distance: out of range of decimal(6,2)'
        end,
        case when p.surface is not null and p.surface_l is null then 'surface: unknown label' end,
        case
            when
                p.weather_conditions is not null and p.weather_json is null
                and ltrim(p.weather_conditions) ~ '^[\[{"]'
                then
                    case
                        when migration.is_json(p.weather_conditions)
                            then
                                'weather_conditions: JSON with a \u0000 escape, which jsonb '
                                || 'cannot hold'
                        else 'weather_conditions: malformed JSON'
                    end
        end,
        migration.ts_reason('created_at', p.created_at, p.created_kind),
        migration.ts_reason('updated_at', p.updated_at, p.updated_kind)
    ), '') as reason,
    array_remove(array[
        case
            when
                p.race_type_l is not null and p.race_type <> p.race_type_l
                then 'enum_label_case_folded'
        end,
        case
            when p.surface_l is not null and p.surface <> p.surface_l then 'enum_label_case_folded'
        end,
        case
            when
                p.distance_n <> round(p.distance_n, 2)
                and p.distance_n::float8::numeric <> round(p.distance_n, 2)
                then 'real_rounded_to_scale'
        end,
        case
            when
                p.weather_conditions is not null and p.weather_json is null
                and ltrim(p.weather_conditions) !~ '^[\[{"]' then 'weather_text_as_json_string'
        end
    ], null) || migration.ts_norms(p.created_kind, p.updated_kind) as norms
from (
    select
        s.*,
        s.id::bigint as id_n,  -- staged SQLite rowids: always integers
        migration.parse_date(s.race_date) as race_date_d,
        case
            when s.race_type = any(e.race_types) then s.race_type
            when lower(btrim(s.race_type)) = any(e.race_types) then lower(btrim(s.race_type))
        end as race_type_l,
        migration.parse_num(s.distance) as distance_n,
        case
            when s.surface = any(e.surfaces) then s.surface
            when lower(btrim(s.surface)) = any(e.surfaces) then lower(btrim(s.surface))
        end as surface_l,
        case
            when s.weather_conditions is not null then migration.try_jsonb(s.weather_conditions)
        end
            as weather_json,
        migration.ts_kind_fast(s.created_at, e.fast_on) as created_kind,
        migration.ts_kind_fast(s.updated_at, e.fast_on) as updated_kind,
        current_setting('hrp.source_timezone') as tz
    from migration_stage.races as s
    -- the enums' labels, read once per query (enum_range per row costs ~2 us a call): ARRAY(...)
    -- of an uncorrelated subquery is an init plan, evaluated once; so is the loader's fast path
    -- setting (see ts_kind_fast)
    cross join (
        select
            array(select unnest(enum_range(null::race_type_enum))::text) as race_types,
            array(select unnest(enum_range(null::surface_enum))::text) as surfaces,
            (select coalesce(current_setting('hrp.map_fast', true) = 'on', false)) as fast_on
    ) as e
    -- one evaluation of each parser per row (no flattening)
    offset 0  -- noqa: AM09
) as p;
comment on view migration.races_mapped is
'Staged SQLite races -> typed races columns, with the failed rules (reason) and
normalisations (norms).';

create or replace view migration.horses_mapped as
select
    p.id as source_id,
    p.id_n as id,
    case when length(p.horse_name) <= 100 then p.horse_name end::varchar(100) as horse_name,
    case when p.age_n between 2 and 20 then p.age_n end::smallint as age,
    case when round(p.weight_n, 1) between 300 and 700 then round(p.weight_n, 1) end::numeric(5, 1)
        as weight,
    case when length(p.jockey) <= 100 then p.jockey end::varchar(100) as jockey,
    case when length(p.trainer) <= 100 then p.trainer end::varchar(100) as trainer,
    case when length(p.owner) <= 100 then p.owner end::varchar(100) as owner,  -- noqa: RF04
    migration.parse_ts(p.created_at, p.created_kind, p.tz) as created_at,
    migration.parse_ts(p.updated_at, p.updated_kind, p.tz) as updated_at,
    nullif(concat_ws(
        '; ',
        case when p.id_n is null then 'id: not an integer' end,
        case
            when p.horse_name is null then 'horse_name: NULL in a NOT NULL column'
            when length(p.horse_name) > 100 then 'horse_name: longer than 100 characters'
        end,
        case
            when p.age is not null and p.age_n is null then 'age: not an integer'
            when p.age_n not between 2 and 20 then 'age: not between 2 and 20 (check)'
        end,
        case
            when p.weight is not null and p.weight_n is null then 'weight: not a finite number'
            when
                round(p.weight_n, 1) not between 300 and 700
                then 'weight: not between 300 and 700 (check)'
        end,
        case when length(p.jockey) > 100 then 'jockey: longer than 100 characters' end,
        case when length(p.trainer) > 100 then 'trainer: longer than 100 characters' end,
        case when length(p.owner) > 100 then 'owner: longer than 100 characters' end,
        migration.ts_reason('created_at', p.created_at, p.created_kind),
        migration.ts_reason('updated_at', p.updated_at, p.updated_kind)
    ), '') as reason,
    array_remove(array[
        case
            when
                p.weight_n <> round(p.weight_n, 1)
                and p.weight_n::float8::numeric <> round(p.weight_n, 1)
                then 'real_rounded_to_scale'
        end
    ], null) || migration.ts_norms(p.created_kind, p.updated_kind) as norms
from (
    select
        s.*,
        s.id::bigint as id_n,  -- staged SQLite rowids: always integers
        migration.parse_int(s.age) as age_n,
        migration.parse_num(s.weight) as weight_n,
        migration.ts_kind_fast(s.created_at, f.fast_on) as created_kind,
        migration.ts_kind_fast(s.updated_at, f.fast_on) as updated_kind,
        current_setting('hrp.source_timezone') as tz
    from migration_stage.horses as s
    -- the loader's fast path setting (see ts_kind_fast), read once per query (an init plan)
    cross join (
        select (select coalesce(current_setting('hrp.map_fast', true) = 'on', false)) as fast_on
    ) as f
    -- one evaluation of each parser per row (no flattening)
    offset 0  -- noqa: AM09
) as p;
comment on view migration.horses_mapped is
'Staged SQLite horses -> typed horses columns, with the failed rules (reason) and
normalisations (norms).';

-- predictions, the big table, has a fast path for the loader (setting hrp.map_fast = on, which
-- map_rows sets): a row whose staged values are each already in the canonical text form of its
-- target type (the cast's own output: bigint::text, numeric::text, timestamp::text in ISO style),
-- within the target's range and at its scale, is typed by plain casts, with no reason and no
-- normalisation, which is what the per-column rules give such a row (the pgTAP test of this view
-- checks that both ways agree value for value). Every other row takes the rules. The casts raise
-- on text that is no number or date at all, so map_rows then maps that part again with the fast
-- path off. Off (the default, e.g. when a DBA queries the view) the view never raises.
create or replace view migration.predictions_mapped as
select
    p.id as source_id,
    p.id_n as id,
    p.race_id_n as race_id,
    p.horse_id_n as horse_id,
    case when abs(p.value_r) < 10000 then p.value_r end::numeric(10, 6)
        as prediction_value,
    case when p.confidence_r between 0 and 1 then p.confidence_r end::numeric(
        5, 4
    )
        as confidence,
    case when length(p.algorithm_version) <= 20 then p.algorithm_version end::varchar(20)
        as algorithm_version,
    p.created_ts as created_at,
    p.created_ts as updated_at,
    case when not p.fast then nullif(concat_ws(
        '; ',
        case when p.id_n is null then 'id: not an integer' end,
        case
            when p.race_id is null then 'race_id: NULL in a NOT NULL column'
            when p.race_id_n is null then 'race_id: not an integer'
        end,
        case
            when p.horse_id is null then 'horse_id: NULL in a NOT NULL column'
            when p.horse_id_n is null then 'horse_id: not an integer'
        end,
        case
            when p.prediction_value is null then 'prediction_value: NULL in a NOT NULL column'
            when p.value_n is null then 'prediction_value: not a finite number'
            when
                abs(p.value_r) >= 10000
                then 'prediction_value: out of range of decimal(10,6)'
        end,
        case
            when
                p.confidence is not null and p.confidence_n is null
                then 'confidence: not a finite number'
            when
                p.confidence_r not between 0 and 1
                then 'confidence: not between 0 and 1 (check)'
        end,
        case
            when p.algorithm_version is null then 'algorithm_version: NULL in a NOT NULL column'
            when
                length(p.algorithm_version) > 20
                then 'algorithm_version: longer than 20 characters'
        end,
        migration.ts_reason('created_at', p.created_at, p.created_kind)
    ), '') end as reason,
    case when p.fast then '{}'::text[] else array_remove(array[
        case
            when
                (
                    p.value_n <> p.value_r
                    and p.value_n::float8::numeric <> p.value_r
                )
                or (
                    p.confidence_n <> p.confidence_r
                    and p.confidence_n::float8::numeric <> p.confidence_r
                )
                then 'real_rounded_to_scale'
        end
    ], null) || migration.ts_norms(p.created_kind) end as norms
from (
    select
        q.*,
        case
            when q.fast then q.f_ts at time zone current_setting('hrp.source_timezone')
            else migration.parse_ts(
                q.created_at, q.created_kind, current_setting('hrp.source_timezone')
            )
        end as created_ts,
        round(q.value_n, 6) as value_r,
        round(q.confidence_n, 4) as confidence_r
    from (
        select
            g.*,
            g.id::bigint as id_n,  -- staged SQLite rowids: always integers
            case when g.fast then g.f_race_id else migration.parse_int(g.race_id) end
                as race_id_n,
            case when g.fast then g.f_horse_id else migration.parse_int(g.horse_id) end
                as horse_id_n,
            case when g.fast then g.f_value else migration.parse_num(g.prediction_value) end
                as value_n,
            case when g.fast then g.f_confidence else migration.parse_num(g.confidence) end
                as confidence_n,
            case when g.fast then 'naive' else migration.ts_kind(g.created_at) end as created_kind
        from (
            select
                c.*,
                -- the fast path's condition: every value canonical, in range, at scale
                coalesce(
                    c.f_race_id::text = c.race_id and length(c.race_id) <= 18
                    and c.f_horse_id::text = c.horse_id and length(c.horse_id) <= 18
                    and c.f_value::text = c.prediction_value and length(c.prediction_value) <= 40
                    and abs(c.f_value) < 10000 and c.f_value = round(c.f_value, 6)
                    and c.f_confidence::text = c.confidence and length(c.confidence) <= 40
                    and c.f_confidence between 0 and 1 and c.f_confidence = round(c.f_confidence, 4)
                    and length(c.algorithm_version) <= 20
                    and c.f_ts between '0001-01-01' and '9999-12-31 23:59:59.999999'
                    and c.f_ts::text = c.created_at,
                    false
                ) as fast
            from (
                select
                    s.*,
                    -- the casts of the fast path: they raise on text that is no number or date
                    -- at all; the cheap shape tests spare them the commonest such text (empty,
                    -- timestamps that are no ISO date-time), which the rules take row by row
                    case when f.fast_on and s.race_id <> '' then s.race_id::bigint end as f_race_id,
                    case
                        when f.fast_on and s.horse_id <> '' then s.horse_id::bigint
                    end as f_horse_id,
                    case
                        when f.fast_on and s.prediction_value <> '' then s.prediction_value::numeric
                    end as f_value,
                    case
                        when f.fast_on and s.confidence <> '' then s.confidence::numeric
                    end as f_confidence,
                    case
                        when f.fast_on and s.created_at like '____-__-__ __:__:__%'
                            then s.created_at::timestamp
                    end as f_ts
                from migration_stage.predictions as s
                -- hrp.map_fast = on: the fast path (the setting read once per query, an init plan)
                cross join (
                    select (
                        select coalesce(current_setting('hrp.map_fast', true) = 'on', false)
                    ) as fast_on
                ) as f
                -- the part of the rows this call maps (the loader maps predictions on two
                -- connections): a range of the staged table's blocks, set by map_rows (a TID
                -- range scan: each connection reads its own blocks only); unset, every row
                where
                    s.ctid >= (
                        select format(
                            '(%s,0)',
                            coalesce(nullif(current_setting('hrp.map_from_block', true), ''), '0')
                        )::tid
                    )
                    and s.ctid < (
                        select format(
                            '(%s,0)',
                            coalesce(
                                nullif(current_setting('hrp.map_to_block', true), ''), '4294967295'
                            )
                        )::tid
                    )
                -- each cast once per row (no flattening)
                offset 0  -- noqa: AM09
            ) as c
            offset 0  -- noqa: AM09
        ) as g
        -- one evaluation of each parser per row (no flattening)
        offset 0  -- noqa: AM09
    ) as q
    -- created_ts feeds two columns, the rounded values several rules: computed once per row
    offset 0  -- noqa: AM09
) as p;
comment on view migration.predictions_mapped is
'Staged SQLite predictions -> typed predictions columns (updated_at := created_at: the source has no
updated_at), with failed rules (reason) and normalisations (norms). Orphans are decided later.';

create or replace view migration.users_mapped as
select
    p.id as source_id,
    p.id_n as id,
    case when length(p.username) <= 50 then p.username end::varchar(50) as username,
    case when length(p.email) <= 255 and p.email_ok then p.email end::varchar(255) as email,
    case when length(p.password_hash) <= 255 then p.password_hash end::varchar(255)
        as password_hash,
    p.created_ts as created_at,
    p.created_ts as updated_at,
    migration.parse_ts(p.last_login, p.login_kind, current_setting('hrp.source_timezone'))
        as last_login,
    nullif(concat_ws(
        '; ',
        case when p.id_n is null then 'id: not an integer' end,
        case
            when p.username is null then 'username: NULL in a NOT NULL column'
            when length(p.username) > 50 then 'username: longer than 50 characters'
        end,
        case
            when p.email is null then 'email: NULL in a NOT NULL column'
            when length(p.email) > 255 then 'email: longer than 255 characters'
            when not p.email_ok then 'email: not a valid address (valid_email check)'
        end,
        case
            when p.password_hash is null then 'password_hash: NULL in a NOT NULL column'
            when length(p.password_hash) > 255 then 'password_hash: longer than 255 characters'
        end,
        migration.ts_reason('created_at', p.created_at, p.created_kind),
        migration.ts_reason('last_login', p.last_login, p.login_kind)
    ), '') as reason,
    migration.ts_norms(p.created_kind, p.login_kind) as norms
from (
    select
        q.*,
        migration.parse_ts(q.created_at, q.created_kind, current_setting('hrp.source_timezone'))
            as created_ts
    from (
        select
            s.*,
            s.id::bigint as id_n,  -- staged SQLite rowids: always integers
            -- the target's valid_email check, verbatim
            coalesce(s.email ~* '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$', false)
                as email_ok,
            migration.ts_kind(s.created_at) as created_kind,
            migration.ts_kind(s.last_login) as login_kind
        from migration_stage.users as s
        -- one evaluation of each parser per row (no flattening)
        offset 0  -- noqa: AM09
    ) as q
) as p;
comment on view migration.users_mapped is
'Staged SQLite users -> typed users columns (updated_at := created_at; first_name, last_name,
is_active, is_admin, preferences take the target defaults), with failed rules and normalisations.';

create or replace view migration.api_credentials_mapped as
select
    p.id as source_id,
    p.id_n as id,
    case when length(p.service_name) <= 100 then p.service_name end::varchar(100) as service_name,
    p.api_key,
    p.api_secret,
    p.endpoint_url,
    p.is_active_b as is_active,
    p.created_ts as created_at,
    p.created_ts as updated_at,
    nullif(concat_ws(
        '; ',
        case when p.id_n is null then 'id: not an integer' end,
        case
            when p.service_name is null then 'service_name: NULL in a NOT NULL column'
            when length(p.service_name) > 100 then 'service_name: longer than 100 characters'
        end,
        case when p.api_key is null then 'api_key: NULL in a NOT NULL column' end,
        case
            when p.is_active is not null and p.is_active_b is null then 'is_active: not a boolean'
        end,
        migration.ts_reason('created_at', p.created_at, p.created_kind)
    ), '') as reason,
    array_remove(array[
        case
            when
                p.is_active not in ('0', '1') and p.is_active_b is not null
                then 'boolean_from_text'
        end
    ], null) || migration.ts_norms(p.created_kind) as norms
from (
    select
        q.*,
        migration.parse_ts(q.created_at, q.created_kind, current_setting('hrp.source_timezone'))
            as created_ts
    from (
        select
            s.*,
            s.id::bigint as id_n,  -- staged SQLite rowids: always integers
            migration.parse_bool(s.is_active) as is_active_b,
            migration.ts_kind(s.created_at) as created_kind
        from migration_stage.api_credentials as s
        -- one evaluation of each parser per row (no flattening)
        offset 0  -- noqa: AM09
    ) as q
) as p;
comment on view migration.api_credentials_mapped is
'Staged SQLite api_credentials -> typed columns (updated_at := created_at; rate_limit,
rate_limit_window, metadata, expires_at take the target defaults), with failed rules and normalisations.';
