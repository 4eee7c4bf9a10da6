-- Buy extra InMail credits: refused on Sales Navigator plans (A8) and above the plan's cap (A5).
-- Usage: psql "$DATABASE_URL" -v account=1 -v credits=10 -f sql/admin/purchase_credits.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of purchase_credits.sql'; end $$;
\endif
\if :{?credits}
\else
do $$ begin raise exception 'missing -v credits=...: see the usage line at the top of purchase_credits.sql'; end $$;
\endif
begin;
select purchase_credits(:'account'::bigint, :'credits'::integer) as balance;
commit;
