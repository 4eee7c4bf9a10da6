-- The inbox's functions: receiving the gateway's webhooks (inbox_receive, called by
-- `inmailq serve`) and turning each into domain changes (inbox_process, the `inbox.process`
-- job). Rule ids (R1-R5) are those of the README's "Platform rules".

-- A member's message text as reply_phrases keys it: lower case, single spaces, trimmed, no
-- trailing punctuation.
create or replace function inbox_phrase(p_text text) returns text
language sql immutable as $$
    select rtrim(lower(regexp_replace(btrim(coalesce(p_text, '')), '\s+', ' ', 'g')), ' .!?…')
$$;

-- Stores webhooks (their JSON bodies, in order) and enqueues one `inbox.process` job for the
-- new ones, in the caller's transaction: the caller acknowledges them only after its commit.
-- Returns, per position, the inbox row and whether it is new (false: a replay, nothing done).
-- With p_wake_workers false the workers are not notified at commit: the caller calls
-- queue_notify after its commit instead (see jobs_notify_available), so that many callers'
-- commits can share a WAL flush.
drop function if exists inbox_receive(jsonb[]);
create or replace function inbox_receive(p_payloads jsonb[], p_wake_workers boolean default true)
returns table (inbox_id bigint, stored boolean)
language plpgsql as $$
begin
    if not p_wake_workers then
        perform set_config('queue.notify', 'later', true);
    end if;
    return query
    with input as (
        select t.payload, t.position,
               case when t.payload ? 'AccountStatus' then 'account_status'
                    else coalesce(left(t.payload->>'event', 200), 'unknown') end as event,
               left(coalesce(t.payload->>'account_id', t.payload->'AccountStatus'->>'account_id'), 500) as account,
               left(t.payload->>'chat_id', 500) as chat
        from unnest(p_payloads) with ordinality as t(payload, position)
    ), keyed as (
        select input.*,
               case
                   when event = 'message_received' and payload->>'message_id' is not null
                       then 'message:' || left(payload->>'message_id', 900)
                   when event = 'account_status' and account is not null then (
                       -- The account's latest status event: the same status again is a replay.
                       select case when latest.payload->'AccountStatus'->>'message'
                                        is not distinct from input.payload->'AccountStatus'->>'message'
                                   then latest.event_key
                                   else format('account_status:%s:%s:after:%s', account,
                                               left(input.payload->'AccountStatus'->>'message', 100), coalesce(latest.id, 0))
                              end
                       from (select null) as one
                       left join lateral (
                           select i.id, i.event_key, i.payload from gateway_inbox i
                           where i.event = 'account_status' and i.gateway_account_id = input.account
                           order by i.id desc limit 1
                       ) latest on true)
                   else 'other:' || encode(sha256(convert_to(payload::text, 'UTF8')), 'hex')
               end as event_key
        from input
    ), inserted as (
        insert into gateway_inbox (event_key, event, gateway_account_id, chat_id, payload)
        select k.event_key, k.event, k.account, k.chat, k.payload from keyed k order by k.position
        on conflict (event_key) do nothing
        returning gateway_inbox.id, gateway_inbox.event_key
    ), new_jobs as (
        -- One job for the new events of the call: a batch of webhooks costs one enqueue.
        select queue_enqueue(array['inbox.process'], array[jsonb_build_object('inbox_ids', jsonb_agg(i.id order by i.id))],
                             '{}', '{}', '{}', '{}', '{}') as job_id
        from inserted i
        having count(*) > 0
    )
    select coalesce(n.id, (select old.id from gateway_inbox old where old.event_key = k.event_key)), n.id is not null
    from keyed k
    left join inserted n on n.event_key = k.event_key
    cross join lateral (select count(*) from new_jobs) as enqueued  -- runs the enqueue
    order by k.position;
end $$;

-- Applies one stored webhook, once: a second call (a retried job) changes nothing. Returns
-- what it did, in words, also kept in the row's outcome.
--   message_received: the account's own message (is_sender, or the sender is the account's
--     own member, or its id is a receipt of ours) is never a response. A member's message in a
--     chat we started is a response to our latest message there: a canned answer
--     (reply_phrases) is its kind, any other text a reply (R4). record_response gives the
--     credit back (R1, R2), moves the contact (R3-R5) and stops the member's other sequences
--     in the workspace. A chat no message of ours is in yet is kept 'unmatched' (processed
--     again if one of our messages is recorded in it later).
--   account_status: CREDENTIALS, ERROR, STOPPED or DELETED pauses the bound account with the
--     reason; OK (or RECONNECTED, SYNC_SUCCESS, CREATION_SUCCESS) resumes it when the gateway
--     had paused it, never an account an operator paused.
--   anything else: kept as 'unknown_event'.
create or replace function inbox_process(p_id bigint) returns text
language plpgsql as $$
declare
    event gateway_inbox;
    new_state inbox_state := 'processed';
    done text;
    own boolean;
    message messages;
    kind text;
    response record;
    account sender_accounts;
    status text;
begin
    select * into event from gateway_inbox where id = p_id for update;
    if not found then
        raise exception 'no inbox event with id %', p_id using errcode = 'P0002';
    end if;
    if event.state <> 'received' then
        return format('already %s: %s', event.state, event.outcome);
    end if;

    if event.event = 'message_received' then
        own := coalesce(event.payload->>'is_sender', '') in ('true', '1')
            or event.payload->'sender'->>'attendee_provider_id' = event.payload->'account_info'->>'user_id'
            or exists (select 1 from messages m where m.chat_id = event.chat_id and m.receipt = event.payload->>'message_id');
        if own then
            done := 'the account''s own message: not a response';
        else
            select m.* into message from messages m
            where m.chat_id = event.chat_id and m.state = 'sent'
            order by m.step desc limit 1;
            if not found then
                new_state := 'unmatched';
                done := format('no message of inmailq was sent in chat %s', event.chat_id);
            else
                kind := coalesce((select p.kind from reply_phrases p where p.phrase = inbox_phrase(event.payload->>'message')),
                                 'reply');
                select * into response from record_response(message.id, kind, left(event.payload->>'message', 8000));
                done := case when response.outcome = 'duplicate'
                             then format('%s to message %s was already recorded: no change', kind, message.id)
                             else format('%s to message %s (contact %s): %s%s, contact %s', kind, message.id, message.contact_id,
                                         response.outcome, case when response.credited_back then ', credit back' else '' end,
                                         response.contact_status)
                        end;
            end if;
        end if;

    elsif event.event = 'account_status' then
        status := upper(event.payload->'AccountStatus'->>'message');
        select * into account from sender_accounts where gateway_account_id = event.gateway_account_id;
        if not found then
            new_state := 'unmatched';
            done := format('no sender account is bound to gateway account %s', event.gateway_account_id);
        elsif status in ('CREDENTIALS', 'ERROR', 'STOPPED', 'DELETED') then
            if account.status <> 'active' then
                done := format('gateway reports %s; account %s is already %s: no change', status, account.id, account.status);
            else
                perform set_account_status(account.id, 'paused', format('gateway reports %s: %s', status,
                    case status when 'CREDENTIALS' then 'the account is disconnected; reconnect it at the gateway'
                                when 'DELETED' then 'the account was removed from the gateway'
                                else 'LinkedIn restricted or stopped the account' end));
                done := format('account %s paused: gateway reports %s', account.id, status);
            end if;
        elsif status in ('OK', 'RECONNECTED', 'SYNC_SUCCESS', 'CREATION_SUCCESS') then
            if account.status = 'paused' and account.status_reason like 'gateway%' then
                perform set_account_status(account.id, 'active');
                done := format('account %s resumed: gateway reports %s', account.id, status);
            else
                done := format('gateway reports %s; account %s is %s: no change', status, account.id, account.status);
            end if;
        else
            done := format('gateway reports %s for account %s: no change', coalesce(status, 'no status'), account.id);
        end if;

    else
        new_state := 'unknown_event';
        done := format('inmailq does not handle "%s" events; kept', event.event);
    end if;

    update gateway_inbox set state = new_state, outcome = left(done, 2000), processed_at = now() where id = p_id;
    return done;
end $$;

-- One of our messages is recorded in a chat: events kept 'unmatched' for that chat (a reply
-- that overtook our own record of the send) are processed again.
create or replace function inbox_rematch_chat() returns trigger
language plpgsql as $$
declare
    waiting bigint[];
begin
    with again as (
        update gateway_inbox set state = 'received', processed_at = null,
                                 outcome = 'processed again: a message of inmailq was recorded in its chat'
        where chat_id = new.chat_id and state = 'unmatched'
        returning id
    )
    select array_agg(id order by id) into waiting from again;
    if waiting is not null then
        perform queue_enqueue(array['inbox.process'], array[jsonb_build_object('inbox_ids', to_jsonb(waiting))],
                              '{}', '{}', '{}', '{}', '{}');
    end if;
    return null;
end $$;

drop trigger if exists messages_inbox_rematch on messages;
create trigger messages_inbox_rematch
    after update of chat_id on messages
    for each row when (new.chat_id is not null and old.chat_id is distinct from new.chat_id)
    execute function inbox_rematch_chat();
