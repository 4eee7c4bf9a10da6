-- The People view (C2): every contact of a campaign, its sender, where it stands and why, and its last event.
-- Usage: psql "$DATABASE_URL" -v campaign=2 -f sql/admin/people.sql
--        add -v status=waiting to see one status only.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?campaign}
\else
do $$ begin raise exception 'missing -v campaign=...: see the usage line at the top of people.sql'; end $$;
\endif
\if :{?status}
\else
\set status ''
\endif
select require_campaign(:'campaign') as campaign_checked \gset
\set QUIET off
select contact_id, member_key, first_name, last_name, company, sender_account_id as sender, status, reason,
       last_event, last_event_at
from contact_progress
where campaign_id = :'campaign'::bigint and (nullif(:'status', '') is null or status = :'status')
order by contact_id;
