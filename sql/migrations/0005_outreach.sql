-- 0005_outreach: messages, responses and the sequence rules (S1-S5, R1-R5, C3), the send and
-- follow-up jobs' SQL side, and the report views (C4). Rule ids refer to ../shared/DOMAIN.md.
-- It also reworks parts of 0002 for the send path: reservations re-reservable after a release,
-- a batched reserve_sends, spend_reservation without the account lock, and the ledger check
-- against running totals (at the end of this file).

-- A delivery whose reservation was released (a rate limit, a paused account: nothing was sent)
-- may reserve again under the same key later. Only a live (held or spent) reservation owns a key.
alter table reservations drop constraint reservations_delivery_key_key;
create unique index reservations_live_delivery_idx on reservations (delivery_key) where state <> 'released';

-- Free InMails to open profiles are limited too (LinkedIn publishes no number; tools cite
-- 800-900 a month): a per-account monthly cap, counted per month of the account's own calendar.
alter table sender_accounts
    add column monthly_free_inmail_limit integer default 800 check (monthly_free_inmail_limit >= 0);  -- null: no cap
create index reservations_account_day_idx on reservations (account_id, local_day);

-- reserve_send as in 0002, but a released reservation no longer answers for its key, and free
-- InMails stop at the account's monthly cap.
create or replace function reserve_send(p_account bigint, p_delivery_key text, p_channel text, p_uses_credit boolean)
returns table (reservation_id bigint, refusal text, retry_at timestamptz)
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    plan plans;
    existing reservations;
    now_business timestamptz := clock_now();
    local_now timestamp;
    today date;
    usage daily_usage;
    spend_from credit_grants;
    new_reservation reservations;
    spacing interval;
    opens_at timestamptz;
begin
    select * into existing from reservations r where r.delivery_key = p_delivery_key and r.state <> 'released';
    if found then
        -- A retry of the same delivery: held, it keeps its reservation; settled, it is told so.
        return query select existing.id, case when existing.state = 'held' then null else 'already_' || existing.state end,
                            null::timestamptz;
        return;
    end if;
    select * into plan from plans where code = account.plan_code;
    if account.status <> 'active' then                               -- A6, A7, paused
        return query select null::bigint, 'account_' || account.status,
            case when account.status = 'cancelled' then null else now_business + interval '1 hour' end;
        return;
    end if;
    if p_channel = 'inmail' and not plan.can_send_inmail then        -- A1
        return query select null::bigint, 'plan_cannot_send_inmail', null::timestamptz;
        return;
    end if;
    opens_at := next_working_moment(account, now_business);
    if opens_at > now_business then
        return query select null::bigint, 'outside_working_hours', opens_at;
        return;
    end if;
    if account.next_send_at > now_business then
        return query select null::bigint, 'too_soon_after_last_send', account.next_send_at;
        return;
    end if;
    local_now := account_local_now(account);
    today := local_now::date;
    insert into daily_usage (account_id, local_day, inmail_limit, message_limit)
    values (p_account, today, account.daily_inmail_limit, account.daily_message_limit)
    on conflict (account_id, local_day) do nothing;
    select * into usage from daily_usage where account_id = p_account and local_day = today;
    if (p_channel = 'inmail' and usage.inmails >= usage.inmail_limit)
       or (p_channel = 'message' and usage.messages >= usage.message_limit) then   -- S6
        return query select null::bigint, 'daily_limit_reached',
            next_working_moment(account, (today + 1)::timestamp at time zone account.time_zone);
        return;
    end if;
    if p_channel = 'inmail' and not p_uses_credit and account.monthly_free_inmail_limit is not null
       and (select count(*) from reservations r
            where r.account_id = p_account and r.local_day >= date_trunc('month', today)::date
              and r.channel = 'inmail' and r.grant_id is null and r.state <> 'released') >= account.monthly_free_inmail_limit then
        return query select null::bigint, 'free_inmail_monthly_limit',
            next_working_moment(account, (date_trunc('month', today) + interval '1 month')::timestamp at time zone account.time_zone);
        return;
    end if;
    if p_uses_credit then
        perform expire_credits(p_account);
        if credit_balance(p_account) <= account.credit_reserve then     -- S7, S8
            return query select null::bigint, 'credits_at_reserve',
                least(next_billing_cycle_start(account.billing_anchor, plan.renewal_anchor, now_business::date)::timestamp
                          at time zone 'UTC' + interval '1 hour',
                      now_business + interval '6 hours');
            return;
        end if;
        select * into spend_from from credit_grants g
        where g.account_id = p_account and g.remaining > 0 and g.expires_at > now_business
        order by g.expires_at, g.id
        limit 1;
        update credit_grants set remaining = remaining - 1 where id = spend_from.id;
    end if;
    insert into reservations (account_id, delivery_key, channel, grant_id, local_day)
    values (p_account, p_delivery_key, p_channel, spend_from.id, today)
    returning * into new_reservation;
    if p_uses_credit then
        insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note)
        values (p_account, 'reserve', -1, spend_from.id, new_reservation.id, p_delivery_key);
    end if;
    update daily_usage
    set inmails = inmails + (p_channel = 'inmail')::int, messages = messages + (p_channel = 'message')::int
    where account_id = p_account and local_day = today;
    spacing := account.min_spacing + random() * (account.max_spacing - account.min_spacing);
    update sender_accounts set next_send_at = now_business + spacing where id = p_account;
    return query select new_reservation.id, null::text, null::timestamptz;
end $$;

-- Every message the system sends: the first InMail (step 0; a regular message to a 1st-degree
-- connection, S3) and the follow-ups (steps 1-5). The row is written before delivery
-- ('sending') and marked 'sent' with the courier's receipt in the transaction that spends the
-- reservation, so a retry after a crash finds it and delivers again under the same key.
create table messages (
    id             bigint generated always as identity primary key,
    contact_id     bigint not null references contacts,
    campaign_id    bigint not null references campaigns,
    account_id     bigint not null references sender_accounts,
    member_key     text not null,
    step           smallint not null check (step between 0 and 5),
    channel        text not null check (channel in ('inmail', 'message')),
    uses_credit    boolean not null check (channel = 'inmail' or not uses_credit),
    delivery_key   text not null unique,
    subject        text,
    body           text not null,
    reservation_id bigint not null unique references reservations,
    state          text not null default 'sending' check (state in ('sending', 'sent')),
    receipt        text,
    created_at     timestamptz not null default clock_now(),
    sent_at        timestamptz,
    responded_at   timestamptz,                                 -- the first response
    unique (contact_id, step),                                  -- one message per contact and step
    check ((state = 'sent') = (sent_at is not null and receipt is not null)),
    check (responded_at is null or state = 'sent')
);

-- S4: while an InMail from an account to a member awaits its response, no other InMail from
-- that account may go to that member (a row that is still 'sending' counts).
create unique index messages_one_open_inmail_idx on messages (account_id, member_key)
    where channel = 'inmail' and responded_at is null;

create index messages_account_idx on messages (account_id);
create index messages_campaign_idx on messages (campaign_id);

-- S5 in the database: a stored text never exceeds message_limits, whatever wrote it.
create function messages_within_limits() returns trigger
language plpgsql as $$
declare
    subject_limit integer := (select max_characters from message_limits where part = 'subject');
    body_limit integer := (select max_characters from message_limits where part = 'body');
begin
    if length(new.subject) > subject_limit then
        raise exception 'message % subject has % characters, more than the limit of % (S5)',
            new.delivery_key, length(new.subject), subject_limit using errcode = '23514';
    end if;
    if length(new.body) > body_limit then
        raise exception 'message % body has % characters, more than the limit of % (S5)',
            new.delivery_key, length(new.body), body_limit using errcode = '23514';
    end if;
    return new;
end $$;

create trigger messages_within_limits
    before insert or update of subject, body on messages
    for each row execute function messages_within_limits();

-- A contact stays with the sender account that first wrote to it: every message of a contact
-- goes from the contact's sender.
create function messages_from_the_contacts_sender() returns trigger
language plpgsql as $$
begin
    if new.account_id is distinct from (select sender_account_id from contacts where id = new.contact_id) then
        raise exception 'message % goes from account %, but contact %''s sender is account %', new.delivery_key, new.account_id,
            new.contact_id, (select sender_account_id from contacts where id = new.contact_id) using errcode = '23514';
    end if;
    return new;
end $$;

create trigger messages_from_the_contacts_sender
    before insert or update of account_id, contact_id on messages
    for each row execute function messages_from_the_contacts_sender();

-- ... and its sender cannot change once a message went out.
create function contacts_sender_is_sticky() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from messages where contact_id = new.id) then
        raise exception 'contact % already has messages from account %; its sender cannot change', new.id, old.sender_account_id
            using errcode = '23514';
    end if;
    return new;
end $$;

create trigger contacts_sender_is_sticky
    before update of sender_account_id on contacts
    for each row when (old.sender_account_id is not null and new.sender_account_id is distinct from old.sender_account_id)
    execute function contacts_sender_is_sticky();

-- R2-R5 as data: what each kind of response means for the contact and the reports.
create table response_kinds (
    kind       text primary key,
    label      text not null,
    outcome    text not null check (outcome in ('accepted', 'declined', 'replied')),  -- the contact's status
    acceptance boolean not null,                     -- counted as accepted (C4)
    responder  boolean not null                      -- counted as a responder (R4)
);
insert into response_kinds values
    ('accepted_default', 'Accepted with LinkedIn''s default message', 'accepted', true,  false),  -- R3
    ('interested',       'Auto-reply: Interested',                   'accepted', true,  false),  -- R2
    ('maybe_later',      'Auto-reply: Maybe later',                  'accepted', true,  false),  -- R2
    ('accepted_edited',  'Accepted with an edited message',          'replied',  true,  true),   -- R4
    ('reply',            'Free-text reply',                          'replied',  false, true),   -- R4
    ('declined',         'Declined',                                 'declined', false, false),  -- R5
    ('not_interested',   'Auto-reply: Not interested',               'declined', false, false);  -- R2, R5

-- Responses as they arrive. The same kind twice for a message (a webhook delivered twice) is
-- one response.
create table responses (
    id            bigint generated always as identity primary key,
    message_id    bigint not null references messages,
    kind          text not null references response_kinds,
    text          text,
    received_at   timestamptz not null default clock_now(),
    credited_back boolean not null default false,              -- R1: this response gave the credit back
    unique (message_id, kind)
);

create index responses_message_idx on responses (message_id);

-- The delivery key of a contact's step: what the reservation, the message and the courier share.
create function delivery_key(p_contact bigint, p_step integer) returns text
language sql immutable as $$ select format('contact:%s:step:%s', p_contact, p_step) $$;

-- C3: enqueues follow-up p_step of an accepted contact. The first follow-up is due its delay
-- after the InMail, or at once when the acceptance comes later (it then goes the same day as
-- the acceptance); each later one its delay after the previous follow-up. With no such step the
-- sequence is finished. Returns when it is due, or null when the sequence ended.
create function schedule_follow_up(p_contact bigint, p_step integer) returns timestamptz
language plpgsql as $$
declare
    contact contacts;
    next_step campaign_steps;
    previous messages;
    due timestamptz;
begin
    select * into contact from contacts where id = p_contact;
    select * into next_step from campaign_steps where campaign_id = contact.campaign_id and position = p_step;
    if not found then
        update contacts set status = 'finished', last_event_at = clock_now()
        where id = p_contact and status = 'accepted';
        return null;
    end if;
    select * into previous from messages where contact_id = p_contact and step = p_step - 1 and state = 'sent';
    if not found then
        raise exception 'contact % has no sent step % to follow up', p_contact, p_step - 1 using errcode = '55000';
    end if;
    due := greatest(clock_now(), previous.sent_at + next_step.delay_days * interval '1 day');
    insert into jobs (kind, args, run_at, state, max_attempts, unique_key, partition_key)
    values ('inmail.follow_up',
            jsonb_build_object('contact_id', p_contact, 'step', p_step, 'account_id', previous.account_id,
                               'delivery_key', delivery_key(p_contact, p_step), 'channel', 'message',
                               'uses_credit', false),
            due, case when due > clock_now() then 'scheduled' else 'available' end::job_state, 25,
            delivery_key(p_contact, p_step), previous.account_id::text)
    on conflict (unique_key) where unique_key is not null do nothing;
    return due;
end $$;

-- R1-R5: records a response to a sent message. The first response to a credit InMail within
-- 90 days gives its credit back (R1, R2). An acceptance of the InMail (R3) starts the
-- follow-ups; an edited acceptance or a reply (R4) stops the sequence, and the reply stops
-- every other sequence of the workspace aimed at the member too; a decline (R5) ends it.
create function record_response(p_message bigint, p_kind text, p_text text default null)
returns table (response_id bigint, outcome text, credited_back boolean, contact_status text)
language plpgsql as $$
declare
    meaning response_kinds;
    message messages;
    contact contacts;
    new_response bigint;
    back boolean := false;
    new_status text;
begin
    select * into meaning from response_kinds where response_kinds.kind = p_kind;
    if not found then
        raise exception 'unknown response kind "%" (use one of: %)', p_kind,
            (select string_agg(k.kind, ', ' order by k.kind) from response_kinds k) using errcode = '22023';
    end if;
    select * into message from messages where id = p_message;
    if not found then
        raise exception 'no message with id %', p_message using errcode = 'P0002';
    end if;
    if message.state <> 'sent' then
        raise exception 'message % has not been delivered yet; it cannot have a response', p_message using errcode = '55000';
    end if;
    select * into contact from contacts where id = message.contact_id for update;
    insert into responses (message_id, kind, text) values (p_message, p_kind, p_text)
    on conflict (message_id, kind) do nothing
    returning id into new_response;
    if new_response is null then
        return query select null::bigint, 'duplicate'::text, false, contact.status;
        return;
    end if;
    if message.responded_at is null then
        update messages set responded_at = clock_now() where id = p_message;
        if message.uses_credit then
            back := credit_back(message.reservation_id);
            update responses set credited_back = back where id = new_response;
        end if;
    end if;
    new_status := case
        when meaning.outcome = 'replied' and contact.status in ('sent', 'accepted', 'finished') then 'replied'
        when meaning.outcome = 'declined' and contact.status = 'sent' and message.step = 0 then 'declined'
        when meaning.outcome = 'accepted' and contact.status = 'sent' and message.step = 0 then 'accepted'
        else contact.status
    end;
    update contacts set status = new_status, last_event_at = clock_now() where id = contact.id;
    if new_status = 'accepted' and contact.status = 'sent' then
        perform schedule_follow_up(contact.id, 1);
        select status into new_status from contacts where id = contact.id;
    elsif new_status = 'replied' then
        update contacts set status = 'skipped', last_event_at = clock_now(),
               reason = format('the member replied to campaign %s of the workspace', contact.campaign_id)
        where workspace_id = contact.workspace_id and member_key = contact.member_key and id <> contact.id
          and status in ('waiting', 'sent', 'accepted');
    end if;
    return query select new_response, meaning.outcome, back, new_status;
end $$;

-- Starts a campaign's waiting contacts: opted-out members are skipped at once (S2); the others
-- get a sticky sender from the pool, spread in proportion to each account's daily InMail limit,
-- and a send job on that account. A 1st-degree connection gets a regular message, no credit
-- (S3); an open profile a free InMail (S1). Runs again safely: it adds only what is missing.
-- Returns how many send jobs it enqueued.
create function enqueue_sends(p_campaign bigint) returns integer
language plpgsql as $$
declare
    enqueued integer;
begin
    if (select status from campaigns where id = p_campaign) is distinct from 'active' then
        return 0;
    end if;
    update contacts set status = 'skipped', reason = 'opted out of InMail (S2)', last_event_at = clock_now()
    where campaign_id = p_campaign and status = 'waiting' and opted_out;
    -- Weighted round robin: each account appears once per unit of its daily limit (limits above
    -- 100 count as 100), interleaved; contact n takes slot n modulo the number of slots.
    with slots as materialized (
        select a.id, row_number() over (order by slot, a.id) - 1 as n
        from campaign_senders cs
        join sender_accounts a on a.id = cs.account_id
        join plans p on p.code = a.plan_code
        cross join generate_series(1, least(greatest(a.daily_inmail_limit, 1), 100)) as slot
        where cs.campaign_id = p_campaign and a.status <> 'cancelled' and p.can_send_inmail
    ), unassigned as materialized (
        select id, (row_number() over (order by id) - 1) % (select count(*) from slots) as slot
        from contacts
        where campaign_id = p_campaign and status = 'waiting' and sender_account_id is null
    )
    update contacts c set sender_account_id = s.id
    from unassigned u join slots s on s.n = u.slot   -- a hash join: the slot is computed per contact first
    where c.id = u.id;
    insert into jobs (kind, args, max_attempts, unique_key, partition_key)
    select 'inmail.send',
           jsonb_build_object('contact_id', c.id, 'step', 0, 'account_id', c.sender_account_id,
                              'delivery_key', delivery_key(c.id, 0),
                              'channel', case when c.connection_degree = 1 then 'message' else 'inmail' end,
                              'uses_credit', c.connection_degree is distinct from 1 and not c.open_profile),
           25, delivery_key(c.id, 0), c.sender_account_id::text
    from contacts c
    where c.campaign_id = p_campaign and c.status = 'waiting' and c.sender_account_id is not null
      and not exists (select 1 from messages m where m.contact_id = c.id and m.step = 0 and m.state = 'sent')
    order by c.id
    on conflict (unique_key) where unique_key is not null do nothing;
    get diagnostics enqueued = row_count;
    return enqueued;
end $$;

-- Reports (C4) ---------------------------------------------------------------------------------

-- Each message with what its responses mean.
create view message_outcomes as
select m.*,
       coalesce(o.accepted, false) as accepted,
       coalesce(o.declined, false) as declined,
       coalesce(o.responder, false) as responder,
       coalesce(o.responded, false) as responded,
       coalesce(o.credited_back, false) as credited_back
from messages m
left join lateral (
    select bool_or(k.acceptance) as accepted, bool_or(k.outcome = 'declined') as declined,
           bool_or(k.responder) as responder, count(*) > 0 as responded, bool_or(r.credited_back) as credited_back
    from responses r join response_kinds k on k.kind = r.kind
    where r.message_id = m.id
) o on true;

-- Sent messages counted per campaign, per sender account, and per both (the other key is null).
-- Response rate: first messages with any response, per first message sent.
create view message_stats as
select campaign_id, account_id,
       count(*) filter (where step = 0 and channel = 'inmail')                     as inmails_sent,
       count(*) filter (where step = 0 and channel = 'inmail' and not uses_credit) as free_inmails,     -- S1
       count(*) filter (where step = 0 and uses_credit)                            as credit_inmails,
       count(*) filter (where step = 0 and channel = 'message')                    as connection_messages,  -- S3
       count(*) filter (where step = 0 and accepted)                               as accepted,
       count(*) filter (where step = 0 and declined)                               as declined,
       count(*) filter (where step = 0 and responded)                              as responses,
       count(distinct contact_id) filter (where responder)                         as responders,        -- R4
       round(100.0 * count(*) filter (where step = 0 and responded)
             / nullif(count(*) filter (where step = 0), 0), 1)                     as response_rate_pct,
       count(*) filter (where step > 0)                                            as follow_ups_sent,
       count(*) filter (where uses_credit)                                         as credits_spent,
       count(*) filter (where credited_back)                                       as credits_back       -- R1
from message_outcomes
where state = 'sent'
group by grouping sets ((campaign_id), (account_id), (campaign_id, account_id));

-- Where a contact stands, in words: the People view.
create view contact_progress as
select c.id as contact_id, c.campaign_id, c.workspace_id, c.member_key, c.profile_url,
       c.first_name, c.last_name, c.company, c.title, c.sender_account_id, c.status,
       case c.status
           when 'skipped' then c.reason
           when 'failed' then c.reason
           when 'waiting' then case
               when cp.status <> 'active' then 'campaign is ' || cp.status
               when c.sender_account_id is null then 'no sender account in the pool can take it'
               when a.status <> 'active' then 'sender account is ' || replace(a.status, '_', ' ') || ' (A7: work waits)'
               when send_job.id is null then 'not queued'
               when send_job.state = 'running' then 'being sent'
               when (send_job.args->>'uses_credit')::boolean and credit_balance(a.id) <= a.credit_reserve
                   then 'waiting for credits (S7, S8)'
               when exists (select 1 from daily_usage u
                            where u.account_id = a.id and u.local_day = (clock_now() at time zone a.time_zone)::date
                              and u.inmails >= u.inmail_limit)
                   then 'daily InMail limit of its sender reached (S6)'
               when send_job.args->>'channel' = 'inmail' and not (send_job.args->>'uses_credit')::boolean
                    and (select count(*) from reservations r
                         where r.account_id = a.id and r.channel = 'inmail' and r.grant_id is null and r.state <> 'released'
                           and r.local_day >= date_trunc('month', clock_now() at time zone a.time_zone)::date)
                        >= a.monthly_free_inmail_limit
                   then 'monthly free InMail cap of its sender reached'
               when send_job.run_at > clock_now()
                   then 'next send slot of its sender: ' || to_char(send_job.run_at at time zone a.time_zone, 'YYYY-MM-DD HH24:MI')
                        || ' ' || a.time_zone
               else 'queued'
           end
           when 'sent' then 'awaiting a response'
           when 'accepted' then coalesce('accepted; next follow-up due '
               || to_char(follow_up.run_at at time zone a.time_zone, 'YYYY-MM-DD HH24:MI') || ' ' || a.time_zone,
               'accepted; follow-up being sent')
           when 'declined' then 'declined: no follow-ups (R5)'
           when 'replied' then 'responded: sequence stopped (R4)'
           when 'finished' then 'every follow-up sent'
       end as reason,
       last_event.event as last_event,
       c.last_event_at
from contacts c
join campaigns cp on cp.id = c.campaign_id
left join sender_accounts a on a.id = c.sender_account_id
left join jobs send_job on send_job.unique_key = delivery_key(c.id, 0)
left join lateral (
    select j.run_at from jobs j
    where j.unique_key = delivery_key(c.id, (select coalesce(max(m.step), 0) + 1 from messages m where m.contact_id = c.id))
) follow_up on c.status = 'accepted'
left join lateral (
    select e.event from (
        select m.sent_at as at,
               case when m.step > 0 then format('follow-up %s sent', m.step)
                    when m.channel = 'inmail' and m.uses_credit then 'InMail sent (1 credit)'
                    when m.channel = 'inmail' then 'free InMail sent (open profile)'
                    else 'message sent (1st-degree connection)' end as event
        from messages m where m.contact_id = c.id and m.state = 'sent'
        union all
        select r.received_at, 'response: ' || k.label
        from responses r join messages m on m.id = r.message_id join response_kinds k on k.kind = r.kind
        where m.contact_id = c.id
    ) e
    order by e.at desc limit 1
) last_event on true;

-- Per campaign: the message numbers, then where its contacts stand.
create view campaign_report as
select c.id as campaign_id, c.workspace_id, w.name as workspace, c.name as campaign, c.status,
       coalesce(s.inmails_sent, 0) as inmails_sent, coalesce(s.free_inmails, 0) as free_inmails,
       coalesce(s.credit_inmails, 0) as credit_inmails, coalesce(s.connection_messages, 0) as connection_messages,
       coalesce(s.accepted, 0) as accepted, coalesce(s.declined, 0) as declined,
       coalesce(s.responses, 0) as responses, coalesce(s.responders, 0) as responders,
       coalesce(s.response_rate_pct, 0) as response_rate_pct, coalesce(s.follow_ups_sent, 0) as follow_ups_sent,
       coalesce(s.credits_spent, 0) as credits_spent, coalesce(s.credits_back, 0) as credits_back,
       k.contacts, k.waiting, k.in_sequence, k.finished, k.skipped, k.failed, k.stopped_by_reason
from campaigns c
join workspaces w on w.id = c.workspace_id
left join message_stats s on s.campaign_id = c.id and s.account_id is null
cross join lateral (
    select count(*) as contacts,
           count(*) filter (where status = 'waiting') as waiting,
           count(*) filter (where status in ('sent', 'accepted')) as in_sequence,
           count(*) filter (where status in ('declined', 'replied', 'finished')) as finished,
           count(*) filter (where status = 'skipped') as skipped,
           count(*) filter (where status = 'failed') as failed,
           coalesce((select jsonb_object_agg(reason, n order by reason) from (
               select status || ': ' || reason as reason, count(*) as n from contacts
               where campaign_id = c.id and status in ('skipped', 'failed') group by 1) r), '{}') as stopped_by_reason
    from contacts where campaign_id = c.id
) k;

-- Per sender account: the message numbers, its credits (spent, back, expired, held now) and its waiting contacts.
create view sender_report as
select a.id as account_id, a.workspace_id, a.display_name, p.name as plan, a.status,
       coalesce(s.inmails_sent, 0) as inmails_sent, coalesce(s.free_inmails, 0) as free_inmails,
       coalesce(s.credit_inmails, 0) as credit_inmails, coalesce(s.connection_messages, 0) as connection_messages,
       coalesce(s.accepted, 0) as accepted, coalesce(s.declined, 0) as declined,
       coalesce(s.responses, 0) as responses, coalesce(s.responders, 0) as responders,
       coalesce(s.response_rate_pct, 0) as response_rate_pct, coalesce(s.follow_ups_sent, 0) as follow_ups_sent,
       coalesce(s.credits_spent, 0) as credits_spent, coalesce(s.credits_back, 0) as credits_back,
       coalesce((select -sum(l.amount) from credit_ledger l where l.account_id = a.id and l.entry = 'expire'), 0)::integer
           as credits_expired,
       credit_balance(a.id) as credit_balance, p.credit_cap,
       (select count(*) from contacts ct where ct.sender_account_id = a.id and ct.status = 'waiting') as contacts_waiting
from sender_accounts a
join plans p on p.code = a.plan_code
left join message_stats s on s.account_id = a.id and s.campaign_id is null;

-- Pauses an active campaign: its jobs wait (deferred when claimed) until it is activated again.
create function pause_campaign(p_campaign bigint) returns text
language plpgsql as $$
declare
    current_status text := (select status from campaigns where id = p_campaign for update);
begin
    if current_status is null then
        raise exception 'no campaign with id %', p_campaign using errcode = 'P0002';
    end if;
    if current_status <> 'active' then
        raise exception 'campaign % is %; only an active campaign can be paused', p_campaign, current_status
            using errcode = '55000';
    end if;
    update campaigns set status = 'paused' where id = p_campaign;
    return 'paused';
end $$;

-- Spending needs no account lock: it neither changes the balance nor the usage, and the update
-- of the reservation row itself decides a race with a release (the loser finds it not held).
-- Handlers finishing sends therefore never queue behind a claim that holds the account.
create or replace function spend_reservation(p_reservation bigint) returns void
language plpgsql as $$
declare
    r reservations;
begin
    update reservations set state = 'spent', settled_at = clock_now() where id = p_reservation and state = 'held'
    returning * into r;
    if not found then
        if not exists (select 1 from reservations where id = p_reservation) then
            raise exception 'no reservation with id %', p_reservation using errcode = 'P0002';
        end if;
        raise exception 'reservation % is not held', p_reservation using errcode = '55000';
    end if;
    if r.grant_id is not null then
        insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note)
        values (r.account_id, 'spend', 0, r.grant_id, r.id, r.delivery_key);
    end if;
end $$;

-- An entry of zero credits (a spend) cannot unbalance the ledger or pass the cap: it is not checked.
drop trigger credit_invariants_hold on credit_ledger;
create constraint trigger credit_invariants_hold
    after insert on credit_ledger
    deferrable initially deferred
    for each row when (new.amount <> 0) execute function credit_invariants_hold();

-- A delivered message, in one statement: the message is sent with the courier's receipt, its
-- reservation spent, the contact moved on, and after a follow-up the next one scheduled (C3).
--
-- It commits without waiting for the WAL flush (synchronous_commit off for its transaction):
-- only a crash of the server itself can lose it, and then the job's completion, committed
-- later and durably, is lost with it; the job runs again and delivers under the same key,
-- which the courier answers with its first receipt. Claims and reservations stay durable.
create function record_delivery(p_message bigint, p_receipt text) returns void
language plpgsql as $$
declare
    message messages;
begin
    perform set_config('synchronous_commit', 'off', true);
    update messages set state = 'sent', receipt = p_receipt, sent_at = clock_now()
    where id = p_message and state = 'sending'
    returning * into message;
    if not found then
        raise exception 'message % is not being sent', p_message using errcode = '55000';
    end if;
    perform spend_reservation(message.reservation_id);
    update contacts set status = case when message.step = 0 then 'sent' else status end, last_event_at = clock_now()
    where id = message.contact_id;
    if message.step > 0 then
        perform schedule_follow_up(message.contact_id, message.step + 1);
    end if;
end $$;

-- reserve_send for a whole claimed batch in one round trip, in the order given (the caller
-- sorts by account, so two claims lock accounts in the same order and never deadlock).
create function reserve_sends(p_accounts bigint[], p_keys text[], p_channels text[], p_uses_credit boolean[])
returns table (delivery_key text, reservation_id bigint, refusal text, retry_at timestamptz)
language plpgsql as $$
begin
    for i in 1 .. coalesce(array_length(p_keys, 1), 0) loop
        return query select p_keys[i], r.reservation_id, r.refusal, r.retry_at
                     from reserve_send(p_accounts[i], p_keys[i], p_channels[i], p_uses_credit[i]) r;
    end loop;
end $$;

-- The ledger check in O(1): each account carries the running sum of its ledger and of its
-- grants' remaining credits, kept by triggers on those two tables (and by nothing else), so the
-- check at commit compares two numbers instead of summing an ever longer ledger. Changes to the
-- grants are now checked too, not only ledger entries.
alter table sender_accounts
    add column ledger_total integer not null default 0,
    add column grants_total integer not null default 0;
update sender_accounts a
set ledger_total = coalesce((select sum(amount) from credit_ledger l where l.account_id = a.id), 0),
    grants_total = coalesce((select sum(remaining) from credit_grants g where g.account_id = a.id), 0);

create function credit_ledger_add_to_total() returns trigger
language plpgsql as $$
begin
    update sender_accounts set ledger_total = ledger_total + new.amount where id = new.account_id;
    return null;
end $$;

create trigger credit_ledger_add_to_total
    after insert on credit_ledger
    for each row when (new.amount <> 0) execute function credit_ledger_add_to_total();

create function credit_grants_add_to_total() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and new.account_id = old.account_id then  -- the common case, in one update
        update sender_accounts set grants_total = grants_total + new.remaining - old.remaining where id = new.account_id;
        return null;
    end if;
    if tg_op in ('UPDATE', 'DELETE') then
        update sender_accounts set grants_total = grants_total - old.remaining where id = old.account_id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        update sender_accounts set grants_total = grants_total + new.remaining where id = new.account_id;
    end if;
    return null;
end $$;

create trigger credit_grants_add_to_total
    after insert or update of remaining, account_id or delete on credit_grants
    for each row execute function credit_grants_add_to_total();

-- The totals change only through those triggers.
create function sender_accounts_totals_kept_by_triggers() returns trigger
language plpgsql as $$
begin
    if pg_trigger_depth() < 2 then
        raise exception 'ledger_total and grants_total of account % are kept by the database; change credits with the credit functions',
            new.id using errcode = '42501';
    end if;
    return new;
end $$;

create trigger sender_accounts_totals_kept_by_triggers
    before update of ledger_total, grants_total on sender_accounts
    for each row when (new.ledger_total is distinct from old.ledger_total or new.grants_total is distinct from old.grants_total)
    execute function sender_accounts_totals_kept_by_triggers();

create or replace function credit_invariants_hold() returns trigger
language plpgsql as $$
declare
    account sender_accounts;
    cap integer;
begin
    select * into account from sender_accounts where id = new.account_id;
    if account.ledger_total <> account.grants_total then
        raise exception 'credit ledger of account % says %, its grants hold %', new.account_id, account.ledger_total, account.grants_total
            using errcode = '23514';
    end if;
    -- Only an increase can pass the cap: a reserve moves a credit from the balance to held, a
    -- spend or expiry lowers them.
    if tg_table_name = 'credit_ledger' then
        if new.amount <= 0 then return null; end if;
    elsif tg_op = 'UPDATE' then
        if new.remaining <= old.remaining then return null; end if;
    end if;
    select p.credit_cap into cap from plans p where p.code = account.plan_code;
    if credit_balance(new.account_id) + credit_held(new.account_id) > cap then
        raise exception 'account % would hold more than its cap of % credits (A5)', new.account_id, cap
            using errcode = '23514';
    end if;
    return null;
end $$;

create constraint trigger credit_grants_invariants_hold
    after insert or update of remaining on credit_grants
    deferrable initially deferred
    for each row execute function credit_invariants_hold();

-- A reservation is held only while its job is unfinished. A job can end without settling it
-- (its last attempt failed on an error, or its worker died on the last attempt): then nothing
-- would ever give its slot and credit back. This releases such reservations once they are ten
-- minutes old, unless a message under their key is still 'sending' (it may have gone out: those
-- stay held and are counted for an operator to look at), and fails the contact whose send or
-- follow-up job ended that way. Returns how many it released. Run by the elected worker.
create function release_orphaned_reservations() returns integer
language plpgsql as $$
declare
    orphan record;
    released integer := 0;
begin
    for orphan in
        select r.id, r.delivery_key from reservations r
        where r.state = 'held' and r.reserved_at < clock_now() - interval '10 minutes'
          and not exists (select 1 from jobs j where j.unique_key = r.delivery_key)
          and not exists (select 1 from jobs j where j.partition_key = r.account_id::text and j.args->>'delivery_key' = r.delivery_key)
          and not exists (select 1 from messages m where m.delivery_key = r.delivery_key and m.state = 'sending')
        order by r.account_id
    loop
        perform release_reservation(orphan.id, 'its job ended without sending');
        update contacts set status = 'failed', reason = 'its send job ended without sending (see job_history)', last_event_at = clock_now()
        where id = case when orphan.delivery_key ~ '^contact:[0-9]+:step:[0-9]+$'
                        then split_part(orphan.delivery_key, ':', 2)::bigint end
          and status in ('waiting', 'accepted');
        released := released + 1;
    end loop;
    return released;
end $$;

-- Adds members to a workspace's do-not-contact list and stops every sequence of the workspace
-- aimed at them (no InMail yet, or follow-ups still to come). Returns how many were newly
-- listed and how many contacts were stopped.
create function add_to_do_not_contact(p_workspace bigint, p_member_keys text[], p_reason text default null)
returns table (listed integer, stopped integer)
language plpgsql as $$
declare
    new_entries integer;
    stopped_contacts integer;
begin
    if not exists (select 1 from workspaces where id = p_workspace) then
        raise exception 'no workspace with id %', p_workspace using errcode = 'P0002';
    end if;
    insert into do_not_contact (workspace_id, member_key, reason)
    select p_workspace, k, p_reason from unnest(p_member_keys) as k
    on conflict do nothing;
    get diagnostics new_entries = row_count;
    update contacts set status = 'skipped', reason = 'on the do-not-contact list', last_event_at = clock_now()
    where workspace_id = p_workspace and member_key = any(p_member_keys) and status in ('waiting', 'sent', 'accepted');
    get diagnostics stopped_contacts = row_count;
    return query select new_entries, stopped_contacts;
end $$;

-- Ends a campaign as completed (its work is done) or archived (put away). Contacts not yet
-- written to are skipped; sequences in flight send nothing more (their jobs find the campaign
-- ended); responses to messages already sent are still recorded and still credit back.
create function end_campaign(p_campaign bigint, p_status text) returns text
language plpgsql as $$
declare
    current_status text := (select status from campaigns where id = p_campaign for update);
begin
    if current_status is null then
        raise exception 'no campaign with id %', p_campaign using errcode = 'P0002';
    end if;
    if p_status not in ('completed', 'archived') then
        raise exception 'a campaign ends as completed or archived, not %', p_status using errcode = '22023';
    end if;
    if current_status = p_status or current_status = 'archived' then
        raise exception 'campaign % is already %', p_campaign, current_status using errcode = '55000';
    end if;
    update campaigns set status = p_status where id = p_campaign;
    update contacts set status = 'skipped', reason = 'campaign ' || p_status, last_event_at = clock_now()
    where campaign_id = p_campaign and status = 'waiting';
    return p_status;
end $$;

-- S8: credit InMails that wait for credits are sent to again once credits are refunded,
-- bought or renewed: the one way credits arrive now also wakes the account's credit jobs that
-- wait (at most six hours, as reserve_send defers them); one still short of credits is simply
-- deferred again by its claim.
create or replace function add_credit_grant(
    p_account bigint, p_source text, p_entry text, p_amount integer, p_granted_at timestamptz,
    p_lifetime interval, p_note text, p_reservation bigint default null
) returns bigint
language plpgsql as $$
declare
    new_grant bigint;
    woken integer;
begin
    insert into credit_grants (account_id, source, amount, remaining, granted_at, expires_at)
    values (p_account, p_source, p_amount, p_amount, p_granted_at, p_granted_at + p_lifetime)
    returning id into new_grant;
    insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note)
    values (p_account, p_entry, p_amount, new_grant, p_reservation, p_note);
    update jobs set state = 'available', run_at = clock_now()
    where partition_key = p_account::text and state = 'scheduled'
      and run_at <= clock_now() + interval '6 hours' and (args->>'uses_credit')::boolean;
    get diagnostics woken = row_count;
    if woken > 0 then
        perform pg_notify('queue_jobs_available', 'credits');
    end if;
    return new_grant;
end $$;
