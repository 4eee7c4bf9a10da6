-- C4's numbers kept as they change, so that a report reads a few counter rows where its views
-- counted every message, response and contact (seconds for a campaign of 100,000 contacts; a
-- whole agency's millions scanned for one account's line).
--
-- Both tables hold deltas: each statement that changes messages, responses or contacts adds
-- one row per key it changed (R__outreach.sql: the triggers), so concurrent sends never wait on
-- one counter row; compact_report_counters() folds a key's rows into one (the elected worker,
-- once a minute). Readers sum whatever rows a key has.

-- Sent messages counted three ways: per campaign and account, per campaign (account_id null)
-- and per account (campaign_id null), so a report's rows are one plain GROUP BY away.
create table message_counts (
    campaign_id         bigint,                 -- no foreign keys: derived numbers, written per send
    account_id          bigint,
    first_messages      bigint not null default 0,   -- step 0 sent (the response rate's base)
    inmails_sent        bigint not null default 0,
    free_inmails        bigint not null default 0,   -- S1
    credit_inmails      bigint not null default 0,
    connection_messages bigint not null default 0,   -- S3
    accepted            bigint not null default 0,
    declined            bigint not null default 0,
    responses           bigint not null default 0,   -- first messages with any response
    responders          bigint not null default 0,   -- contacts, R4
    follow_ups_sent     bigint not null default 0,
    credits_spent       bigint not null default 0,
    credits_back        bigint not null default 0,   -- R1
    check (campaign_id is not null or account_id is not null)
);

-- "This campaign's rows" (with or without an account), "this account's rows".
create index message_counts_campaign_idx on message_counts (campaign_id, account_id);
create index message_counts_account_idx on message_counts (account_id) where campaign_id is null;

-- Contacts counted per campaign, status and (skipped or failed) reason.
create table contact_counts (
    campaign_id bigint not null,
    status      contact_status not null,
    reason      text,
    contacts    bigint not null
);
create index contact_counts_campaign_idx on contact_counts (campaign_id);

alter table message_counts enable row level security, force row level security;
alter table contact_counts enable row level security, force row level security;

-- The sender report's waiting contacts: "this account's contacts".
create index contacts_sender_idx on contacts (sender_account_id);

-- The counts so far, as the views computed them.
with outcomes as (
    select m.campaign_id, m.account_id, m.contact_id, m.step, m.channel, m.uses_credit,
           coalesce(o.accepted, false) as accepted, coalesce(o.declined, false) as declined,
           coalesce(o.responder, false) as responder, coalesce(o.responded, false) as responded,
           coalesce(o.credited_back, false) as credited_back
    from messages m
    left join lateral (
        select bool_or(k.acceptance) as accepted, bool_or(k.outcome = 'declined') as declined,
               bool_or(k.responder) as responder, count(*) > 0 as responded, bool_or(r.credited_back) as credited_back
        from responses r join response_kinds k on k.kind = r.kind
        where r.message_id = m.id
    ) o on true
    where m.state = 'sent'
)
insert into message_counts (campaign_id, account_id, first_messages, inmails_sent, free_inmails, credit_inmails,
                            connection_messages, accepted, declined, responses, responders, follow_ups_sent,
                            credits_spent, credits_back)
select campaign_id, account_id,
       count(*) filter (where step = 0),
       count(*) filter (where step = 0 and channel = 'inmail'),
       count(*) filter (where step = 0 and channel = 'inmail' and not uses_credit),
       count(*) filter (where step = 0 and uses_credit),
       count(*) filter (where step = 0 and channel = 'message'),
       count(*) filter (where step = 0 and accepted),
       count(*) filter (where step = 0 and declined),
       count(*) filter (where step = 0 and responded),
       count(distinct contact_id) filter (where responder),
       count(*) filter (where step > 0),
       count(*) filter (where uses_credit),
       count(*) filter (where credited_back)
from outcomes
group by grouping sets ((campaign_id, account_id), (campaign_id), (account_id));

insert into contact_counts (campaign_id, status, reason, contacts)
select campaign_id, status, reason, count(*) from contacts group by 1, 2, 3;
