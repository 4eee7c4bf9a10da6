-- Move an account to another plan; credits above the new plan's cap expire at once (A5).
-- Usage: psql "$DATABASE_URL" -v account=1 -v plan=sales_navigator -f sql/admin/change_plan.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of change_plan.sql'; end $$;
\endif
\if :{?plan}
\else
do $$ begin raise exception 'missing -v plan=...: see the usage line at the top of change_plan.sql'; end $$;
\endif
begin;
select change_plan(:'account'::bigint, :'plan') as plan, credit_balance(:'account'::bigint) as balance;
commit;
