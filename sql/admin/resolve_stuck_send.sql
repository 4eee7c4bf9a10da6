-- Settle a send whose outcome nobody knows (its message is still 'sending' and its job is gone):
-- check on LinkedIn (or the gateway) whether the message went out, then record what you found.
-- List them: psql "$DATABASE_URL" -c 'select * from stuck_sends'
-- Usage: psql "$DATABASE_URL" -v key=contact:12:step:0 -v went_out=yes [-v receipt=MESSAGE_ID] -f sql/admin/resolve_stuck_send.sql
--        went_out=yes records it as delivered; went_out=no gives the slot and credit back and sends it again.
-- A bad key or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?key}
\else
do $$ begin raise exception 'missing -v key=...: see the usage line at the top of resolve_stuck_send.sql'; end $$;
\endif
\if :{?went_out}
\else
do $$ begin raise exception 'missing -v went_out=yes|no: see the usage line at the top of resolve_stuck_send.sql'; end $$;
\endif
\if :{?receipt}
\else
\set receipt ''
\endif
\set QUIET off
begin;
select resolve_stuck_send(:'key', :'went_out'::boolean, :'receipt') as result;
commit;
