-- Cancel an account's Premium subscription: its credit balance becomes zero (A6).
-- Usage: psql "$DATABASE_URL" -v account=1 -f sql/admin/cancel_subscription.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of cancel_subscription.sql'; end $$;
\endif
begin;
select cancel_subscription(:'account'::bigint) as credits_zeroed;
commit;
