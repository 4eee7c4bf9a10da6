-- outreach 0001: campaigns, their steps and sender pools, contacts, the do-not-contact list,
-- messages, responses and contact searches. Rule ids are those of README.md, "Platform
-- rules". The functions, triggers and report views are in R__outreach.sql.

create type campaign_status as enum ('draft', 'active', 'paused', 'completed', 'archived');

-- Where a contact stands in its campaign's sequence.
create type contact_status as enum (
    'waiting',    -- no message yet
    'sent',       -- the InMail went; awaiting a response
    'accepted',   -- R3: follow-ups go on
    'declined',   -- R5
    'replied',    -- R4: a responder; the sequence stopped
    'finished',   -- every follow-up sent
    'skipped',    -- never written to, or stopped (reason says why)
    'failed'      -- could not be sent (reason says why)
);

-- A message row is written before delivery ('sending') and marked 'sent' with the receipt.
create type message_state as enum ('sending', 'sent');

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
    status           campaign_status not null default 'draft',
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

-- The sender accounts a campaign spreads its contacts over; each from the campaign's workspace.
create table campaign_senders (
    campaign_id bigint not null references campaigns on delete cascade,
    account_id  bigint not null references sender_accounts,
    primary key (campaign_id, account_id)
);

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
    status            contact_status not null default 'waiting',
    reason            text,
    sender_account_id bigint references sender_accounts,      -- sticky once the first message goes
    added_at          timestamptz not null default clock_now(),
    last_event_at     timestamptz not null default clock_now(),
    unique (campaign_id, member_key),
    constraint contacts_reason_when_stopped check ((status in ('skipped', 'failed')) = (reason is not null))
);

-- A member is in at most one in-progress campaign of a workspace at a time. Also serves the
-- look-ups of a member's sequences in a workspace (a reply, the do-not-contact list).
create unique index contacts_member_in_progress_idx on contacts (workspace_id, member_key)
    where status in ('waiting', 'sent', 'accepted');

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
    channel        send_channel not null,
    uses_credit    boolean not null check (channel = 'inmail' or not uses_credit),
    delivery_key   text not null unique,
    subject        text,
    body           text not null,
    reservation_id bigint not null unique references reservations,
    state          message_state not null default 'sending',
    receipt        text,
    created_at     timestamptz not null default clock_now(),
    sent_at        timestamptz,
    responded_at   timestamptz,                                 -- the first response
    unique (contact_id, step),                                  -- one message per contact and step
    check ((state = 'sent') = (sent_at is not null and receipt is not null)),
    check (responded_at is null or state = 'sent')
);

-- S4: while an InMail from an account to a member awaits its response, no other InMail from
-- that account may go to that member (a row that is still 'sending' counts). Also serves the
-- send job's check for such an InMail before it renders anything.
create unique index messages_one_open_inmail_idx on messages (account_id, member_key)
    where channel = 'inmail' and responded_at is null;

-- sender_report and message_stats per account: "this account's messages".
create index messages_account_idx on messages (account_id);
-- campaign_report and message_stats per campaign: "this campaign's messages".
create index messages_campaign_idx on messages (campaign_id);

-- R2-R5 as data: what each kind of response means for the contact and the reports.
create table response_kinds (
    kind       text primary key,
    label      text not null,
    outcome    contact_status not null check (outcome in ('accepted', 'declined', 'replied')),  -- the contact's status
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

-- message_outcomes and contact_progress: "this message's responses".
create index responses_message_idx on responses (message_id);

-- Contacts found by a LinkedIn or Sales Navigator search URL (C2). The search job pages
-- through the results through the courier; the page cursor is stored with each page's
-- contacts, so a search whose worker died resumes where it stopped.
create table contact_searches (
    id           bigint generated always as identity primary key,
    campaign_id  bigint not null references campaigns,
    url          text not null,
    max_contacts integer not null check (max_contacts between 1 and 10000),
    cursor       text,                                   -- the next page to ask for; null before the first
    pages        integer not null default 0 check (pages >= 0),
    found        integer not null default 0 check (found >= 0),   -- people the pages listed, up to max_contacts
    added        integer not null default 0 check (added >= 0),   -- of those, contacts added
    status       text not null default 'running' check (status in ('running', 'done', 'failed')),
    reason       text,
    created_at   timestamptz not null default clock_now(),
    finished_at  timestamptz,
    check ((status = 'running') = (finished_at is null))
);
