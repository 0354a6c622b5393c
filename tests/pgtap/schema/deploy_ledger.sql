-- pgTAP tests for schema/0000_deploy_ledger.sql: the apply ledger and its record function.
-- Safe against a deployed database: everything runs in one transaction and is rolled back.
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(16);

select has_schema('hrp_deploy', 'schema hrp_deploy exists');
select has_table('hrp_deploy', 'ledger', 'table hrp_deploy.ledger exists');
select columns_are(
    'hrp_deploy', 'ledger',
    array['file_path', 'change_kind', 'sha256', 'applied_at', 'applied_by', 'apply_count']::name[],
    'the ledger has exactly its columns'
);
select col_is_pk('hrp_deploy', 'ledger', 'file_path', 'the ledger is keyed by file path');
select col_type_is(
    'hrp_deploy', 'ledger', 'applied_at', 'timestamp with time zone',
    'ledger.applied_at is timestamptz'
);
select isnt(
    obj_description('hrp_deploy.ledger'::regclass, 'pg_class'), null, 'the ledger has a comment'
);
select has_function(
    'hrp_deploy', 'record_applied', array['text', 'text', 'text'],
    'hrp_deploy.record_applied(text, text, text) exists'
);
select isnt(
    obj_description('hrp_deploy.record_applied(text, text, text)'::regprocedure, 'pg_proc'), null,
    'hrp_deploy.record_applied has a comment'
);

-- Behaviour.
select lives_ok(
    $$select hrp_deploy.record_applied('pgtap/a.sql', 'versioned', repeat('a', 64))$$,
    'a new versioned file is recorded'
);
select results_eq(
    $$select change_kind, sha256, apply_count from hrp_deploy.ledger
      where file_path = 'pgtap/a.sql'$$,
    $$values ('versioned'::text, repeat('a', 64), 1)$$,
    'the record holds kind, checksum and a first apply count'
);
select throws_ok(
    $$select hrp_deploy.record_applied('pgtap/a.sql', 'versioned', repeat('b', 64))$$,
    '23505', 'versioned file pgtap/a.sql is already applied to this database',
    'a versioned file cannot be recorded twice'
);
select lives_ok(
    $$select hrp_deploy.record_applied('pgtap/r.sql', 'repeatable', repeat('a', 64))$$,
    'a repeatable file is recorded'
);
select lives_ok(
    $$select hrp_deploy.record_applied('pgtap/r.sql', 'repeatable', repeat('c', 64))$$,
    'a changed repeatable file is recorded again'
);
select results_eq(
    $$select sha256, apply_count from hrp_deploy.ledger where file_path = 'pgtap/r.sql'$$,
    $$values (repeat('c', 64), 2)$$,
    'a re-applied repeatable file keeps its new checksum and counts the apply'
);
select throws_ok(
    $$select hrp_deploy.record_applied('pgtap/k.sql', 'data', repeat('a', 64))$$,
    '23514', null, 'an unknown change kind is rejected'
);
select throws_ok(
    $$select hrp_deploy.record_applied('pgtap/s.sql', 'versioned', 'not-a-sha')$$,
    '23514', null, 'a checksum that is not a sha256 is rejected'
);

select * from finish();
rollback;
