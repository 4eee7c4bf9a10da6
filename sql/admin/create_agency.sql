-- Create an agency (the top of the tenancy: agency -> client workspaces -> sender accounts).
-- Usage: psql "$DATABASE_URL" -v name='Acme Outreach' -f sql/admin/create_agency.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?name}
\else
do $$ begin raise exception 'missing -v name=...: see the usage line at the top of create_agency.sql'; end $$;
\endif
select admin_create_agency(:'name') as agency_id;
