-- Create a client workspace of an agency.
-- Usage: psql "$DATABASE_URL" -v agency=1 -v name='Client X' -f sql/admin/create_workspace.sql
-- A bad id or a forbidden action stops with an error and changes nothing.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?agency}
\else
do $$ begin raise exception 'missing -v agency=...: see the usage line at the top of create_workspace.sql'; end $$;
\endif
\if :{?name}
\else
do $$ begin raise exception 'missing -v name=...: see the usage line at the top of create_workspace.sql'; end $$;
\endif
select admin_create_workspace(:'agency'::bigint, :'name') as workspace_id;
