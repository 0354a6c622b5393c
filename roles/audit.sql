-- audit: pgaudit in this database, and the spec's audit and statement-logging settings at
-- database scope ("Audit Logging", "Log Configuration").
-- The server-wide half lives in conf/audit.conf and conf/logging.conf, installed on the clusters
-- the project runs. On a server reached with `deploy --dsn` nothing server-wide is changed: these
-- database-scope settings make this database audited as the spec asks wherever the server's
-- defaults differ, and the harness prints what a DBA must install server-wide
-- (hrp_harness/platform/serverconf.py). Keep the values equal to conf/audit.conf and
-- conf/logging.conf
-- (tests/test_audit.py compares them).
-- pgaudit refuses CREATE EXTENSION unless it is in shared_preload_libraries (a restart): without
-- it this file only says so and auditing stays off until a DBA preloads it and deploy re-runs.
-- Its two event-trigger functions go to the private schema hrp_deploy, not to public.
-- requires: schema/0000_deploy_ledger.sql (schema hrp_deploy)

do $pgaudit$
begin
    if 'pgaudit' = any(
        string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')
    ) then
        create extension if not exists pgaudit with schema hrp_deploy;
    else
        raise notice
            'pgaudit is not in shared_preload_libraries: auditing is OFF for %. Add it '
            '(server restart needed), then run deploy again.', current_database();
    end if;
end;
$pgaudit$;

-- Dotted names are quoted identifiers; format('%I') also quotes the database name.
do $settings$
declare
    setting record;
begin
    for setting in
        select *
        from (
            values
            ('pgaudit.log', 'all'),
            ('pgaudit.log_catalog', 'off'),
            ('pgaudit.log_parameter', 'on'),
            ('pgaudit.log_statement_once', 'on'),
            -- not the spec's 'ddl': it logs passwords of ALTER ROLE in clear (conf/logging.conf)
            ('log_statement', 'none'),
            ('log_min_error_statement', 'panic'),
            ('log_min_duration_statement', '1000'),
            ('log_lock_waits', 'on')
        ) as wanted (name, value)
    loop
        execute format(
            'alter database %I set %I = %L', current_database(), setting.name, setting.value
        );
    end loop;
end;
$settings$;
