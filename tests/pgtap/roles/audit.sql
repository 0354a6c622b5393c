-- pgTAP tests for roles/audit.sql: pgaudit is installed in the private schema hrp_deploy (not in
-- public), its event triggers are on, and the spec's audit settings are in force for this session.
-- (The database-scope settings themselves are checked by tests/test_security.py: a database cloned
-- from a template does not inherit them.)
begin;
-- noqa: disable=PRS
\ir ../setup.psql
-- noqa: enable=PRS
select plan(8);

select has_extension('hrp_deploy', 'pgaudit', 'pgaudit is installed in schema hrp_deploy');
select is(
    (
        select count(*)::integer
        from pg_catalog.pg_event_trigger
        where evtname in ('pgaudit_ddl_command_end', 'pgaudit_sql_drop') and evtenabled = 'O'
    ),
    2,
    'pgaudit''s two event triggers are enabled'
);
select is_empty(
    $$
    select p.proname
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'public'::regnamespace and p.proname like 'pgaudit%'
    $$,
    'no pgaudit function in schema public'
);
select is(current_setting('pgaudit.log'), 'all', 'pgaudit.log = all');
select is(current_setting('pgaudit.log_catalog'), 'off', 'pgaudit.log_catalog = off');
select is(current_setting('pgaudit.log_parameter'), 'on', 'pgaudit.log_parameter = on');
select is(
    current_setting('pgaudit.log_statement_once'), 'on', 'pgaudit.log_statement_once = on'
);
select is(
    current_setting('log_statement'), 'none',
    'log_statement = none (not the spec''s ddl: it would log passwords; pgaudit logs DDL redacted)'
);

select * from finish();
rollback;
