-- Mark an account's card as expired: it sends no InMail until updated; its work waits (A7).
-- Usage: psql "$DATABASE_URL" -v account=1 -f sql/admin/card_expired.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of card_expired.sql'; end $$;
\endif
select set_account_status(:'account'::bigint, 'payment_failed') as status;
