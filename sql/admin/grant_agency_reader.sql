-- Let a reporting login see one agency's rows, and only those (row-level security, sql/access).
-- Usage: psql "$DATABASE_URL" -v login=acme_reports -v agency=1 -f sql/admin/grant_agency_reader.sql
-- The login must exist (create role acme_reports login password '...'); whoever runs this needs
-- the right to grant inmailq_reader. Granting again moves the login to the agency given.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?login}
\else
do $$ begin raise exception 'missing -v login=...: see the usage line at the top of grant_agency_reader.sql'; end $$;
\endif
\if :{?agency}
\else
do $$ begin raise exception 'missing -v agency=...: see the usage line at the top of grant_agency_reader.sql'; end $$;
\endif
select grant_agency_reader(:'login', :'agency'::bigint);
select role_name as login, agency_id as agency, a.name as agency_name
from agency_readers r join agencies a on a.id = r.agency_id where role_name = :'login';
