-- Create a sender account (a LinkedIn account that sends) in a workspace, on a plan (see: select * from plans).
-- Usage: psql "$DATABASE_URL" -v workspace=1 -v name='Jane Doe' -v plan=premium_business -v anchor=2026-11-14 -v tz=Europe/Paris -f sql/admin/create_sender_account.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?workspace}
\else
do $$ begin raise exception 'missing -v workspace=...: see the usage line at the top of create_sender_account.sql'; end $$;
\endif
\if :{?name}
\else
do $$ begin raise exception 'missing -v name=...: see the usage line at the top of create_sender_account.sql'; end $$;
\endif
\if :{?plan}
\else
do $$ begin raise exception 'missing -v plan=...: see the usage line at the top of create_sender_account.sql'; end $$;
\endif
\if :{?anchor}
\else
do $$ begin raise exception 'missing -v anchor=...: see the usage line at the top of create_sender_account.sql'; end $$;
\endif
\if :{?tz}
\else
do $$ begin raise exception 'missing -v tz=...: see the usage line at the top of create_sender_account.sql'; end $$;
\endif
select admin_create_sender_account(:'workspace'::bigint, :'name', :'plan', :'anchor'::date, :'tz') as account_id;
