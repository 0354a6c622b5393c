-- Parsers of the SQLite -> PostgreSQL transform (issue 3): text as staged by pgloader -> typed
-- value, or NULL when the text does not follow the rule. They never raise, so one bad row can never
-- abort a load; the mapping (functions/migration_map.sql) turns "source not null, parsed
-- null" into a quarantine reason. All but try_jsonb are inlinable LANGUAGE sql functions.
-- requires: schema/0010_migration.sql (schema hrp_migration).
-- Repeatable (CREATE OR REPLACE).

-- Integer: optional sign and up to 18 digits (pgloader prints SQLite integers that way).
create or replace function hrp_migration.parse_int(v text)
returns bigint
language sql immutable parallel safe
as $$
    -- translate() instead of a regex: a fifth of the cost on the hot path
    select case
        when length(v) between 1 and 18 and translate(v, '0123456789', '') = '' then v::bigint
        when length(v) between 2 and 19 and v ~ '^[+-][0-9]+$' then v::bigint
    end
$$;
comment on function hrp_migration.parse_int(text) is
'SQLite INTEGER as staged text -> bigint; NULL unless the text is a plain integer.';

-- Number: decimal or exponent notation (pgloader prints SQLite REALs as e.g. 1.234567812345679e7);
-- infinities (#.DOUBLE-FLOAT-POSITIVE-INFINITY), NaN and words give NULL.
create or replace function hrp_migration.parse_num(v text)
returns numeric
language sql immutable parallel safe
as $$
    select case
        when length(v) <= 40 and v ~ '^-?[0-9]+\.?[0-9]*$' then v::numeric
        when length(v) <= 60 and v ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9][0-9]?[0-9]?)?$'
            then v::numeric
    end
$$;
comment on function hrp_migration.parse_num(text) is
'SQLite REAL (or INTEGER) as staged text -> numeric, exact decimal of the staged digits;
NULL unless a finite number.';

-- Calendar check of the fixed-position parts of an ISO date (YYYY-MM-DD...), without casting.
create or replace function hrp_migration.iso_date_ok(v text)
returns boolean
language sql immutable parallel safe
as $$
    -- string comparisons first (cheap); the month length only matters for days 29 to 31
    select
        substr(v, 1, 4) collate "C" >= '0001'
        and substr(v, 6, 2) collate "C" between '01' and '12'
        and (
            substr(v, 9, 2) collate "C" between '01' and '28'
            or substr(v, 9, 2)::int <= case
                when substr(v, 6, 2)::int in (4, 6, 9, 11) then 30
                when substr(v, 6, 2)::int <> 2 then 31
                when substr(v, 1, 4)::int % 4 = 0
                    and (substr(v, 1, 4)::int % 100 <> 0 or substr(v, 1, 4)::int % 400 = 0) then 29
                else 28
            end
        )
$$;
comment on function hrp_migration.iso_date_ok(text) is
'True when the text, already matching ^\d{4}-\d\d-\d\d, names a real calendar day.';

-- Date: exactly YYYY-MM-DD and a real calendar day. STABLE like the text -> date cast it uses: an
-- IMMUTABLE SQL function with a stable body is never inlined, and the call costs ~9 us a row.
create or replace function hrp_migration.parse_date(v text)
returns date
language sql stable parallel safe
as $$
    select case
        when translate(v, '0123456789', '9999999999') = '9999-99-99' and hrp_migration.iso_date_ok(v)
            then v::date
    end
$$;
comment on function hrp_migration.parse_date(
    text
) is 'SQLite DATE text YYYY-MM-DD -> date; NULL otherwise.';

-- Clock check of the fixed-position parts HH:MM[:SS] of an ISO timestamp (positions 12 to 19).
create or replace function hrp_migration.hms_ok(v text)
returns boolean
language sql immutable parallel safe
as $$
    select
        substr(v, 12, 2) collate "C" <= '23'
        and substr(v, 15, 2) collate "C" <= '59'
        and (substr(v, 17, 1) <> ':' or substr(v, 18, 2) collate "C" <= '59')
$$;
comment on function hrp_migration.hms_ok(text) is
'True when the text, shaped YYYY-MM-DD HH:MM[:SS...], has hours <= 23, minutes and seconds <= 59.';

-- The kind of a staged timestamp text, which decides the rule (see parse_ts):
--   naive   YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]]   local time of the declared source time zone
--   offset  the same followed by Z or +HH[[:]MM]  the offset is honoured
--   date    YYYY-MM-DD                           midnight in the source time zone
--   epoch   a number (SQLite stores numbers in TIMESTAMP columns as Unix seconds)
--   NULL    anything else (garbage, empty string, impossible dates or times)
create or replace function hrp_migration.ts_kind(v text)
returns text
language sql immutable parallel safe
as $$
    -- shape by translate() (digits -> 9, T -> space): the common shapes need no regex at all
    select case
        when translate(v, '0123456789T', '9999999999 ') collate "C"
            in ('9999-99-99 99:99:99', '9999-99-99 99:99')
            then case when hrp_migration.iso_date_ok(v) and hrp_migration.hms_ok(v) then 'naive' end
        when translate(v, '0123456789', '9999999999') = '9999-99-99'
            then case when hrp_migration.iso_date_ok(v) then 'date' end
        when v ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)? ?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
            then case
                when not (hrp_migration.iso_date_ok(v) and hrp_migration.hms_ok(v)) then null
                when substr(v, 17) ~ '^(:[0-9]{2}(\.[0-9]{1,6})?)?$' then 'naive'
                when substring(v from '([+-][0-9]{2}:?[0-9]{0,2})$') is null then 'offset'  -- Z
                when substring(v from '[+-]([0-9]{2}):?[0-9]{0,2}$')::int <= 15
                    and coalesce(nullif(substring(v from '[+-][0-9]{2}:?([0-9]{0,2})$'), '')::int, 0) <= 59
                    then 'offset'
            end
        when hrp_migration.parse_num(v) between 0 and 253402300799 then 'epoch'
    end
$$;
comment on function hrp_migration.ts_kind(text) is
'Classifies a staged SQLite TIMESTAMP text: naive, offset, date, epoch, or NULL (unparseable).';

-- ts_kind_fast (the hand-written mapping views' shortcut) gave way to the canonical-value shortcut
-- of the generated mapping (functions/migration_map.sql): a function only, nothing to keep.
drop function if exists hrp_migration.ts_kind_fast(text, boolean);

-- The quarantine reason of a timestamp column (named col) whose text v has no kind (see ts_kind);
-- NULL when it has one or is NULL.
create or replace function hrp_migration.ts_reason(col text, v text, kind text)
returns text
language sql immutable parallel safe
as $$
    select case when v is not null and kind is null then col || ': unparseable timestamp' end
$$;
comment on function hrp_migration.ts_reason(text, text, text) is
'col: unparseable timestamp when the text is not NULL and has no ts_kind, else NULL.';

-- The counted normalisations of a row's timestamps (one or two columns), from their kinds: each
-- rule at most once per row.
create or replace function hrp_migration.ts_norms(kind1 text, kind2 text default null)
returns text[]
language sql immutable parallel safe
as $$
    select array_remove(array[
        case when 'epoch' in (kind1, kind2) then 'timestamp_from_epoch' end,
        case when 'date' in (kind1, kind2) then 'timestamp_from_date_only' end,
        case when 'offset' in (kind1, kind2) then 'timestamp_offset_to_utc' end
    ], null)
$$;
comment on function hrp_migration.ts_norms(text, text) is
'timestamp_from_epoch, timestamp_from_date_only, timestamp_offset_to_utc: those of the rules the
kinds of a row''s timestamps (ts_kind) took.';

-- Timestamp: TIMESTAMP -> TIMESTAMPTZ by the kind's rule; tz is the declared source time zone.
create or replace function hrp_migration.parse_ts(v text, kind text, tz text)
returns timestamptz
language sql stable parallel safe
as $$
    select case kind
        when 'naive' then v::timestamp at time zone tz
        when 'date' then v::timestamp at time zone tz
        when 'offset' then v::timestamptz
        when 'epoch' then to_timestamp(0) + v::numeric * interval '1 second'
    end
$$;
comment on function hrp_migration.parse_ts(text, text, text) is
'Staged SQLite TIMESTAMP text of a given ts_kind -> timestamptz (naive and date-only values
are local times of the source time zone tz; offsets are honoured; numbers are Unix epoch seconds).';

-- Boolean: 1/0 as SQLite writes them; the usual words (any case) are a counted normalisation.
create or replace function hrp_migration.parse_bool(v text)
returns boolean
language sql immutable parallel safe
as $$
    select case
        when v = '1' then true
        when v = '0' then false
        when lower(v) in ('true', 't', 'yes', 'y', 'on') then true
        when lower(v) in ('false', 'f', 'no', 'n', 'off') then false
    end
$$;
comment on function hrp_migration.parse_bool(text) is
'SQLite BOOLEAN as staged text -> boolean: 1/0, or true/false/t/f/yes/no/y/n/on/off in any case.';

-- JSON: text that parses as JSON -> jsonb; NULL when it does not. PostgreSQL 15 has no non-raising
-- JSON test (IS JSON is 16+), so this one is plpgsql with an exception block; it only ever runs on
-- weather_conditions values (one per race).
create or replace function hrp_migration.try_jsonb(v text)
returns jsonb
language plpgsql immutable parallel safe
as $$
begin
    return v::jsonb;
exception when others then
    return null;
end
$$;
comment on function hrp_migration.try_jsonb(
    text
) is 'text -> jsonb, NULL when the text is not valid JSON.';

-- JSON that jsonb cannot hold: the \u0000 escape is valid JSON (json accepts it) but jsonb refuses
-- it (no text type can hold a NUL). Only ever runs on values try_jsonb refused, to give them a
-- reason of their own instead of "malformed JSON".
create or replace function hrp_migration.is_json(v text)
returns boolean
language plpgsql immutable parallel safe
as $$
begin
    perform v::json;
    return true;
exception when others then
    return false;
end
$$;
comment on function hrp_migration.is_json(
    text
) is 'true when the text is valid JSON (json type, which keeps \u0000 escapes jsonb refuses).';
