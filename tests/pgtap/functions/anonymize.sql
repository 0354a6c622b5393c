-- pgTAP tests for functions/anonymize.sql: the private schema hrp_anonymize, pseudonym() and
-- reset_sequences(). reset_sequences() moves sequences, which a rollback does not undo, so its
-- behaviour is tested by tests/test_anonymize.py on a throwaway copy instead. The views are
-- tests/pgtap/views/anonymize.sql's.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(6);

select has_schema('hrp_anonymize', 'schema hrp_anonymize exists');
select isnt(
    obj_description('hrp_anonymize'::regnamespace, 'pg_namespace'), null,
    'hrp_anonymize has a comment'
);
select has_function(
    'hrp_anonymize', 'pseudonym', array['text', 'bigint'], 'hrp_anonymize.pseudonym exists'
);
select is(hrp_anonymize.pseudonym('user', 42), 'user_42', 'pseudonym is kind_id');
select has_function(
    'hrp_anonymize', 'reset_sequences', array[]::text[], 'hrp_anonymize.reset_sequences exists'
);

select schema_privs_are(
    'hrp_anonymize', 'hrp_app', array[]::text[], 'hrp_app cannot reach the anonymising views'
);

select * from finish();
rollback;
