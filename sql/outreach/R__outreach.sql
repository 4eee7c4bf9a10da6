-- outreach: the current definition of the functions, triggers and report views of campaigns,
-- contacts, messages and responses (re-applied whenever this file changes). Rule ids are those
-- of README.md, "Platform rules". Jobs are enqueued and looked up through the queue's SQL
-- interface (queue_enqueue, queue_job, queue_jobs_in), never by naming its table.

-- Campaigns ----------------------------------------------------------------------------------

-- Steps change only while a campaign is a draft or paused: activation checked its templates,
-- so an active campaign's texts cannot be edited past that check.
create or replace function campaign_steps_editable() returns trigger
language plpgsql as $$
declare
    status campaign_status := (select c.status from campaigns c where c.id = coalesce(new.campaign_id, old.campaign_id));
begin
    if status not in ('draft', 'paused') then
        raise exception 'campaign % is %; pause it to change its steps', coalesce(new.campaign_id, old.campaign_id), status
            using errcode = '55000';
    end if;
    return coalesce(new, old);
end $$;

create or replace trigger campaign_steps_editable
    before insert or update or delete on campaign_steps
    for each row execute function campaign_steps_editable();

create or replace function campaign_senders_same_workspace() returns trigger
language plpgsql as $$
declare
    campaign_workspace bigint;
    account_workspace bigint;
begin
    -- Unknown ids are named here, before the foreign keys would refuse them in their own words.
    select workspace_id into campaign_workspace from campaigns where id = new.campaign_id;
    if not found then
        raise exception 'no campaign with id %', new.campaign_id using errcode = 'P0002';
    end if;
    select workspace_id into account_workspace from sender_accounts where id = new.account_id;
    if not found then
        raise exception 'no sender account with id %', new.account_id using errcode = 'P0002';
    end if;
    if campaign_workspace <> account_workspace then
        raise exception 'sender account % is not in the workspace of campaign %', new.account_id, new.campaign_id
            using errcode = '23514';
    end if;
    return new;
end $$;

create or replace trigger campaign_senders_same_workspace
    before insert or update on campaign_senders
    for each row execute function campaign_senders_same_workspace();

-- The check of a campaign id a person gave (admin scripts' -v campaign=..., `contacts list`):
-- raises for an unknown id; null passes (the scripts' "every campaign").
create or replace function require_campaign(p_campaign bigint) returns bigint
language plpgsql stable as $$
begin
    if p_campaign is not null and not exists (select 1 from campaigns where id = p_campaign) then
        raise exception 'no campaign with id %', p_campaign using errcode = 'P0002';
    end if;
    return p_campaign;
end $$;

-- True while a credit InMail of the account is being posted to the gateway (posted, not yet
-- recorded): LinkedIn may have counted its credit already while the ledger still holds it, so
-- the two counts are not compared then (GatewayCreditSync).
create or replace function credit_inmail_being_posted(p_account bigint) returns boolean
language sql stable as $$
    select exists (select 1 from messages m
                   where m.account_id = p_account and m.state = 'sending' and m.uses_credit and m.posted_at is not null)
$$;

-- C1: a campaign, its steps copied from a seed campaign of the same agency when one is given.
create or replace function create_campaign(p_workspace bigint, p_name text, p_seed bigint default null) returns bigint
language plpgsql as $$
declare
    new_id bigint;
begin
    if not exists (select 1 from workspaces where id = p_workspace) then
        raise exception 'no workspace with id %', p_workspace using errcode = 'P0002';
    end if;
    if p_seed is not null and not exists (
        select 1 from campaigns c join workspaces seed_ws on seed_ws.id = c.workspace_id
        join workspaces ws on ws.agency_id = seed_ws.agency_id
        where c.id = p_seed and ws.id = p_workspace) then
        raise exception 'no seed campaign % in the agency of workspace %', p_seed, p_workspace using errcode = 'P0002';
    end if;
    insert into campaigns (workspace_id, name, seed_campaign_id) values (p_workspace, btrim(p_name), p_seed)
    returning id into new_id;
    insert into campaign_steps (campaign_id, position, subject, body, delay_days)
    select new_id, position, subject, body, delay_days from campaign_steps where campaign_id = p_seed;
    return new_id;
exception when unique_violation then
    raise exception 'workspace % already has a campaign named "%"', p_workspace, btrim(p_name) using errcode = '23505';
end $$;

-- Activation needs the InMail step and at least one active sender; templates are checked by
-- the application before it calls this (they need the template parser).
create or replace function activate_campaign(p_campaign bigint) returns text
language plpgsql as $$
declare
    campaign campaigns;
begin
    select * into campaign from campaigns where id = p_campaign for update;
    if not found then
        raise exception 'no campaign with id %', p_campaign using errcode = 'P0002';
    end if;
    if campaign.status not in ('draft', 'paused') then
        raise exception 'campaign % is %; only a draft or paused campaign can be activated', p_campaign, campaign.status
            using errcode = '55000';
    end if;
    if not exists (select 1 from campaign_steps where campaign_id = p_campaign and position = 0) then
        raise exception 'campaign % has no InMail step (step 0)', p_campaign using errcode = '55000';
    end if;
    if (select max(position) + 1 from campaign_steps where campaign_id = p_campaign)
       <> (select count(*) from campaign_steps where campaign_id = p_campaign) then
        raise exception 'campaign % has a gap between its follow-up steps (numbered %)', p_campaign,
            (select string_agg(position::text, ', ' order by position) from campaign_steps where campaign_id = p_campaign)
            using errcode = '55000';
    end if;
    if not exists (select 1 from campaign_senders cs join sender_accounts a on a.id = cs.account_id
                   where cs.campaign_id = p_campaign and a.status <> 'cancelled') then
        raise exception 'campaign % has no sender account in its pool', p_campaign using errcode = '55000';
    end if;
    update campaigns set status = 'active', activated_at = coalesce(activated_at, clock_now()) where id = p_campaign;
    return 'active';
end $$;

-- Pauses an active campaign: its jobs wait (deferred when claimed) until it is activated again.
create or replace function pause_campaign(p_campaign bigint) returns text
language plpgsql as $$
declare
    current_status campaign_status := (select status from campaigns where id = p_campaign for update);
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

-- Ends a campaign as completed (its work is done) or archived (put away). Contacts not yet
-- written to are skipped; sequences in flight send nothing more (their jobs find the campaign
-- ended); responses to messages already sent are still recorded and still credit back.
create or replace function end_campaign(p_campaign bigint, p_status text) returns text
language plpgsql as $$
declare
    current_status campaign_status := (select status from campaigns where id = p_campaign for update);
begin
    if current_status is null then
        raise exception 'no campaign with id %', p_campaign using errcode = 'P0002';
    end if;
    if p_status is null or p_status not in ('completed', 'archived') then
        raise exception 'a campaign ends as completed or archived, not %', p_status using errcode = '22023';
    end if;
    if current_status::text = p_status or current_status = 'archived' then
        raise exception 'campaign % is already %', p_campaign, current_status using errcode = '55000';
    end if;
    update campaigns set status = p_status::campaign_status where id = p_campaign;
    update contacts set status = 'skipped', reason = 'campaign ' || p_status, last_event_at = clock_now()
    where campaign_id = p_campaign and status = 'waiting';
    return p_status;
end $$;

-- Contacts ------------------------------------------------------------------------------------

-- Contacts are added to a workspace by one transaction at a time: the adding transaction takes
-- this lock first, then (in a later statement, so its snapshot shows what the one before it
-- added) counts members in another in-progress campaign of the workspace instead of relying on
-- ON CONFLICT, which probes every unique index twice per row. FOR NO KEY UPDATE lets the foreign-key
-- checks of workers go on. Returns the campaign's workspace; null for an unknown campaign.
create or replace function lock_campaign_workspace(p_campaign bigint) returns bigint
language sql as $$
    select w.id from workspaces w join campaigns c on c.workspace_id = w.id
    where c.id = p_campaign
    for no key update of w
$$;

-- A contact's campaign exists and is in the contact's workspace (the workspace is the
-- campaign's: the in-progress index and the readers' policy go by it). The rule of a composite
-- foreign key to campaigns (id, workspace_id), checked once per statement on its distinct
-- campaigns rather than once per row (0009_contacts_campaign_checked_per_statement.sql). Like a
-- foreign key, it locks the campaigns it finds in key share mode: none of them is deleted or moved
-- to another workspace until the transaction ends (campaigns_keep_their_contacts).
create or replace function contacts_in_their_campaign() returns trigger
language plpgsql as $$
declare
    named record;
begin
    for named in select distinct n.campaign_id, n.workspace_id from new_rows n order by n.campaign_id loop
        -- (a campaign deleted or moved meanwhile is not found: the lock reads its latest version)
        perform 1 from campaigns c where c.id = named.campaign_id and c.workspace_id = named.workspace_id for key share;
        if not found then
            raise exception 'no campaign % in workspace % for a contact', named.campaign_id, named.workspace_id
                using errcode = '23503';
        end if;
    end loop;
    return null;
end $$;

-- Inserts are checked per statement (their rows also feed contacts_counted, which shares the
-- transition table); an update that moves a contact is checked per row, as only such an update
-- fires it (a statement trigger with a transition table cannot name columns).
create or replace function contact_in_its_campaign() returns trigger
language plpgsql as $$
begin
    perform 1 from campaigns c where c.id = new.campaign_id and c.workspace_id = new.workspace_id for key share;
    if not found then
        raise exception 'no campaign % in workspace % for contact %', new.campaign_id, new.workspace_id, new.id
            using errcode = '23503';
    end if;
    return null;
end $$;

create or replace trigger contacts_in_their_campaign
    after insert on contacts
    referencing new table as new_rows
    for each statement execute function contacts_in_their_campaign();

create or replace trigger contact_in_its_campaign
    after update of campaign_id, workspace_id on contacts
    for each row when (new.campaign_id is distinct from old.campaign_id or new.workspace_id is distinct from old.workspace_id)
    execute function contact_in_its_campaign();

-- The other side of that rule: a campaign with contacts is never deleted nor moved to another
-- workspace. The check must see every contact committed, including those of a transaction
-- it waited for (its row lock waits for their key share locks): it does in read committed,
-- where each statement reads anew; a transaction that reads one snapshot throughout may not,
-- so there such a change is refused outright.
create or replace function campaigns_keep_their_contacts() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and new.workspace_id = old.workspace_id then
        return new;
    end if;
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'campaign % can be deleted or moved only in a read committed transaction', old.id
            using errcode = '25000';
    end if;
    if exists (select 1 from contacts where campaign_id = old.id) then
        raise exception 'campaign % has contacts; it cannot be deleted or moved to another workspace', old.id
            using errcode = '23503';
    end if;
    return case when tg_op = 'DELETE' then old else new end;
end $$;

create or replace trigger campaigns_keep_their_contacts
    before delete or update of workspace_id on campaigns
    for each row execute function campaigns_keep_their_contacts();

-- A contact's sender is one of its campaign's pool (enqueue_sends picks from it; nothing else may
-- pick another) ...
create or replace function contacts_sender_in_the_pool() returns trigger
language plpgsql as $$
begin
    if not exists (select 1 from campaign_senders where campaign_id = new.campaign_id and account_id = new.sender_account_id) then
        raise exception 'sender account % is not in the pool of campaign % (add it with campaigns add-sender first)',
            new.sender_account_id, new.campaign_id using errcode = '23514';
    end if;
    return new;
end $$;

-- (These checks of contacts and messages run after the row is written: a BEFORE UPDATE row
-- trigger, even one whose columns an update does not set, makes every update of the table lock
-- each row first, a WAL record per row, which a delivery's update of its message and contact
-- would pay.)
create or replace trigger contacts_sender_in_the_pool
    after insert or update of sender_account_id, campaign_id on contacts
    for each row when (new.sender_account_id is not null) execute function contacts_sender_in_the_pool();

-- ... and an account leaves a pool only while none of the campaign's contacts is assigned to it.
create or replace function campaign_senders_keep_assigned() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from contacts where campaign_id = old.campaign_id and sender_account_id = old.account_id) then
        raise exception 'sender account % has contacts in campaign %; it stays in the pool', old.account_id, old.campaign_id
            using errcode = '23503';
    end if;
    return old;
end $$;

create or replace trigger campaign_senders_keep_assigned
    before delete or update of account_id, campaign_id on campaign_senders
    for each row execute function campaign_senders_keep_assigned();

-- A contact stays with the sender account that first wrote to it, in its campaign and with its
-- member key, once a message went out (its messages name all three, see
-- messages_of_their_contact) ...
drop trigger if exists contacts_sender_is_sticky on contacts;  -- the sender alone
drop function if exists contacts_sender_is_sticky();
create or replace function contacts_stay_with_their_messages() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from messages where contact_id = new.id) then
        if new.campaign_id <> old.campaign_id then
            raise exception 'contact % already has messages in campaign %; it cannot move to another campaign', new.id, old.campaign_id
                using errcode = '23514';
        end if;
        if new.member_key <> old.member_key then
            raise exception 'contact % already has messages to member %; its member key cannot change', new.id, old.member_key
                using errcode = '23514';
        end if;
        raise exception 'contact % already has messages from account %; its sender cannot change', new.id, old.sender_account_id
            using errcode = '23514';
    end if;
    return new;
end $$;

create or replace trigger contacts_stay_with_their_messages
    after update of sender_account_id, campaign_id, member_key on contacts
    for each row when ((old.sender_account_id is not null and new.sender_account_id is distinct from old.sender_account_id)
                       or new.campaign_id <> old.campaign_id or new.member_key <> old.member_key)
    execute function contacts_stay_with_their_messages();

-- ... and a contact with messages is never deleted, nor any contact given another id. A delete
-- waits for the share lock of a transaction adding a message to the contact (its row lock, taken
-- before this check): in read committed the check then sees that message; a transaction that
-- reads one snapshot throughout may not, so there a delete is refused outright.
create or replace function contacts_keep_their_messages() returns trigger
language plpgsql as $$
begin
    if tg_level = 'STATEMENT' then
        if tg_op = 'UPDATE' then
            raise exception 'contact ids never change: messages name them' using errcode = '23001';
        end if;
        if exists (select 1 from messages) then
            raise exception 'contacts cannot be truncated: messages name them' using errcode = '23001';
        end if;
        return null;
    end if;
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'contact % can be deleted only in a read committed transaction', old.id using errcode = '25000';
    end if;
    if exists (select 1 from messages where contact_id = old.id) then   -- messages_contact_id_step_key
        raise exception 'contact % has messages; it cannot be deleted', old.id using errcode = '23503';
    end if;
    return old;
end $$;

create or replace trigger contacts_keep_their_messages
    before delete on contacts
    for each row execute function contacts_keep_their_messages();
create or replace trigger contacts_keep_their_ids
    before truncate or update of id on contacts
    for each statement execute function contacts_keep_their_messages();

-- Adds members to a workspace's do-not-contact list and stops every sequence of the workspace
-- aimed at them (no InMail yet, or follow-ups still to come). Returns how many were newly
-- listed and how many contacts were stopped.
create or replace function add_to_do_not_contact(p_workspace bigint, p_member_keys text[], p_reason text default null)
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
    where workspace_id = p_workspace and member_key = any(p_member_keys) and in_progress;
    get diagnostics stopped_contacts = row_count;
    return query select new_entries, stopped_contacts;
end $$;

-- Messages ------------------------------------------------------------------------------------

-- Each message is of an existing contact, to the contact's member (the key S4 goes by), in the
-- contact's campaign, from the contact's sender (C2, C3) and under an existing reservation: the
-- rule of foreign keys to contacts, campaigns,
-- sender_accounts and reservations, checked once per inserting statement over its rows rather
-- than by PostgreSQL row by row, four queries and three row locks a message
-- (0010_messages_checked_per_statement.sql). The contacts are locked in share mode, in id order,
-- like a foreign key but stronger: until the transaction ends none of them is deleted
-- (contacts_keep_their_messages) nor changes its member, campaign or sender
-- (contacts_stay_with_their_messages), and a change made first is waited for and read. Each
-- contact then vouches for the rest: a campaign with contacts stays (campaigns_keep_their_contacts),
-- the sender by the contact's own foreign key, and accounts and reservations are never deleted
-- (credit_history_kept). An update that sets one of those columns is checked row by row.
drop trigger if exists messages_from_the_contacts_sender on messages;           -- the sender alone
drop trigger if exists messages_from_the_contacts_sender_inserted on messages;
drop function if exists messages_from_the_contacts_sender();
create or replace function messages_of_their_contact() returns trigger
language plpgsql as $$
declare
    wrong record;
    stray record;
begin
    if tg_level = 'STATEMENT' then
        -- The contacts through their primary key, whatever the statement's size (a transition
        -- table joined to contacts directly may be planned as a scan of the whole table).
        with contact as materialized (
            select c.id, c.member_key, c.campaign_id, c.sender_account_id
            from contacts c
            where c.id = any(array(select distinct n.contact_id from new_rows n))
            order by c.id
            for share
        )
        select n.delivery_key, n.contact_id, n.member_key, n.campaign_id, n.account_id, c.id as found_id,
               c.member_key as contact_member_key, c.campaign_id as contact_campaign_id, c.sender_account_id into wrong
        from new_rows n left join contact c on c.id = n.contact_id
        where c.id is null or c.member_key <> n.member_key or c.campaign_id <> n.campaign_id
           or c.sender_account_id is distinct from n.account_id
        limit 1;
        select m.kind, m.id into stray
        from credit_history_missing('{}', array(select distinct n.reservation_id from new_rows n), '{}') as m;
    else
        with contact as materialized (   -- read and locked once, as above
            select c.id, c.member_key, c.campaign_id, c.sender_account_id from contacts c where c.id = new.contact_id for share
        )
        select new.delivery_key, new.contact_id, new.member_key, new.campaign_id, new.account_id, c.id as found_id,
               c.member_key as contact_member_key, c.campaign_id as contact_campaign_id, c.sender_account_id into wrong
        from (select 1) as one left join contact c on true
        where c.id is null or c.member_key <> new.member_key or c.campaign_id <> new.campaign_id
           or c.sender_account_id is distinct from new.account_id;
        select m.kind, m.id into stray from credit_history_missing('{}', array[new.reservation_id], '{}') as m;
    end if;
    if wrong.delivery_key is null then
        if stray.id is not null then
            raise exception 'a message names reservation %, which does not exist', stray.id using errcode = '23503';
        end if;
        return null;
    elsif wrong.found_id is null then
        raise exception 'message % names contact %, which does not exist', wrong.delivery_key, wrong.contact_id using errcode = '23503';
    elsif wrong.contact_member_key <> wrong.member_key then
        raise exception 'message % is to member %, but contact % is member %', wrong.delivery_key, wrong.member_key,
            wrong.contact_id, wrong.contact_member_key using errcode = '23514';
    elsif wrong.contact_campaign_id <> wrong.campaign_id then
        raise exception 'message % is in campaign %, but contact % is in campaign %', wrong.delivery_key, wrong.campaign_id,
            wrong.contact_id, wrong.contact_campaign_id using errcode = '23514';
    end if;
    raise exception 'message % goes from account %, but contact %''s sender is account %', wrong.delivery_key, wrong.account_id,
        wrong.contact_id, wrong.sender_account_id using errcode = '23514';
end $$;

create or replace trigger messages_of_their_contact
    after update of contact_id, member_key, campaign_id, account_id, reservation_id on messages
    for each row execute function messages_of_their_contact();
create or replace trigger messages_of_their_contact_inserted
    after insert on messages
    referencing new table as new_rows
    for each statement execute function messages_of_their_contact();

-- S5 in the database: a stored text never exceeds message_limits, whatever wrote it. Checked as
-- the contacts' sender is: per inserting statement, and per row of an update of a text.
create or replace function messages_within_limits() returns trigger
language plpgsql as $$
declare
    subject_limit integer := (select max_characters from message_limits where part = 'subject');
    body_limit integer := (select max_characters from message_limits where part = 'body');
    wrong record;
begin
    if tg_level = 'STATEMENT' then
        select n.delivery_key, n.subject, n.body into wrong
        from new_rows n
        where length(n.subject) > subject_limit or length(n.body) > body_limit
        limit 1;
        if not found then
            return null;
        end if;
    else
        select new.delivery_key, new.subject, new.body into wrong;
    end if;
    if length(wrong.subject) > subject_limit then
        raise exception 'message % subject has % characters, more than the limit of % (S5)',
            wrong.delivery_key, length(wrong.subject), subject_limit using errcode = '23514';
    end if;
    if length(wrong.body) > body_limit then
        raise exception 'message % body has % characters, more than the limit of % (S5)',
            wrong.delivery_key, length(wrong.body), body_limit using errcode = '23514';
    end if;
    return new;
end $$;

create or replace trigger messages_within_limits
    after update of subject, body on messages
    for each row execute function messages_within_limits();
create or replace trigger messages_within_limits_inserted
    after insert on messages
    referencing new table as new_rows
    for each statement execute function messages_within_limits();

-- Send and follow-up jobs ----------------------------------------------------------------------

-- The delivery key of a contact's step: what the reservation, the message and the courier share.
create or replace function delivery_key(p_contact bigint, p_step integer) returns text
language sql immutable as $$ select format('contact:%s:step:%s', p_contact, p_step) $$;

-- The args of an inmail.send or inmail.follow_up job: the one place SQL writes them. The Swift
-- side reads them as SendJob.Args (Sources/InMail/SendJob.swift); a test checks that both agree.
-- queue_wake and queue_defer filters name its uses_credit and channel fields.
create or replace function send_job_args(p_contact bigint, p_step integer, p_account bigint, p_channel send_channel,
                                         p_uses_credit boolean) returns jsonb
language sql immutable as $$
    select jsonb_build_object('contact_id', p_contact, 'step', p_step, 'account_id', p_account,
                              'delivery_key', delivery_key(p_contact, p_step), 'channel', p_channel,
                              'uses_credit', p_uses_credit and p_channel = 'inmail')
$$;

-- Starts a campaign's waiting contacts: opted-out members are skipped at once (S2); the others
-- get a sticky sender from the pool, spread in proportion to each account's daily InMail limit,
-- and a send job on that account. A 1st-degree connection gets a regular message, no credit
-- (S3); an open profile a free InMail (S1). Runs again safely: it adds only what is missing.
-- Returns how many send jobs it enqueued.
create or replace function enqueue_sends(p_campaign bigint) returns integer
language plpgsql as $$
declare
    kinds text[];
    args jsonb[];
    keys text[];
    partitions text[];
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
    select array_agg('inmail.send'::text order by c.id),
           array_agg(send_job_args(c.id, 0, c.sender_account_id,
                                   case when c.connection_degree = 1 then 'message' else 'inmail' end::send_channel,
                                   c.connection_degree is distinct from 1 and not c.open_profile) order by c.id),
           array_agg(delivery_key(c.id, 0) order by c.id),
           array_agg(c.sender_account_id::text order by c.id)
    into kinds, args, keys, partitions
    from contacts c
    where c.campaign_id = p_campaign and c.status = 'waiting' and c.sender_account_id is not null
      and not exists (select 1 from messages m where m.contact_id = c.id and m.step = 0 and m.state = 'sent');
    if kinds is null then
        return 0;
    end if;
    return (select count(job_id) from queue_enqueue(kinds, args, '{}', '{}', array_fill(25, array[cardinality(kinds)]),
                                                     keys, partitions));
end $$;

-- C3: enqueues follow-up p_step of an accepted contact. The first follow-up is due its delay
-- after the InMail, or at once when the acceptance comes later (it then goes the same day as
-- the acceptance); each later one its delay after the previous follow-up. With no such step the
-- sequence is finished. Returns when it is due, or null when the sequence ended.
create or replace function schedule_follow_up(p_contact bigint, p_step integer) returns timestamptz
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
    perform queue_enqueue(array['inmail.follow_up'], array[send_job_args(p_contact, p_step, previous.account_id, 'message', false)],
                          array[due], '{}', array[25], array[delivery_key(p_contact, p_step)], array[previous.account_id::text]);
    return due;
end $$;

-- What a batch of send and follow-up jobs needs to decide and render each send, read in one
-- statement: for each job (its contact, step, account and delivery key; i is its place in the
-- batch, from 1) its contact, the campaign and the step's template, the account's status, a
-- message an earlier run wrote under the key and the key's live reservation, the message limits
-- (S5), and whether an earlier InMail from the account to the member still awaits a response
-- (S4). A job whose contact is gone has no row. No lock: one job owns a contact's step, and the
-- constraints (one message per step, S4, S5) hold the line against anything else. A generic plan
-- kept for the session and made again every 100 calls, as reserve_sends' is (planning it on each
-- call took 1.1 ms a batch).
create or replace function send_batch(p_contacts bigint[], p_steps integer[], p_accounts bigint[], p_keys text[])
returns table (i bigint, status contact_status, member_key text, first_name text, last_name text, company text, title text,
               custom_fields text, campaign_id bigint, campaign_status campaign_status, template_subject text,
               template_body text, account_status account_status, message_id bigint, message_state message_state,
               subject text, body text, inactive_until timestamptz, reservation_id bigint,
               reservation_state reservation_state, subject_limit integer, body_limit integer, inmail_awaits_response boolean)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
begin
    perform discard_plans_every('inmailq.send_batch_calls', 100);
    return query
    select b.i, c.status, c.member_key, c.first_name, c.last_name, c.company, c.title, c.custom_fields::text,
           c.campaign_id, cp.status, s.subject, s.body,
           (select a.status from sender_accounts a where a.id = b.account_id),  -- by key, not a scan
           m.id, m.state, m.subject, m.body,
           (select clock_now() + inactive_account_retry_after()),  -- read once, not per row
           r.id, r.state,
           (select l.max_characters from message_limits l where l.part = 'subject'),
           (select l.max_characters from message_limits l where l.part = 'body'),
           exists (select 1 from messages o
                   where o.account_id = b.account_id and o.member_key = c.member_key and o.channel = 'inmail'
                     and o.responded_at is null and o.delivery_key <> b.delivery_key)
    from unnest(p_contacts, p_steps, p_accounts, p_keys) with ordinality as b(contact_id, step, account_id, delivery_key, i)
    join contacts c on c.id = b.contact_id
    join campaigns cp on cp.id = c.campaign_id
    left join campaign_steps s on s.campaign_id = c.campaign_id and s.position = b.step
    left join messages m on m.delivery_key = b.delivery_key
    left join reservations r on r.delivery_key = b.delivery_key and r.state <> 'released';
end $$;

-- Delivered messages, many in one statement: each message is sent with the courier's receipt
-- (and the conversation it went into, when the platform has one), its reservation spent, its
-- contact moved on, and after a follow-up the next one scheduled (C3); and the jobs that
-- delivered them (p_jobs) are completed in the same transaction (queue_complete), so a
-- delivery is recorded together with its job's end or not at all. Only while every one of those
-- jobs still holds its lease (p_lease_tokens): a run whose lease expired and whose job was
-- rescued changes nothing; the job's new run finds the message 'sending' and delivers again
-- under the same key, answered with the first receipt.
--
-- It commits durably (it once skipped the WAL flush, counting on the job's later completion to
-- be lost with it in a server crash; the chaos run showed a worker writing that completion
-- after the server came back, leaving a delivered message 'sending' for good).
drop function if exists record_delivery(bigint, text, bigint, bigint, text);  -- one delivery at a time
create or replace function record_deliveries(p_messages bigint[], p_receipts text[], p_jobs bigint[], p_lease_tokens bigint[],
                                             p_chats text[])
returns void
language plpgsql as $$
begin
    perform queue_complete(p_jobs, p_lease_tokens);
    perform mark_delivered(p_messages, p_receipts, p_chats);
end $$;

-- What deliveries change: each message is sent with its receipt (and chat, when not null), its
-- reservation spent, its contact moved on, and after a follow-up the next one scheduled (C3).
-- Raises, changing nothing, when a message is not being sent or its reservation is not held.
-- For record_deliveries and resolve_stuck_send only.
drop function if exists mark_delivered(bigint, text);  -- one message at a time
create or replace function mark_delivered(p_messages bigint[], p_receipts text[], p_chats text[] default null) returns void
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
    marked bigint[];
    spent bigint[];
    followed_contacts bigint[];
    followed_steps integer[];
    missing bigint;
    follow_up record;
    now_business timestamptz := clock_now();
begin
    -- A generic plan kept for the session and made again every 100 calls, as reserve_sends' is.
    perform discard_plans_every('inmailq.mark_delivered_calls', 100);
    with delivered as (
        select d.message_id, d.receipt, d.chat
        from unnest(p_messages, p_receipts, p_chats) as d(message_id, receipt, chat)  -- no chats: all null
    ),
    sent as (
        update messages m
        set state = 'sent', receipt = d.receipt, sent_at = now_business, chat_id = coalesce(d.chat, m.chat_id)
        from delivered d
        where m.id = d.message_id and m.state = 'sending'
        returning m.id, m.reservation_id, m.contact_id, m.step
    ),
    moved as (
        update contacts c set status = case when s.step = 0 then 'sent' else c.status end, last_event_at = now_business
        from sent s
        where c.id = s.contact_id
    )
    select coalesce(array_agg(s.id), '{}'), coalesce(array_agg(s.reservation_id), '{}'),
           -- the follow-ups sent, in message order: each schedules the next step (C3)
           coalesce(array_agg(s.contact_id order by s.id) filter (where s.step > 0), '{}'),
           coalesce(array_agg(s.step order by s.id) filter (where s.step > 0), '{}')
    into marked, spent, followed_contacts, followed_steps
    from sent s;
    select m into missing from unnest(p_messages) m where not m = any(marked) limit 1;
    if found then
        raise exception 'message % is not being sent', missing using errcode = '55000';
    end if;
    perform spend_reservations(spent);
    for follow_up in select f.contact_id, f.step from unnest(followed_contacts, followed_steps) as f(contact_id, step) loop
        perform schedule_follow_up(follow_up.contact_id, follow_up.step + 1);
    end loop;
end $$;

-- A reservation is held only while its job is unfinished. A job can end without settling it
-- (its last attempt failed on an error, or its worker died on the last attempt): then nothing
-- would ever give its slot and credit back. This releases such reservations once they are ten
-- minutes old, unless a message under their key is still 'sending' (it may have gone out: those
-- stay held and are counted for an operator to look at), and fails the contact whose send or
-- follow-up job ended that way. Returns how many it released. Run by the elected worker.
create or replace function release_orphaned_reservations() returns integer
language plpgsql as $$
declare
    orphan record;
    released integer := 0;
begin
    for orphan in
        select r.id, r.delivery_key from reservations r
        where r.settled_at is null and r.reserved_at < clock_now() - interval '10 minutes'  -- held
          and not exists (select 1 from queue_job(r.delivery_key))
          and not exists (select 1 from queue_jobs_in(r.account_id::text, jsonb_build_object('delivery_key', r.delivery_key)))
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

-- Sends whose outcome nobody knows: a message still 'sending' whose job is gone (it ended on an
-- error, or on its last attempt, after the courier may have delivered). Its reservation stays
-- held, as the message may have gone out: an operator checks the platform (or the gateway)
-- and settles it with sql/admin/resolve_stuck_send.sql.
create or replace view stuck_sends as
select m.delivery_key, m.contact_id, m.campaign_id, m.account_id, m.member_key, m.step, m.channel, m.created_at,
       r.id as reservation_id, r.reserved_at
from messages m
join reservations r on r.id = m.reservation_id and r.state = 'held'
where m.state = 'sending'
  and not exists (select 1 from queue_job(m.delivery_key));

-- Settles a stuck send (see stuck_sends) as an operator found it: delivered (p_went_out, with
-- the platform's message id as p_receipt when known) is recorded as a delivery; not delivered
-- gives the slot and credit back and queues the send again. Refuses anything else.
create or replace function resolve_stuck_send(p_delivery_key text, p_went_out boolean, p_receipt text default null)
returns text
language plpgsql as $$
declare
    stuck stuck_sends;
    message_id bigint;
begin
    select * into stuck from stuck_sends where delivery_key = p_delivery_key;
    if not found then
        raise exception 'no stuck send with key "%" (see: select * from stuck_sends)', p_delivery_key using errcode = 'P0002';
    end if;
    if p_went_out is null then
        raise exception 'say whether the message went out (went_out=yes or no)' using errcode = '22023';
    end if;
    select id into message_id from messages where delivery_key = p_delivery_key;
    if p_went_out then
        perform mark_delivered(array[message_id], array[coalesce(nullif(btrim(p_receipt), ''), 'confirmed by an operator')]);
        return 'recorded as delivered';
    end if;
    delete from messages where id = message_id;
    perform release_reservation(stuck.reservation_id, 'an operator found it was not delivered');
    if stuck.step = 0 then
        perform enqueue_sends(stuck.campaign_id);
    else
        perform schedule_follow_up(stuck.contact_id, stuck.step);
    end if;
    return 'released and queued again';
end $$;

-- Responses -------------------------------------------------------------------------------------

-- R1-R5: records a response to a sent message. The first response to a credit InMail within
-- 90 days gives its credit back (R1, R2). An acceptance of the InMail (R3) starts the
-- follow-ups; an edited acceptance or a reply (R4) stops the sequence, and the reply stops
-- every other sequence of the workspace aimed at the member too; a decline (R5) ends it.
-- outcome is the response kind's outcome, or 'duplicate' when the kind was recorded before.
create or replace function record_response(p_message bigint, p_kind text, p_text text default null)
returns table (response_id bigint, outcome text, credited_back boolean, contact_status contact_status)
language plpgsql as $$
declare
    meaning response_kinds;
    message messages;
    contact contacts;
    new_response bigint;
    back boolean := false;
    new_status contact_status;
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
        where workspace_id = contact.workspace_id and member_key = contact.member_key and id <> contact.id and in_progress;
    end if;
    return query select new_response, meaning.outcome::text, back, new_status;
end $$;

-- Reports (C4) ----------------------------------------------------------------------------------
-- create or replace view keeps a view's columns; a change that drops or retypes one needs a
-- "drop view ... cascade" here first (the views below that read it are re-created after it).

-- Each message with what its responses mean.
create or replace view message_outcomes as
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

-- Report counters (0005_report_counters.sql) ----------------------------------------------------

-- Adds counted changes, given as message_counts rows per campaign and account, under the two
-- keys they count for: the campaign and account, and the campaign alone (account null). An
-- account's numbers are the sum of its rows over its campaigns (message_stats), not a third key
-- (0012_account_counters_summed.sql). Changes that cancel out add no row, and no changes cost no
-- statement. PL/pgSQL, so that its insert is planned once per session (a SQL function's body is
-- planned on every call).
drop function if exists add_message_counts(jsonb);
create or replace function add_message_counts(p_changes message_counts[]) returns void
language plpgsql as $$
begin
    if cardinality(p_changes) = 0 then
        return;
    end if;
    insert into message_counts
    select k.campaign_id, k.account_id, sum(c.first_messages), sum(c.inmails_sent), sum(c.free_inmails), sum(c.credit_inmails), sum(c.connection_messages),
           sum(c.accepted), sum(c.declined), sum(c.responses), sum(c.responders), sum(c.follow_ups_sent), sum(c.credits_spent), sum(c.credits_back)
    from unnest(p_changes) as c
    cross join lateral (values (c.campaign_id, c.account_id), (c.campaign_id, null)) as k(campaign_id, account_id)
    group by k.campaign_id, k.account_id
    having sum(c.first_messages) <> 0 or sum(c.inmails_sent) <> 0 or sum(c.free_inmails) <> 0 or sum(c.credit_inmails) <> 0
        or sum(c.connection_messages) <> 0 or sum(c.accepted) <> 0 or sum(c.declined) <> 0 or sum(c.responses) <> 0
        or sum(c.responders) <> 0 or sum(c.follow_ups_sent) <> 0 or sum(c.credits_spent) <> 0 or sum(c.credits_back) <> 0;
end $$;

-- What a message counts for by itself (its responses aside), times p_sign.
drop function if exists message_count_row(messages, integer);
create or replace function message_count_row(m messages, p_sign integer) returns message_counts
language sql immutable as $$
    select row(m.campaign_id, m.account_id,
               p_sign * (m.step = 0)::integer,                                           -- first_messages
               p_sign * (m.step = 0 and m.channel = 'inmail')::integer,                  -- inmails_sent
               p_sign * (m.step = 0 and m.channel = 'inmail' and not m.uses_credit)::integer,  -- free_inmails
               p_sign * (m.step = 0 and m.uses_credit)::integer,                         -- credit_inmails
               p_sign * (m.step = 0 and m.channel = 'message')::integer,                 -- connection_messages
               0, 0, 0, 0,                                      -- accepted, declined, responses, responders
               p_sign * (m.step > 0)::integer,                                           -- follow_ups_sent
               p_sign * m.uses_credit::integer,                                          -- credits_spent
               0,                                                                        -- credits_back
               false)::message_counts                                                    -- folded
$$;

-- Sent messages count as they are after the statement, minus as they were before it: a
-- message whose counted columns did not change (a chat id, a response's time) cancels out.
-- (The two transition tables are never joined: the planner knows nothing of their sizes, and a
-- nested loop over a bulk update's would be quadratic.)
create or replace function messages_counted() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform add_message_counts(array(select message_count_row(n, 1) from new_rows n where n.state = 'sent'));
    elsif tg_op = 'DELETE' then
        perform add_message_counts(array(select message_count_row(o, -1) from old_rows o where o.state = 'sent'));
    else
        perform add_message_counts(array(select message_count_row(n, 1) from new_rows n where n.state = 'sent'
                                         union all
                                         select message_count_row(o, -1) from old_rows o where o.state = 'sent'));
    end if;
    return null;
end $$;

create or replace trigger messages_counted_inserted after insert on messages
    referencing new table as new_rows for each statement execute function messages_counted();
create or replace trigger messages_counted_updated after update on messages
    referencing old table as old_rows new table as new_rows for each statement execute function messages_counted();
create or replace trigger messages_counted_deleted after delete on messages
    referencing old table as old_rows for each statement execute function messages_counted();

-- What responses count for (accepted, declined, responded, responders, credits back) depends
-- on all of a message's responses and, for responders (R4), all of its contact's: those are
-- counted after the statement and as they were before it, and the difference added.
create or replace function responses_counted() returns trigger
language plpgsql as $$
declare
    changed jsonb;  -- the statement's response rows: 1 as they are now, -1 as they were
begin
    if tg_op in ('INSERT', 'UPDATE') then
        select jsonb_agg(jsonb_build_object('id', n.id, 'message_id', n.message_id, 'kind', n.kind,
                                            'credited_back', n.credited_back, 'sign', 1)) into changed
        from new_rows n;
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
        select coalesce(changed, '[]') || coalesce(jsonb_agg(jsonb_build_object('id', o.id, 'message_id', o.message_id,
                   'kind', o.kind, 'credited_back', o.credited_back, 'sign', -1)), '[]') into changed
        from old_rows o;
    end if;
    perform add_message_counts((
        with change as (
            select * from jsonb_to_recordset(changed) as c(id bigint, message_id bigint, kind text, credited_back boolean, sign integer)
        ),
        touched as (  -- every message of the contacts whose responses changed
            select m.id, m.campaign_id, m.account_id, m.contact_id, m.step
            from messages m
            where m.contact_id in (select t.contact_id from messages t where t.id in (select message_id from change))
        ),
        versions as (  -- their responses now (1) and before the statement (-1)
            select r.message_id, r.kind, r.credited_back, 1 as version
            from responses r where r.message_id in (select id from touched)
            union all
            select r.message_id, r.kind, r.credited_back, -1
            from responses r
            where r.message_id in (select id from touched) and r.id not in (select id from change where sign = 1)
            union all
            select message_id, kind, credited_back, -1 from change where sign = -1
        ),
        per_message as (
            select v.version, v.message_id, bool_or(k.acceptance) as accepted, bool_or(k.outcome = 'declined') as declined,
                   bool_or(k.responder) as responder, bool_or(v.credited_back) as credited_back
            from versions v join response_kinds k on k.kind = v.kind
            group by v.version, v.message_id
        ),
        per_contact as (
            select p.version, m.campaign_id, m.account_id,
                   count(*) filter (where m.step = 0 and p.accepted) as accepted,
                   count(*) filter (where m.step = 0 and p.declined) as declined,
                   count(*) filter (where m.step = 0) as responses,
                   bool_or(p.responder)::integer as responders,
                   count(*) filter (where p.credited_back) as credits_back
            from per_message p join touched m on m.id = p.message_id
            group by p.version, m.campaign_id, m.account_id, m.contact_id
        )
        select array_agg(row(campaign_id, account_id, 0, 0, 0, 0, 0, version * accepted, version * declined,
                             version * responses, version * responders, 0, 0, version * credits_back, false)::message_counts)
        from per_contact));
    return null;
end $$;

create or replace trigger responses_counted_inserted after insert on responses
    referencing new table as new_rows for each statement execute function responses_counted();
create or replace trigger responses_counted_updated after update on responses
    referencing old table as old_rows new table as new_rows for each statement execute function responses_counted();
create or replace trigger responses_counted_deleted after delete on responses
    referencing old table as old_rows for each statement execute function responses_counted();

-- Contacts counted per campaign, status and reason: each statement adds what it moved.
create or replace function contacts_counted() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into contact_counts (campaign_id, status, reason, contacts)
        select campaign_id, status, reason, count(*) from new_rows group by 1, 2, 3;
    elsif tg_op = 'DELETE' then
        insert into contact_counts (campaign_id, status, reason, contacts)
        select campaign_id, status, reason, -count(*) from old_rows group by 1, 2, 3;
    else
        -- (a contact whose status did not change cancels out; no join, as for messages)
        insert into contact_counts (campaign_id, status, reason, contacts)
        select campaign_id, status, reason, sum(sign)
        from (select campaign_id, status, reason, 1 as sign from new_rows
              union all
              select campaign_id, status, reason, -1 from old_rows) as moves
        group by 1, 2, 3
        having sum(sign) <> 0;
    end if;
    return null;
end $$;

create or replace trigger contacts_counted_inserted after insert on contacts
    referencing new table as new_rows for each statement execute function contacts_counted();
create or replace trigger contacts_counted_updated after update on contacts
    referencing old table as old_rows new table as new_rows for each statement execute function contacts_counted();
create or replace trigger contacts_counted_deleted after delete on contacts
    referencing old table as old_rows for each statement execute function contacts_counted();

-- Folds the rows of each key that changed since the last compaction (a row not folded: added
-- by a trigger) into one (a key whose contacts come to 0 into none); returns how many rows it
-- removed. Run by the elected worker once a minute; it reads the changed keys, never the whole
-- tables. Two at once are safe: a row the other folded first is gone by the time this one's
-- delete reaches it, so not counted twice.
-- The changed keys are few and the tables large, but the planner cannot know how many keys the
-- first statement finds: it sorted a whole table to merge-join them (90 ms for 600 keys with
-- 100,000 accounts). Nested loops over the indexes read only those keys' rows (55 ms for 6,000).
create or replace function compact_report_counters() returns integer
language plpgsql
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
    removed integer;
    contacts_removed integer;
begin
    -- A key is a campaign and an account, or a campaign alone (account null); each kind is
    -- deleted through message_counts_campaign_idx, as = never matches a null.
    with keys as (
        select distinct campaign_id, account_id from message_counts where not folded   -- message_counts_unfolded_idx
    ),
    gone as (
        delete from message_counts m using keys k
        where m.campaign_id = k.campaign_id and m.account_id = k.account_id
        returning m.*
    ),
    gone_campaigns as (
        delete from message_counts m using keys k
        where k.account_id is null and m.campaign_id = k.campaign_id and m.account_id is null
        returning m.*
    ),
    all_gone as (
        select * from gone union all select * from gone_campaigns
    ),
    folded as (
        insert into message_counts
        select campaign_id, account_id, sum(first_messages), sum(inmails_sent), sum(free_inmails), sum(credit_inmails), sum(connection_messages), sum(accepted),
               sum(declined), sum(responses), sum(responders), sum(follow_ups_sent), sum(credits_spent), sum(credits_back), true
        from all_gone group by campaign_id, account_id
        returning 1
    )
    select (select count(*) from all_gone) - (select count(*) from folded) into removed;

    with keys as (
        select distinct campaign_id from contact_counts where not folded   -- contact_counts_unfolded_idx
    ),
    gone as (
        delete from contact_counts c using keys k
        where c.campaign_id = k.campaign_id
        returning c.*
    ),
    folded as (
        insert into contact_counts (campaign_id, status, reason, contacts, folded)
        select campaign_id, status, reason, sum(contacts), true from gone group by 1, 2, 3 having sum(contacts) <> 0
        returning 1
    )
    select (select count(*) from gone) - (select count(*) from folded) into contacts_removed;
    return removed + contacts_removed;
end $$;

-- Sent messages counted per campaign, per sender account, and per both (the other key is null),
-- summed from the counters. Response rate: first messages with any response, per first message sent.
-- The counters are kept per campaign and account and per campaign; an account's line sums its
-- rows over its campaigns (the second branch). A report's where clause on campaign_id and
-- account_id reaches both branches, so each reads only its key's rows through an index.
create or replace view message_stats as
select campaign_id, account_id,
       sum(inmails_sent)::bigint        as inmails_sent,
       sum(free_inmails)::bigint        as free_inmails,          -- S1
       sum(credit_inmails)::bigint      as credit_inmails,
       sum(connection_messages)::bigint as connection_messages,   -- S3
       sum(accepted)::bigint            as accepted,
       sum(declined)::bigint            as declined,
       sum(responses)::bigint           as responses,
       sum(responders)::bigint          as responders,            -- R4
       round(100.0 * sum(responses) / nullif(sum(first_messages), 0), 1) as response_rate_pct,
       sum(follow_ups_sent)::bigint     as follow_ups_sent,
       sum(credits_spent)::bigint       as credits_spent,
       sum(credits_back)::bigint        as credits_back          -- R1
from (
    select campaign_id, account_id, first_messages, inmails_sent, free_inmails, credit_inmails, connection_messages,
           accepted, declined, responses, responders, follow_ups_sent, credits_spent, credits_back
    from message_counts
    union all
    select null, account_id, first_messages, inmails_sent, free_inmails, credit_inmails, connection_messages,
           accepted, declined, responses, responders, follow_ups_sent, credits_spent, credits_back
    from message_counts where account_id is not null    -- message_counts_account_idx
) counters
group by campaign_id, account_id;

-- Where a contact stands, in words: the People view.
create or replace view contact_progress as
select c.id as contact_id, c.campaign_id, c.workspace_id, c.member_key, c.profile_url,
       c.first_name, c.last_name, c.company, c.title, c.sender_account_id, c.status,
       case c.status
           when 'skipped' then c.reason
           when 'failed' then c.reason
           when 'waiting' then case
               when cp.status <> 'active' then 'campaign is ' || cp.status
               when c.sender_account_id is null then 'no sender account in the pool can take it'
               when a.status = 'payment_failed' then 'the sender account''s payment failed (A7: work waits until the card is updated)'
               when a.status <> 'active' then 'sender account is ' || a.status || ' (A7: work waits)'
               when send_job.id is null and exists (select 1 from messages m where m.contact_id = c.id and m.state = 'sending')
                   then 'delivery unconfirmed: its job ended while sending (see stuck_sends, sql/admin/resolve_stuck_send.sql)'
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
left join lateral queue_job(delivery_key(c.id, 0)) send_job on true
left join lateral (
    select j.run_at
    from queue_job(delivery_key(c.id, (select coalesce(max(m.step), 0) + 1 from messages m where m.contact_id = c.id))) j
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
create or replace view campaign_report as
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
-- Per campaign (OFFSET 0 keeps the planner from flattening this into a join with every
-- campaign's sums): each campaign reads only its own counters (message_counts_campaign_idx).
-- Flattened, an agency's report summed every campaign's counters once per workspace (300 ms on
-- bench scale's 100 workspaces, against 6 ms).
left join lateral (select * from message_stats where campaign_id = c.id and account_id is null offset 0) s on true
cross join lateral (
    select coalesce(sum(contacts), 0)::bigint as contacts,
           coalesce(sum(contacts) filter (where status = 'waiting'), 0)::bigint as waiting,
           coalesce(sum(contacts) filter (where status in ('sent', 'accepted')), 0)::bigint as in_sequence,
           coalesce(sum(contacts) filter (where status in ('declined', 'replied', 'finished')), 0)::bigint as finished,
           coalesce(sum(contacts) filter (where status = 'skipped'), 0)::bigint as skipped,
           coalesce(sum(contacts) filter (where status = 'failed'), 0)::bigint as failed,
           coalesce((select jsonb_object_agg(reason, n order by reason) from (
               select status || ': ' || reason as reason, sum(contacts) as n from contact_counts
               where campaign_id = c.id and status in ('skipped', 'failed') group by 1 having sum(contacts) <> 0) r), '{}') as stopped_by_reason
    from contact_counts where campaign_id = c.id
) k;

-- Per agency: its campaigns' numbers and contacts added up (the response rate over its first
-- messages, InMails and connection messages).
create or replace view agency_report as
select g.id as agency_id, g.name as agency, count(r.campaign_id) as campaigns,
       coalesce(sum(r.inmails_sent), 0)::bigint as inmails_sent, coalesce(sum(r.free_inmails), 0)::bigint as free_inmails,
       coalesce(sum(r.credit_inmails), 0)::bigint as credit_inmails,
       coalesce(sum(r.connection_messages), 0)::bigint as connection_messages,
       coalesce(sum(r.accepted), 0)::bigint as accepted, coalesce(sum(r.declined), 0)::bigint as declined,
       coalesce(sum(r.responses), 0)::bigint as responses, coalesce(sum(r.responders), 0)::bigint as responders,
       coalesce(round(100.0 * sum(r.responses) / nullif(sum(r.inmails_sent + r.connection_messages), 0), 1), 0) as response_rate_pct,
       coalesce(sum(r.follow_ups_sent), 0)::bigint as follow_ups_sent,
       coalesce(sum(r.credits_spent), 0)::bigint as credits_spent, coalesce(sum(r.credits_back), 0)::bigint as credits_back,
       coalesce(sum(r.contacts), 0)::bigint as contacts, coalesce(sum(r.waiting), 0)::bigint as waiting,
       coalesce(sum(r.in_sequence), 0)::bigint as in_sequence, coalesce(sum(r.finished), 0)::bigint as finished,
       coalesce(sum(r.skipped), 0)::bigint as skipped, coalesce(sum(r.failed), 0)::bigint as failed
from agencies g
left join workspaces w on w.agency_id = g.id
left join campaign_report r on r.workspace_id = w.id
group by g.id, g.name;

-- Per sender account: the message numbers, its credits (spent, back, expired, held now) and its waiting contacts.
create or replace view sender_report as
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
-- Per account (OFFSET 0 keeps the planner from flattening this into a join with every account's
-- sums): a page of accounts, or one, reads only its own counters.
left join lateral (select * from message_stats where account_id = a.id and campaign_id is null offset 0) s on true;

-- Delivery through a gateway --------------------------------------------------------------------

-- Up to p_wanted requests to the gateway may go now, the fleet keeping to p_per_second: a token
-- bucket refilled at that rate and holding at most one second's worth, in wall-clock time (not
-- the business clock). Every worker's pacer takes its permits here, a few at a time.
create or replace function gateway_take_requests(p_wanted integer, p_per_second double precision) returns integer
language plpgsql as $$
declare
    available double precision;
    granted integer;
begin
    select least(p_per_second, allowance + extract(epoch from clock_timestamp() - checked_at) * p_per_second)
    into available
    from gateway_pacing for update;  -- the one row: takers queue here for microseconds
    granted := greatest(0, least(p_wanted, floor(available)::integer));
    update gateway_pacing set allowance = available - granted, checked_at = clock_timestamp();
    return granted;
end $$;
