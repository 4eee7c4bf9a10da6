-- 0004_campaigns: campaigns, their steps and sender pools, contacts and the do-not-contact list.
-- Rule ids refer to ../shared/DOMAIN.md.

-- S5: how long a subject and a body may be, after personalisation. Data, not code.
create table message_limits (
    part           text primary key check (part in ('subject', 'body')),
    max_characters integer not null check (max_characters > 0)
);
insert into message_limits values ('subject', 200), ('body', 1900);

create table campaigns (
    id               bigint generated always as identity primary key,
    workspace_id     bigint not null references workspaces,
    name             text not null check (length(btrim(name)) between 1 and 200),
    status           text not null default 'draft'
                     check (status in ('draft', 'active', 'paused', 'completed', 'archived')),
    seed_campaign_id bigint references campaigns,              -- C1: where its steps were copied from
    created_at       timestamptz not null default clock_now(),
    activated_at     timestamptz,
    unique (workspace_id, name)
);

-- Step 0 is the InMail (subject and body); steps 1-5 are follow-ups sent a number of days after
-- the previous step (C3: up to five, each 3 to 30 days).
create table campaign_steps (
    campaign_id bigint not null references campaigns on delete cascade,
    position    smallint not null check (position between 0 and 5),
    subject     text,
    body        text not null check (length(btrim(body)) > 0),
    delay_days  smallint,
    primary key (campaign_id, position),
    constraint campaign_steps_inmail_has_subject check ((position = 0) = (subject is not null)),
    constraint campaign_steps_follow_up_delay check (
        (position = 0 and delay_days is null) or (position > 0 and delay_days between 3 and 30))
);

-- Steps change only while a campaign is a draft or paused: activation checked its templates,
-- so an active campaign's texts cannot be edited past that check.
create function campaign_steps_editable() returns trigger
language plpgsql as $$
declare
    campaign_status text := (select status from campaigns where id = coalesce(new.campaign_id, old.campaign_id));
begin
    if campaign_status not in ('draft', 'paused') then
        raise exception 'campaign % is %; pause it to change its steps', coalesce(new.campaign_id, old.campaign_id), campaign_status
            using errcode = '55000';
    end if;
    return coalesce(new, old);
end $$;

create trigger campaign_steps_editable
    before insert or update or delete on campaign_steps
    for each row execute function campaign_steps_editable();

-- The sender accounts a campaign spreads its contacts over; each from the campaign's workspace.
create table campaign_senders (
    campaign_id bigint not null references campaigns on delete cascade,
    account_id  bigint not null references sender_accounts,
    primary key (campaign_id, account_id)
);

create function campaign_senders_same_workspace() returns trigger
language plpgsql as $$
begin
    if (select workspace_id from campaigns where id = new.campaign_id)
       is distinct from (select workspace_id from sender_accounts where id = new.account_id) then
        raise exception 'sender account % is not in the workspace of campaign %', new.account_id, new.campaign_id
            using errcode = '23514';
    end if;
    return new;
end $$;

create trigger campaign_senders_same_workspace
    before insert or update on campaign_senders
    for each row execute function campaign_senders_same_workspace();

-- One do-not-contact list per client workspace.
create table do_not_contact (
    workspace_id bigint not null references workspaces,
    member_key   text not null,
    reason       text,
    added_at     timestamptz not null default clock_now(),
    primary key (workspace_id, member_key)
);

create table contacts (
    id                bigint generated always as identity primary key,
    campaign_id       bigint not null references campaigns,
    workspace_id      bigint not null references workspaces,   -- the campaign's, set by a trigger
    member_key        text not null,                           -- one LinkedIn member: in:<slug> or sales:<id>
    profile_url       text not null,
    first_name        text,
    last_name         text,
    company           text,
    title             text,
    custom_fields     jsonb not null default '{}' check (jsonb_typeof(custom_fields) = 'object'),
    open_profile      boolean not null default false,          -- S1: a free InMail
    opted_out         boolean not null default false,          -- S2: skipped
    connection_degree smallint check (connection_degree between 1 and 3),  -- S3: 1st degree gets a message
    status            text not null default 'waiting'
                      check (status in ('waiting', 'sent', 'accepted', 'declined', 'replied', 'finished', 'skipped', 'failed')),
    reason            text,
    sender_account_id bigint references sender_accounts,      -- sticky once the first message goes
    added_at          timestamptz not null default clock_now(),
    last_event_at     timestamptz not null default clock_now(),
    unique (campaign_id, member_key),
    constraint contacts_reason_when_stopped check ((status in ('skipped', 'failed')) = (reason is not null))
);

-- A member is in at most one in-progress campaign of a workspace at a time.
create unique index contacts_member_in_progress_idx on contacts (workspace_id, member_key)
    where status in ('waiting', 'sent', 'accepted');

create function contacts_take_campaign_workspace() returns trigger
language plpgsql as $$
begin
    select workspace_id into new.workspace_id from campaigns where id = new.campaign_id;
    if new.workspace_id is null then
        raise exception 'no campaign with id %', new.campaign_id using errcode = 'P0002';
    end if;
    return new;
end $$;

create trigger contacts_take_campaign_workspace
    before insert or update of campaign_id on contacts
    for each row execute function contacts_take_campaign_workspace();

-- C1: a campaign, its steps copied from a seed campaign of the same agency when one is given.
create function create_campaign(p_workspace bigint, p_name text, p_seed bigint default null) returns bigint
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
create function activate_campaign(p_campaign bigint) returns text
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
