-- Mark an account's card as updated: sending resumes and its waiting jobs run now (A7).
-- Usage: psql "$DATABASE_URL" -v account=1 -f sql/admin/card_updated.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of card_updated.sql'; end $$;
\endif
select set_account_status(:'account'::bigint, 'active') as status;
