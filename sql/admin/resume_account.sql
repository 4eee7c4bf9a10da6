-- Resume a paused account; its waiting jobs run now.
-- Usage: psql "$DATABASE_URL" -v account=1 -f sql/admin/resume_account.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of resume_account.sql'; end $$;
\endif
select set_account_status(:'account'::bigint, 'active') as status;
