-- Binds a sender account to its gateway account (the LinkedIn messaging gateway's account id,
-- e.g. Unipile's account_id), so `inmailq worker --courier gateway` sends from it. Its spacing
-- between two messages is raised to at least 15 seconds, as the gateway recommends.
--
-- Usage: psql "$DATABASE_URL" -v account=7 -v gateway_account=aBcD_123 -f sql/admin/connect_gateway_account.sql
-- A bad id, a malformed gateway account or one bound to another account stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?account}
\else
do $$ begin raise exception 'missing -v account=...: see the usage line at the top of connect_gateway_account.sql'; end $$;
\endif
\if :{?gateway_account}
\else
do $$ begin raise exception 'missing -v gateway_account=...: see the usage line at the top of connect_gateway_account.sql'; end $$;
\endif
select connect_gateway_account(:'account'::bigint, :'gateway_account') as gateway_account;
select id as account, gateway_account_id, min_spacing, max_spacing from sender_accounts where id = :'account'::bigint;
