-- accounts 0001: tenancy, plans, sender accounts, InMail credits, reservations and daily
-- limits. Rule ids (A1 ... S8, R1) are those of README.md, "Platform rules". Every limit is data, not
-- code. The functions, triggers and guarantees are in R__accounts.sql.

-- How a send goes out: an InMail (S1, S6) or a regular message to a 1st-degree connection and
-- for follow-ups (S3).
create type send_channel as enum ('inmail', 'message');

create type account_status as enum (
    'active',
    'paused',           -- by an operator, or after the platform restricted it
    'payment_failed',   -- A7: the card on file expired; its work waits
    'cancelled'         -- A6: the subscription ended; for good
);

-- A reservation holds a daily slot (and a credit) for one delivery until it is settled.
create type reservation_state as enum ('held', 'spent', 'released');

-- Why an account cannot send now (reserve_send's answer besides a reservation).
create type send_refusal as enum (
    'account_paused',
    'account_payment_failed',      -- A7
    'account_cancelled',           -- A6
    'plan_cannot_send_inmail',     -- A1
    'outside_working_hours',
    'too_soon_after_last_send',
    'daily_limit_reached',         -- S6
    'free_inmail_monthly_limit',   -- the per-account monthly cap on free InMails
    'credits_at_reserve'           -- S7, S8
);

-- A1, A2, A8 and LinkedIn's current pages: one row per plan; operators edit these with SQL.
create table plans (
    code              text primary key check (code ~ '^[a-z][a-z0-9_]*$'),
    name              text not null,
    can_send_inmail   boolean not null,                  -- A1: Premium plans only
    monthly_allotment integer not null check (monthly_allotment >= 0),
    credit_cap        integer not null check (credit_cap >= monthly_allotment),  -- A5
    can_purchase      boolean not null,                  -- A8
    renewal_anchor    text not null default 'billing_date'
                      check (renewal_anchor in ('billing_date', 'first_of_month_utc')),  -- A3
    credit_lifetime   interval not null default interval '90 days'                        -- A4
);

insert into plans (code, name, can_send_inmail, monthly_allotment, credit_cap, can_purchase, renewal_anchor) values
    ('basic',                'LinkedIn Basic (free)',      false,  0,   0, false, 'billing_date'),
    ('premium_career',       'Premium Career',             true,   5,  15, true,  'billing_date'),
    ('premium_business',     'Premium Business',           true,  15,  45, true,  'billing_date'),
    ('sales_navigator',      'Sales Navigator',            true,  20,  60, false, 'billing_date'),
    ('sales_navigator_core', 'Sales Navigator Core',       true,  50, 150, false, 'billing_date'),
    ('recruiter_lite',       'Recruiter Lite',             true,  30,  90, true,  'billing_date');

create table agencies (
    id         bigint generated always as identity primary key,
    name       text not null unique check (length(btrim(name)) between 1 and 200),
    created_at timestamptz not null default clock_now()
);

create table workspaces (
    id         bigint generated always as identity primary key,
    agency_id  bigint not null references agencies,
    name       text not null check (length(btrim(name)) between 1 and 200),
    created_at timestamptz not null default clock_now(),
    unique (agency_id, name)
);

create table sender_accounts (
    id                  bigint generated always as identity primary key,
    workspace_id        bigint not null references workspaces,
    display_name        text not null check (length(btrim(display_name)) between 1 and 200),
    plan_code           text not null references plans,
    billing_anchor      date not null,                                         -- A3: its day of month
    time_zone           text not null default 'UTC',             -- IANA name, checked by a trigger
    working_days        smallint[] not null default '{1,2,3,4,5}'             -- ISO days, 1 = Monday
                        check (working_days <@ '{1,2,3,4,5,6,7}' and cardinality(working_days) > 0),
    working_start       time not null default '09:00',
    working_end         time not null default '18:00',
    daily_inmail_limit  integer not null default 10 check (daily_inmail_limit >= 0),   -- S6
    daily_message_limit integer not null default 25 check (daily_message_limit >= 0),
    credit_reserve      integer not null default 1 check (credit_reserve >= 0),        -- S7
    min_spacing         interval not null default interval '2 minutes',
    max_spacing         interval not null default interval '8 minutes',
    -- Free InMails to open profiles are limited too (LinkedIn publishes no number; tools cite
    -- 800-900 a month), counted per month of the account's own calendar; null: no cap.
    monthly_free_inmail_limit integer default 800 check (monthly_free_inmail_limit >= 0),
    status              account_status not null default 'active',
    next_send_at        timestamptz,                   -- earliest business time of its next send
    -- Running sums of its ledger and of its grants' remaining credits, kept by triggers only,
    -- so the ledger check at commit compares two numbers (R__accounts.sql).
    ledger_total        integer not null default 0,
    grants_total        integer not null default 0,
    created_at          timestamptz not null default clock_now(),
    check (working_start < working_end),
    check (min_spacing >= interval '0' and min_spacing <= max_spacing)
);

-- Credits arrive as grants that expire (A4); a grant's remaining count never goes below zero.
create table credit_grants (
    id         bigint generated always as identity primary key,
    account_id bigint not null references sender_accounts,
    source     text not null check (source in ('renewal', 'purchase', 'refund')),
    amount     integer not null check (amount > 0),
    remaining  integer not null check (remaining >= 0 and remaining <= amount),
    granted_at timestamptz not null,
    expires_at timestamptz not null,
    check (expires_at > granted_at)
);

-- Spending takes the grant that expires soonest: "this account's grants with credit left, by expiry".
create index credit_grants_spendable_idx on credit_grants (account_id, expires_at) where remaining > 0;

-- Which billing cycles have been renewed: a cycle is granted once however often its job runs.
create table renewal_cycles (
    account_id  bigint not null references sender_accounts,
    cycle_start date not null,
    granted     integer not null check (granted >= 0),
    expired     integer not null check (expired >= 0),
    renewed_at  timestamptz not null default clock_now(),
    primary key (account_id, cycle_start)
);

-- One reservation per delivery (its key derives from contact and step): kept across retries of
-- that delivery, then spent once delivered or released when it failed before anything was sent.
create table reservations (
    id             bigint generated always as identity primary key,
    account_id     bigint not null references sender_accounts,
    delivery_key   text not null,
    channel        send_channel not null,
    grant_id       bigint references credit_grants,          -- set when it holds a credit
    local_day      date not null,                            -- the account's day it counts against
    state          reservation_state not null default 'held',
    reserved_at    timestamptz not null default clock_now(),
    settled_at     timestamptz,
    credited_back_at timestamptz,                            -- R1: the credit came back
    check ((state = 'held') = (settled_at is null)),
    check (channel = 'inmail' or grant_id is null),
    check (credited_back_at is null or (state = 'spent' and grant_id is not null))
);

-- Only a live (held or spent) reservation owns its delivery key: a delivery whose reservation
-- was released (a rate limit, a paused account: nothing was sent) may reserve again later.
-- Also serves reserve_send's "this delivery's live reservation".
create unique index reservations_live_delivery_idx on reservations (delivery_key) where state <> 'released';

-- cancel_subscription and the held-credit count: "this account's held reservations".
create index reservations_held_idx on reservations (account_id) where state = 'held';

-- The free-InMail cap: "this account's reservations since the first of its month".
create index reservations_account_day_idx on reservations (account_id, local_day);

-- Sends counted per account and per local day of that account; the limits are copied in when
-- the day starts, so a check constraint holds the line whatever any worker does (S6).
create table daily_usage (
    account_id    bigint not null references sender_accounts,
    local_day     date not null,
    inmails       integer not null default 0 check (inmails >= 0),
    messages      integer not null default 0 check (messages >= 0),
    inmail_limit  integer not null,
    message_limit integer not null,
    primary key (account_id, local_day),
    constraint daily_usage_inmail_limit check (inmails <= inmail_limit),
    constraint daily_usage_message_limit check (messages <= message_limit)
);

-- The append-only credit ledger: the sum of an account's amounts is always the sum of its
-- grants' remaining credits (checked at commit, R__accounts.sql).
create table credit_ledger (
    id             bigint generated always as identity primary key,
    account_id     bigint not null references sender_accounts,
    entry          text not null
                   check (entry in ('grant', 'reserve', 'spend', 'release', 'refund', 'expire', 'purchase', 'cancel')),
    amount         integer not null,
    grant_id       bigint references credit_grants,
    reservation_id bigint references reservations,
    note           text,
    at             timestamptz not null default clock_now()
);

-- credit_statement and the report's expired credits: "this account's entries in order".
create index credit_ledger_account_idx on credit_ledger (account_id, id);
