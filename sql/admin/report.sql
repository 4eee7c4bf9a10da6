-- The analytics (C4): per campaign, per sender account, and per campaign and sender.
-- Usage: psql "$DATABASE_URL" -f sql/admin/report.sql            (everything)
--        psql "$DATABASE_URL" -v campaign=2 -f sql/admin/report.sql  (one campaign and its senders)
-- The same views feed `inmailq report`.
\set ON_ERROR_STOP on
\set QUIET on
\if :{?campaign}
\else
\set campaign ''
\endif
select require_campaign(nullif(:'campaign', '')::bigint) as campaign_checked \gset
\set QUIET off
\pset expanded on
select campaign_id, workspace, campaign, status, inmails_sent, free_inmails, credit_inmails, connection_messages,
       accepted, declined, responses, response_rate_pct, responders, follow_ups_sent, credits_spent, credits_back,
       contacts, waiting, in_sequence, finished, skipped, failed, stopped_by_reason
from campaign_report
where nullif(:'campaign', '') is null or campaign_id = nullif(:'campaign', '')::bigint
order by campaign_id;
select s.campaign_id, s.account_id, a.display_name, s.inmails_sent, s.free_inmails, s.accepted, s.declined,
       s.responders, s.response_rate_pct, s.follow_ups_sent, s.credits_spent, s.credits_back
from message_stats s join sender_accounts a on a.id = s.account_id
where s.campaign_id is not null and s.account_id is not null
  and (nullif(:'campaign', '') is null or s.campaign_id = nullif(:'campaign', '')::bigint)
order by s.campaign_id, s.account_id;
select account_id, display_name, plan, status, inmails_sent, free_inmails, credit_inmails, accepted, declined,
       responders, follow_ups_sent, credits_spent, credits_back, credits_expired, credit_balance, credit_cap, contacts_waiting
from sender_report
where nullif(:'campaign', '') is null
   or account_id in (select account_id from campaign_senders where campaign_id = nullif(:'campaign', '')::bigint)
order by account_id;
