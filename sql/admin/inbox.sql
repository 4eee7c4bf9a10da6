-- The gateway's webhooks that need a look: kept 'unmatched' (a chat or account inmailq does not
-- know), of an event type inmailq does not handle, or stored over a minute ago and not processed
-- yet (are workers running?). Newest first.
-- Usage: psql "$DATABASE_URL" -f sql/admin/inbox.sql            (add -v limit=200 for more than 50)
\set ON_ERROR_STOP on
\set QUIET on
\if :{?limit}
\else
\set limit 50
\endif
\set QUIET off
select id, received_at, state, event, gateway_account_id, chat_id, outcome
from gateway_inbox
where state in ('unmatched', 'unknown_event')
   or (state = 'received' and received_at < now() - interval '1 minute')
order by id desc
limit :'limit'::integer;
