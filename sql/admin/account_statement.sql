-- Show an account: plan and balance, its credit ledger with running balance, and today's usage.
-- Usage: psql "$DATABASE_URL" -v account=1 -f sql/admin/account_statement.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of account_statement.sql'; end $$;
\endif
\set QUIET off
select a.id, a.display_name, p.name as plan, a.status, a.time_zone,
       credit_balance(a.id) as balance, credit_held(a.id) as held, p.credit_cap as cap
from sender_accounts a join plans p on p.code = a.plan_code where a.id = :'account'::bigint;
select * from credit_statement(:'account'::bigint);
select u.local_day, u.inmails, u.inmail_limit, u.messages, u.message_limit
from sender_accounts a
join daily_usage u on u.account_id = a.id and u.local_day = account_local_now(a)::date
where a.id = :'account'::bigint;
