-- 0002_accounts: tenancy, plans, sender accounts, InMail credits and daily limits.
-- Rule ids (A1 ... S8, R1) refer to ../shared/DOMAIN.md. Every limit is data, not code.
--
-- Every change to an account's credits or usage first locks the account's row
-- (select ... for update), so racing workers take turns per account and never per table.

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

-- True when PostgreSQL knows the zone name (asking pg_timezone_names instead reads every zone
-- file: far too slow for a check that runs on each account change).
create function is_time_zone(zone text) returns boolean
language plpgsql stable as $$
begin
    perform now() at time zone zone;
    return true;
exception when invalid_parameter_value then
    return false;
end $$;

create table sender_accounts (
    id                  bigint generated always as identity primary key,
    workspace_id        bigint not null references workspaces,
    display_name        text not null check (length(btrim(display_name)) between 1 and 200),
    plan_code           text not null references plans,
    billing_anchor      date not null,                                         -- A3: its day of month
    time_zone           text not null default 'UTC',             -- IANA name, checked below
    working_days        smallint[] not null default '{1,2,3,4,5}'             -- ISO days, 1 = Monday
                        check (working_days <@ '{1,2,3,4,5,6,7}' and cardinality(working_days) > 0),
    working_start       time not null default '09:00',
    working_end         time not null default '18:00',
    daily_inmail_limit  integer not null default 10 check (daily_inmail_limit >= 0),   -- S6
    daily_message_limit integer not null default 25 check (daily_message_limit >= 0),
    credit_reserve      integer not null default 1 check (credit_reserve >= 0),        -- S7
    min_spacing         interval not null default interval '2 minutes',
    max_spacing         interval not null default interval '8 minutes',
    status              text not null default 'active'
                        check (status in ('active', 'paused', 'payment_failed', 'cancelled')),
    next_send_at        timestamptz,                   -- earliest business time of its next send
    created_at          timestamptz not null default clock_now(),
    check (working_start < working_end),
    check (min_spacing >= interval '0' and min_spacing <= max_spacing)
);

-- The zone is checked only when it is set, not on every update of the row (a check constraint
-- would run on each reservation's update of next_send_at).
create function sender_accounts_time_zone_valid() returns trigger
language plpgsql as $$
begin
    if not is_time_zone(new.time_zone) then
        raise exception 'unknown time zone "%" (use an IANA name such as Europe/Paris)', new.time_zone
            using errcode = '22023';
    end if;
    return new;
end $$;

create trigger sender_accounts_time_zone_valid
    before insert or update of time_zone on sender_accounts
    for each row execute function sender_accounts_time_zone_valid();

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
    delivery_key   text not null unique,
    channel        text not null check (channel in ('inmail', 'message')),
    grant_id       bigint references credit_grants,          -- set when it holds a credit
    local_day      date not null,                            -- the account's day it counts against
    state          text not null default 'held' check (state in ('held', 'spent', 'released')),
    reserved_at    timestamptz not null default clock_now(),
    settled_at     timestamptz,
    credited_back_at timestamptz,                            -- R1: the credit came back
    check ((state = 'held') = (settled_at is null)),
    check (channel = 'inmail' or grant_id is null),
    check (credited_back_at is null or (state = 'spent' and grant_id is not null))
);

create index reservations_held_idx on reservations (account_id) where state = 'held';

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
-- grants' remaining credits (checked at commit below).
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

create index credit_ledger_account_idx on credit_ledger (account_id, id);

create function credit_ledger_append_only() returns trigger
language plpgsql as $$
begin
    raise exception 'the credit ledger is append-only: % is not allowed', tg_op using errcode = '42501';
end $$;

create trigger credit_ledger_append_only
    before update or delete on credit_ledger
    for each statement execute function credit_ledger_append_only();

-- Credits an account can spend now (unexpired grants).
create function credit_balance(p_account bigint) returns integer
language sql stable as $$
    select coalesce(sum(remaining), 0)::integer from credit_grants
    where account_id = p_account and remaining > 0 and expires_at > clock_now()
$$;

-- Credits held by unsettled reservations: they may come back, so headroom under the cap counts them.
create function credit_held(p_account bigint) returns integer
language sql stable as $$
    select count(*)::integer from reservations where account_id = p_account and state = 'held' and grant_id is not null
$$;

-- At commit: ledger = grants, balance within the cap (A5). A deferred constraint trigger, so a
-- transaction may pass through intermediate states but can never commit a wrong one.
create function credit_invariants_hold() returns trigger
language plpgsql as $$
declare
    ledger_sum integer;
    grant_sum integer;
    cap integer;
begin
    select coalesce(sum(amount), 0) into ledger_sum from credit_ledger where account_id = new.account_id;
    select coalesce(sum(remaining), 0) into grant_sum from credit_grants where account_id = new.account_id;
    if ledger_sum <> grant_sum then
        raise exception 'credit ledger of account % says %, its grants hold %', new.account_id, ledger_sum, grant_sum
            using errcode = '23514';
    end if;
    select p.credit_cap into cap from sender_accounts a join plans p on p.code = a.plan_code where a.id = new.account_id;
    if credit_balance(new.account_id) + credit_held(new.account_id) > cap then
        raise exception 'account % would hold more than its cap of % credits (A5)', new.account_id, cap
            using errcode = '23514';
    end if;
    return null;
end $$;

create constraint trigger credit_invariants_hold
    after insert on credit_ledger
    deferrable initially deferred
    for each row execute function credit_invariants_hold();

-- Locks an account for a credit or usage change, or fails clearly for an unknown id.
create function lock_account(p_account bigint) returns sender_accounts
language plpgsql as $$
declare
    account sender_accounts;
begin
    select * into account from sender_accounts where id = p_account for update;
    if not found then
        raise exception 'no sender account with id %', p_account using errcode = 'P0002';
    end if;
    return account;
end $$;

-- A4: grants whose time is up give their remaining credits back to nobody.
create function expire_credits(p_account bigint) returns integer
language plpgsql as $$
declare
    total integer := 0;
    g record;
begin
    for g in
        select id, remaining from credit_grants
        where account_id = p_account and remaining > 0 and expires_at <= clock_now()
        for update
    loop
        update credit_grants set remaining = 0 where id = g.id;
        insert into credit_ledger (account_id, entry, amount, grant_id, note)
        values (p_account, 'expire', -g.remaining, g.id, 'expired 90 days after it was granted (A4)');
        total := total + g.remaining;
    end loop;
    return total;
end $$;

-- The one way credits arrive (renewal, purchase, refund): a grant and its ledger entry together.
create function add_credit_grant(
    p_account bigint, p_source text, p_entry text, p_amount integer, p_granted_at timestamptz,
    p_lifetime interval, p_note text, p_reservation bigint default null
) returns bigint
language plpgsql as $$
declare
    new_grant bigint;
begin
    insert into credit_grants (account_id, source, amount, remaining, granted_at, expires_at)
    values (p_account, p_source, p_amount, p_amount, p_granted_at, p_granted_at + p_lifetime)
    returning id into new_grant;
    insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note)
    values (p_account, p_entry, p_amount, new_grant, p_reservation, p_note);
    return new_grant;
end $$;

-- A3: the first day of the billing cycle that contains p_day. An anchor day of 29-31 falls on
-- the last day of shorter months; 'first_of_month_utc' plans renew on the 1st.
create function billing_cycle_start(p_anchor date, p_renewal_anchor text, p_day date) returns date
language plpgsql immutable as $$
declare
    month_start date := date_trunc('month', p_day)::date;
    this_month date;
    prev_month date;
begin
    if p_renewal_anchor = 'first_of_month_utc' then
        return month_start;
    end if;
    this_month := month_start + (least(extract(day from p_anchor)::int,
        extract(day from (month_start + interval '1 month - 1 day'))::int) - 1);
    if this_month <= p_day then
        return this_month;
    end if;
    prev_month := (month_start - interval '1 month')::date;
    return prev_month + (least(extract(day from p_anchor)::int,
        extract(day from (prev_month + interval '1 month - 1 day'))::int) - 1);
end $$;

-- The billing cycle that starts after the one containing p_day.
create function next_billing_cycle_start(p_anchor date, p_renewal_anchor text, p_day date) returns date
language plpgsql immutable as $$
declare
    current_start date := billing_cycle_start(p_anchor, p_renewal_anchor, p_day);
    probe date := (date_trunc('month', current_start) + interval '1 month')::date;
begin
    return billing_cycle_start(p_anchor, p_renewal_anchor, (probe + interval '1 month - 1 day')::date);
end $$;

-- A3-A5: expire what is due, then grant the plan's allotment up to its cap, once per cycle.
-- Returns the credits granted; 0 when the cycle was already renewed or the account is cancelled.
create function renew_credits(p_account bigint, p_cycle date) returns integer
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    plan plans;
    expired integer;
    granted integer;
    granted_at timestamptz := p_cycle::timestamp at time zone 'UTC';
begin
    select * into plan from plans where code = account.plan_code;
    if exists (select 1 from renewal_cycles where account_id = p_account and cycle_start = p_cycle) then
        return 0;
    end if;
    expired := expire_credits(p_account);
    granted := 0;
    if account.status <> 'cancelled' and granted_at + plan.credit_lifetime > clock_now() then
        granted := greatest(0, least(plan.monthly_allotment,
                                     plan.credit_cap - credit_balance(p_account) - credit_held(p_account)));
    end if;
    if granted > 0 then
        perform add_credit_grant(p_account, 'renewal', 'grant', granted, granted_at, plan.credit_lifetime,
                                 format('%s allotment for the cycle starting %s', plan.name, p_cycle));
    end if;
    insert into renewal_cycles (account_id, cycle_start, granted, expired) values (p_account, p_cycle, granted, expired);
    return granted;
end $$;

-- Account-local time helpers.
create function account_local_now(account sender_accounts) returns timestamp
language sql stable as $$ select clock_now() at time zone account.time_zone $$;

-- The next moment (business time) at or after p_from at which the account's working hours are open.
create function next_working_moment(account sender_accounts, p_from timestamptz) returns timestamptz
language plpgsql stable as $$
declare
    local_from timestamp := p_from at time zone account.time_zone;
    day date;
    opens timestamp;
begin
    for offset_days in 0..7 loop
        day := local_from::date + offset_days;
        continue when not (extract(isodow from day)::smallint = any(account.working_days));
        opens := day + account.working_start;
        if local_from < day + account.working_end then
            return greatest(opens, local_from) at time zone account.time_zone;
        end if;
    end loop;
    return null;  -- unreachable: working_days is never empty
end $$;

-- The core reservation, in the caller's (claim) transaction. Reserves one daily slot on the
-- account's local day and, for a credit InMail, one credit (from the grant that expires
-- soonest); or says why not and when to try again. The same delivery key returns the same held
-- reservation, so a retried delivery keeps what it reserved.
create function reserve_send(p_account bigint, p_delivery_key text, p_channel text, p_uses_credit boolean)
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
    select * into existing from reservations r where r.delivery_key = p_delivery_key;
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

-- The message was delivered: the reservation becomes a spend.
create function spend_reservation(p_reservation bigint) returns void
language plpgsql as $$
declare
    r reservations;
begin
    select * into r from reservations where id = p_reservation;
    if not found then raise exception 'no reservation with id %', p_reservation using errcode = 'P0002'; end if;
    perform lock_account(r.account_id);
    update reservations set state = 'spent', settled_at = clock_now() where id = p_reservation and state = 'held'
    returning * into r;
    if not found then raise exception 'reservation % is not held', p_reservation using errcode = '55000'; end if;
    if r.grant_id is not null then
        insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note)
        values (r.account_id, 'spend', 0, r.grant_id, r.id, r.delivery_key);
    end if;
end $$;

-- The delivery failed for good before anything was sent: the slot and the credit come back.
create function release_reservation(p_reservation bigint, p_reason text) returns void
language plpgsql as $$
declare
    r reservations;
begin
    select * into r from reservations where id = p_reservation;
    if not found then raise exception 'no reservation with id %', p_reservation using errcode = 'P0002'; end if;
    perform lock_account(r.account_id);
    update reservations set state = 'released', settled_at = clock_now() where id = p_reservation and state = 'held'
    returning * into r;
    if not found then raise exception 'reservation % is not held', p_reservation using errcode = '55000'; end if;
    update daily_usage
    set inmails = inmails - (r.channel = 'inmail')::int, messages = messages - (r.channel = 'message')::int
    where account_id = r.account_id and local_day = r.local_day;
    if r.grant_id is not null then
        update credit_grants set remaining = remaining + 1 where id = r.grant_id;
        insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note)
        values (r.account_id, 'release', 1, r.grant_id, r.id, p_reason);
    end if;
end $$;

-- R1, R2: a response within the credit lifetime (90 days) of the send gives the credit back at
-- once, up to the cap (A5). Returns true when a credit came back.
create function credit_back(p_reservation bigint) returns boolean
language plpgsql as $$
declare
    r reservations;
    account sender_accounts;
    plan plans;
begin
    select * into r from reservations where id = p_reservation;
    if not found then raise exception 'no reservation with id %', p_reservation using errcode = 'P0002'; end if;
    account := lock_account(r.account_id);
    select * into plan from plans where code = account.plan_code;
    select * into r from reservations where id = p_reservation;
    if r.state <> 'spent' or r.grant_id is null or r.credited_back_at is not null
       or clock_now() > r.settled_at + plan.credit_lifetime or account.status = 'cancelled' then
        return false;
    end if;
    if credit_balance(r.account_id) + credit_held(r.account_id) >= plan.credit_cap then
        return false;
    end if;
    perform add_credit_grant(r.account_id, 'refund', 'refund', 1, clock_now(), plan.credit_lifetime,
                             'response within 90 days (R1)', r.id);
    update reservations set credited_back_at = clock_now() where id = p_reservation;
    return true;
end $$;

-- A8: purchases only where the plan allows them, and never above the cap (A5).
create function purchase_credits(p_account bigint, p_credits integer) returns integer
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    plan plans;
begin
    select * into plan from plans where code = account.plan_code;
    if p_credits is null or p_credits <= 0 then
        raise exception 'a purchase must be of at least one credit (got %)', p_credits using errcode = '22023';
    end if;
    if not plan.can_purchase then
        raise exception 'account % is on %, which cannot purchase InMail credits (A8)', p_account, plan.name
            using errcode = '42501';
    end if;
    if account.status = 'cancelled' then
        raise exception 'account % is cancelled' , p_account using errcode = '55000';
    end if;
    perform expire_credits(p_account);
    if credit_balance(p_account) + credit_held(p_account) + p_credits > plan.credit_cap then
        raise exception 'account % holds % credits; % more would exceed the % cap of % (A5)',
            p_account, credit_balance(p_account) + credit_held(p_account), p_credits, plan.name, plan.credit_cap
            using errcode = '23514';
    end if;
    perform add_credit_grant(p_account, 'purchase', 'purchase', p_credits, clock_now(), plan.credit_lifetime,
                             format('purchased %s credits', p_credits));
    return credit_balance(p_account);
end $$;

-- A6: cancelling the subscription zeroes the balance (held reservations are released first).
create function cancel_subscription(p_account bigint) returns integer
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    held record;
    g record;
    zeroed integer := 0;
begin
    if account.status = 'cancelled' then
        raise exception 'account % is already cancelled', p_account using errcode = '55000';
    end if;
    for held in select id from reservations where account_id = p_account and state = 'held' loop
        perform release_reservation(held.id, 'subscription cancelled');
    end loop;
    for g in select id, remaining from credit_grants where account_id = p_account and remaining > 0 loop
        update credit_grants set remaining = 0 where id = g.id;
        insert into credit_ledger (account_id, entry, amount, grant_id, note)
        values (p_account, 'cancel', -g.remaining, g.id, 'subscription cancelled (A6)');
        zeroed := zeroed + g.remaining;
    end loop;
    update sender_accounts set status = 'cancelled' where id = p_account;
    return zeroed;
end $$;

-- Status changes by operators. Resuming makes the account's waiting jobs runnable at once.
create function set_account_status(p_account bigint, p_status text) returns text
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
begin
    if account.status = 'cancelled' then
        raise exception 'account % is cancelled; a cancelled account cannot become %', p_account, p_status
            using errcode = '55000';
    end if;
    if p_status not in ('active', 'paused', 'payment_failed') then
        raise exception 'unknown account status "%" (use active, paused or payment_failed)', p_status
            using errcode = '22023';
    end if;
    update sender_accounts set status = p_status where id = p_account;
    if p_status = 'active' then
        -- Jobs refused while the account was not active wait one hour (reserve_send); wake
        -- those, not the ones scheduled on purpose for later (a follow-up due in three days).
        update jobs set state = 'available', run_at = clock_now()
        where partition_key = p_account::text and state = 'scheduled'
          and run_at <= clock_now() + interval '1 hour';
    end if;
    return p_status;
end $$;

-- Plan changes keep the ledger whole: credits above the new cap expire at once.
create function change_plan(p_account bigint, p_plan text) returns text
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    plan plans;
    excess integer;
    g record;
begin
    select * into plan from plans where code = p_plan;
    if not found then
        raise exception 'unknown plan "%" (see: select code from plans)', p_plan using errcode = 'P0002';
    end if;
    update sender_accounts set plan_code = p_plan where id = p_account;
    excess := credit_balance(p_account) + credit_held(p_account) - plan.credit_cap;
    for g in select id, remaining from credit_grants
             where account_id = p_account and remaining > 0 and expires_at > clock_now()
             order by expires_at, id loop
        exit when excess <= 0;
        update credit_grants set remaining = remaining - least(g.remaining, excess) where id = g.id;
        insert into credit_ledger (account_id, entry, amount, grant_id, note)
        values (p_account, 'expire', -least(g.remaining, excess), g.id, format('above the cap of %s', plan.name));
        excess := excess - least(g.remaining, excess);
    end loop;
    return p_plan;
end $$;

-- Renewal cycles due on or before p_day (business date) and not yet renewed: the last 92 days
-- are caught up, so days the cron missed are not lost.
create function renewal_cycles_due(p_day date)
returns table (account_id bigint, cycle_start date)
language sql stable as $$
    select a.id, c.cycle_start
    from sender_accounts a
    join plans p on p.code = a.plan_code
    cross join lateral (
        select distinct billing_cycle_start(a.billing_anchor, p.renewal_anchor, d::date) as cycle_start
        from generate_series(greatest(a.billing_anchor, p_day - 92), p_day, interval '1 day') as d
    ) c
    where a.status <> 'cancelled' and p.monthly_allotment > 0
      and c.cycle_start >= a.billing_anchor and c.cycle_start <= p_day
      and not exists (select 1 from renewal_cycles r where r.account_id = a.id and r.cycle_start = c.cycle_start)
    order by a.id, c.cycle_start
$$;
