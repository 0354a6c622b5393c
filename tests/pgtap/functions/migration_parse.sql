-- pgTAP tests for functions/migration_parse.sql: each parser on the staged text forms pgloader
-- produces, valid and invalid, and that none of them raises.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(33);

select is(hrp_migration.parse_int('42'), 42::bigint, 'parse_int: plain integer');
select is(hrp_migration.parse_int('-7'), -7::bigint, 'parse_int: signed integer');
select is(hrp_migration.parse_int('4.5'), null, 'parse_int: a real is not an integer');
select is(hrp_migration.parse_int('five'), null, 'parse_int: a word is not an integer');
select is(
    hrp_migration.parse_int('1234567890123456789012'), null,
    'parse_int: too long for bigint'
);
select is(
    hrp_migration.parse_num('1.234567812345679e7'), 12345678.12345679::numeric,
    'parse_num: pgloader exponent notation'
);
select is(hrp_migration.parse_num('0.5'), 0.5::numeric, 'parse_num: decimal');
select is(
    hrp_migration.parse_num('#.DOUBLE-FLOAT-POSITIVE-INFINITY'),
    null,
    'parse_num: infinity is not finite'
);
select is(hrp_migration.parse_num('1,5'), null, 'parse_num: decimal comma is not a number');
select is(hrp_migration.parse_num('1e9999'), null, 'parse_num: absurd exponents are refused');
select is(hrp_migration.parse_date('2024-02-29'), '2024-02-29'::date, 'parse_date: leap day');
select is(hrp_migration.parse_date('2023-02-29'), null, 'parse_date: no such day');
select is(hrp_migration.parse_date('2024-1-5'), null, 'parse_date: not zero-padded');
select is(hrp_migration.ts_kind('2024-01-01 10:00:00'), 'naive', 'ts_kind: SQLite timestamp form');
select is(hrp_migration.ts_kind('2024-01-01T10:00:00.123456'), 'naive', 'ts_kind: ISO T micros');
select is(hrp_migration.ts_kind('2024-01-01T10:00:00+02:00'), 'offset', 'ts_kind: ISO with offset');
select is(hrp_migration.ts_kind('2024-01-01 10:00:00Z'), 'offset', 'ts_kind: Z suffix');
select is(hrp_migration.ts_kind('2024-01-01'), 'date', 'ts_kind: date only');
select is(hrp_migration.ts_kind('1700000000'), 'epoch', 'ts_kind: epoch seconds');
select is(hrp_migration.ts_kind('2024-01-01 24:00:00'), null, 'ts_kind: hour 24 is garbage');
select is(hrp_migration.ts_kind('yesterday'), null, 'ts_kind: words are garbage');
select is(
    hrp_migration.ts_reason('created_at', 'garbage', null), 'created_at: unparseable timestamp',
    'ts_reason: text without a kind is the column''s reason'
);
select is(
    hrp_migration.ts_reason('created_at', null, null), null,
    'ts_reason: NULL text is no reason (nor is text with a kind)'
);
select is(
    hrp_migration.ts_norms('epoch', 'offset'),
    array['timestamp_from_epoch', 'timestamp_offset_to_utc'],
    'ts_norms: the rules both timestamps took, in a fixed order'
);
select is(
    hrp_migration.ts_norms('date', 'date') || hrp_migration.ts_norms('naive'),
    array['timestamp_from_date_only'],
    'ts_norms: each rule once per row; naive is no normalisation'
);
select is(
    hrp_migration.parse_ts('2024-06-01 10:00:00', 'naive', 'Europe/Paris'),
    '2024-06-01 08:00:00+00'::timestamptz,
    'parse_ts: naive times are local times of the source time zone'
);
select is(
    hrp_migration.parse_ts('1.7000000005e9', 'epoch', 'UTC'),
    '2023-11-14 22:13:20.5+00'::timestamptz,
    'parse_ts: fractional epoch seconds'
);
select is(hrp_migration.parse_bool('Yes'), true, 'parse_bool: words in any case');
select is(hrp_migration.parse_bool('maybe'), null, 'parse_bool: unknown word');
select is(hrp_migration.try_jsonb('{bad'), null, 'try_jsonb: malformed JSON gives NULL, no error');

select is(hrp_migration.is_json('{"a": "\u0000"}'), true, 'is_json: a \u0000 escape is valid JSON');
select is(hrp_migration.try_jsonb('{"a": "\u0000"}'), null, '... that jsonb cannot hold');
select is(hrp_migration.is_json('{bad'), false, 'is_json: malformed JSON, no error');

select * from finish();
rollback;
