-- Pause an account: it sends nothing until resumed; nothing is lost.
-- Usage: psql "$DATABASE_URL" -v account=1 -f sql/admin/pause_account.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of pause_account.sql'; end $$;
\endif
select set_account_status(:'account'::bigint, 'paused') as status;
