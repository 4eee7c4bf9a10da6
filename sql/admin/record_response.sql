-- Record a response to a sent message, as LinkedIn or a gateway's webhook reports it:
-- credit back within 90 days (R1, R2), then the sequence rules (R3-R5).
-- Usage: psql "$DATABASE_URL" -v message=12 -v kind=accepted_default -f sql/admin/record_response.sql
--        kinds: select * from response_kinds;   add -v text='...' for a reply's text.
-- A bad id or kind stops with an error and changes nothing; the same kind twice counts once.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?message}
\else
do $$ begin raise exception 'missing -v message=...: see the usage line at the top of record_response.sql'; end $$;
\endif
\if :{?kind}
\else
do $$ begin raise exception 'missing -v kind=...: see the usage line at the top of record_response.sql'; end $$;
\endif
\if :{?text}
\else
\set text ''
\endif
\set QUIET off
select * from record_response(:'message'::bigint, :'kind', nullif(:'text', ''));
