-- accounts: the current definition of the functions, triggers and guarantees of tenancy,
-- credits, reservations and daily limits (re-applied whenever this file changes). Rule ids
-- are those of README.md, "Platform rules".
--
-- Every change to an account's credits or usage first locks the account's row
-- (lock_account: select ... for no key update), so racing workers take turns per account and never
-- per table. Spending is the exception (see spend_reservation).

-- Waiting windows ---------------------------------------------------------------------------

-- How long a send refused because its account is not active (paused, card expired) waits
-- before its claim tries again; resuming the account wakes such sends at once.
create or replace function inactive_account_retry_after() returns interval
language sql immutable as $$ select interval '1 hour' $$;

-- The longest a credit InMail refused at the credit reserve (S7, S8) waits before its claim
-- tries again (or until just after the next renewal, if sooner); credits that arrive wake it.
create or replace function credits_retry_after() returns interval
language sql immutable as $$ select interval '6 hours' $$;

-- Accounts ----------------------------------------------------------------------------------

-- True when PostgreSQL knows the zone name (asking pg_timezone_names instead reads every zone
-- file: far too slow for a check that runs on each account change).
create or replace function is_time_zone(zone text) returns boolean
language plpgsql stable as $$
begin
    perform now() at time zone zone;
    return true;
exception when invalid_parameter_value then
    return false;
end $$;

-- The zone is checked only when it is set, not on every update of the row (a check constraint
-- would run on each reservation's update of next_send_at).
create or replace function sender_accounts_time_zone_valid() returns trigger
language plpgsql as $$
begin
    if not is_time_zone(new.time_zone) then
        raise exception 'unknown time zone "%" (use an IANA name such as Europe/Paris)', new.time_zone
            using errcode = '22023';
    end if;
    return new;
end $$;

-- After the row is written, not before: any BEFORE UPDATE row trigger makes every update of the
-- table lock each row first (a WAL record per row), even one that sets none of its columns, such
-- as a claim's update of the credit totals.
create or replace trigger sender_accounts_time_zone_valid
    after insert or update of time_zone on sender_accounts
    for each row execute function sender_accounts_time_zone_valid();

-- Locks an account for a credit or usage change, or fails clearly for an unknown id.
create or replace function lock_account(p_account bigint) returns sender_accounts
language plpgsql as $$
declare
    account sender_accounts;
begin
    select * into account from sender_accounts where id = p_account for no key update;
    if not found then
        raise exception 'no sender account with id %', p_account using errcode = 'P0002';
    end if;
    return account;
end $$;

-- Account-local time.
create or replace function account_local_now(account sender_accounts) returns timestamp
language sql stable as $$ select clock_now() at time zone account.time_zone $$;

-- Whether the account's working hours are open at p_at: a working day, from working_start up to
-- working_end (24:00 for the whole day) of its own time zone. An expression the planner inlines,
-- so a claim checks a whole batch without a function call per send.
create or replace function account_open_at(account sender_accounts, p_at timestamptz) returns boolean
language sql stable as $$
    select extract(isodow from p_at at time zone account.time_zone)::smallint = any(account.working_days)
       and (p_at at time zone account.time_zone)::time >= account.working_start
       and p_at at time zone account.time_zone < (p_at at time zone account.time_zone)::date + account.working_end
$$;

-- The next moment (business time) at or after p_from at which the account's working hours are open.
create or replace function next_working_moment(account sender_accounts, p_from timestamptz) returns timestamptz
language plpgsql stable as $$
declare
    local_from timestamp := p_from at time zone account.time_zone;
    day date;
    opens timestamp;
begin
    if account_open_at(account, p_from) then
        return p_from;
    end if;
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

-- Status changes by operators. Resuming makes the account's sends that waited for it runnable
-- at once (those refused while it was not active wait inactive_account_retry_after(); the ones
-- scheduled on purpose for later, a follow-up due in three days, keep their time).
-- p_reason says why (a gateway's "account disconnected"); it is kept with the status and cleared on resume.
create or replace function set_account_status(p_account bigint, p_status text, p_reason text default null) returns text
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
begin
    if account.status = 'cancelled' then
        raise exception 'account % is cancelled; a cancelled account cannot become %', p_account, p_status
            using errcode = '55000';
    end if;
    if p_status is null or p_status not in ('active', 'paused', 'payment_failed') then
        raise exception 'unknown account status "%" (use active, paused or payment_failed)', p_status
            using errcode = '22023';
    end if;
    update sender_accounts
    set status = p_status::account_status, status_reason = case when p_status = 'active' then null else left(p_reason, 1000) end
    where id = p_account;
    if p_status = 'active' then
        perform queue_wake(p_account::text, '{}', inactive_account_retry_after(), 'account resumed');
    end if;
    return p_status;
end $$;

-- Credits: balance, ledger and its guarantees --------------------------------------------------

-- Credits an account can spend now (unexpired grants).
create or replace function credit_balance(p_account bigint) returns integer
language sql stable as $$
    select coalesce(sum(remaining), 0)::integer from credit_grants
    where account_id = p_account and remaining > 0 and expires_at > clock_now()
$$;

-- Credits held by unsettled reservations: they may come back, so headroom under the cap counts them.
create or replace function credit_held(p_account bigint) returns integer
language sql stable as $$
    select count(*)::integer from reservations
    where account_id = p_account and settled_at is null and grant_id is not null  -- held (reservations_held_idx)
$$;

create or replace function credit_ledger_append_only() returns trigger
language plpgsql as $$
begin
    raise exception 'the credit ledger is append-only: % is not allowed', tg_op using errcode = '42501';
end $$;

create or replace trigger credit_ledger_append_only
    before update or delete on credit_ledger
    for each statement execute function credit_ledger_append_only();

-- The credit history names rows that exist: each ledger entry its account and, when it has
-- them, its reservation and grant; each reservation its account and grant. The rules of foreign
-- keys, checked once per statement over its rows (0008_credit_history_checked_per_statement.sql):
-- a claim writes 64 reservations and their entries in one statement, and per row the keys were a
-- tenth of the send path. The rows named are never deleted and never change id
-- (credit_history_kept, below), so a check needs no lock to stay true; the ledger is append-only.
-- Which of the given accounts, reservations and grants do not exist, each id looked up by
-- primary key. PL/pgSQL, so that its query is planned once per session (a SQL function's body is
-- planned on every call); the plan must then stay right while the tables grow a hundredfold
-- (a new agency's first campaign). So each id is probed on its own: `offset 0` keeps each
-- `not exists` a subquery run per id, which the planner cannot turn into a join. As a join it was
-- planned as a hash of the whole table when the session began with the table nearly empty, and
-- every later check read all of reservations or credit_grants (a transition table joined to
-- them directly did the same).
create or replace function credit_history_missing(p_accounts bigint[], p_reservations bigint[], p_grants bigint[])
returns table (kind text, id bigint)
language plpgsql stable as $$
begin
    return query
    select 'account', a.id from unnest(p_accounts) as a(id)
    where not exists (select from sender_accounts x where x.id = a.id offset 0)
    union all
    select 'reservation', r.id from unnest(p_reservations) as r(id)
    where not exists (select from reservations x where x.id = r.id offset 0)
    union all
    select 'grant', g.id from unnest(p_grants) as g(id)
    where not exists (select from credit_grants x where x.id = g.id offset 0);
end $$;

create or replace function credit_ledger_names_existing_rows() returns trigger
language plpgsql as $$
declare
    stray record;
begin
    select m.kind, m.id into stray
    from credit_history_missing(array(select distinct e.account_id from new_entries e),
                                array(select distinct e.reservation_id from new_entries e where e.reservation_id is not null),
                                array(select distinct e.grant_id from new_entries e where e.grant_id is not null)) as m
    limit 1;
    if found then
        raise exception 'a credit ledger entry names % %, which does not exist', stray.kind, stray.id using errcode = '23503';
    end if;
    return null;
end $$;

create or replace trigger credit_ledger_names_existing_rows
    after insert on credit_ledger
    referencing new table as new_entries
    for each statement execute function credit_ledger_names_existing_rows();

create or replace function reservations_name_existing_rows() returns trigger
language plpgsql as $$
declare
    stray record;
begin
    if tg_level = 'STATEMENT' then
        select m.kind, m.id into stray
        from credit_history_missing(array(select distinct r.account_id from new_rows r), '{}',
                                    array(select distinct r.grant_id from new_rows r where r.grant_id is not null)) as m
        limit 1;
    else
        select m.kind, m.id into stray
        from credit_history_missing(array[new.account_id], '{}', array_remove(array[new.grant_id], null)) as m
        limit 1;
    end if;
    if found then
        raise exception 'a reservation names % %, which does not exist', stray.kind, stray.id using errcode = '23503';
    end if;
    return null;
end $$;

create or replace trigger reservations_name_existing_rows_inserted
    after insert on reservations
    referencing new table as new_rows
    for each statement execute function reservations_name_existing_rows();
create or replace trigger reservations_name_existing_rows
    after update of account_id, grant_id on reservations
    for each row when (new.account_id <> old.account_id or new.grant_id is distinct from old.grant_id)
    execute function reservations_name_existing_rows();

-- Accounts, grants and reservations are the credit history's: never deleted (an account is
-- cancelled, a grant expires, a reservation is settled) and never given another id. Checked per
-- statement, before it touches a row.
create or replace function credit_history_kept() returns trigger
language plpgsql as $$
begin
    raise exception '% rows are never deleted and keep their ids: the credit history names them (% refused)', tg_table_name, tg_op
        using errcode = '23001';
end $$;

create or replace trigger sender_accounts_kept
    before delete or truncate or update of id on sender_accounts
    for each statement execute function credit_history_kept();
create or replace trigger credit_grants_kept
    before delete or truncate or update of id on credit_grants
    for each statement execute function credit_history_kept();
create or replace trigger reservations_kept
    before delete or truncate or update of id on reservations
    for each statement execute function credit_history_kept();

-- The ledger check in O(1): each account carries the running sum of its ledger and of its
-- grants' remaining credits, kept by the triggers below (and by nothing else), so the check at
-- commit compares two numbers instead of summing an ever longer ledger. They run once per
-- statement, over its transition tables, so a claim reserving for a batch updates each account
-- once rather than once per entry.
drop trigger if exists credit_ledger_add_to_total on credit_ledger;  -- once per row
drop trigger if exists credit_grants_add_to_total on credit_grants;  -- once per row
drop function if exists credit_ledger_add_to_total();
drop function if exists credit_grants_add_to_total();

create or replace function credit_ledger_add_to_totals() returns trigger
language plpgsql as $$
begin
    update sender_accounts a set ledger_total = a.ledger_total + added.amount
    from (select account_id, sum(amount) as amount from new_entries group by account_id having sum(amount) <> 0) added
    where a.id = added.account_id
      and a.id = any(array(select account_id from new_entries where amount <> 0));  -- see credit_grants_add_to_totals
    return null;
end $$;

create or replace trigger credit_ledger_add_to_totals
    after insert on credit_ledger
    referencing new table as new_entries
    for each statement execute function credit_ledger_add_to_totals();

-- The grants' remaining credits that a statement added (new rows) and took away (old rows),
-- by account: one function for inserts and updates, each with the tables it has (grants are
-- never deleted: credit_history_kept).
-- Each update finds its accounts by primary key (`id = any(array(...))`, which the planner
-- takes for a few rows): joined to the statement's rows, a claim's 40-60 accounts among 1,000
-- were read by a whole scan of the table (1.5 ms against 0.5).
create or replace function credit_grants_add_to_totals() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        update sender_accounts a set grants_total = a.grants_total + changed.remaining
        from (select account_id, sum(remaining) as remaining from new_grants group by account_id having sum(remaining) <> 0) changed
        where a.id = changed.account_id and a.id = any(array(select account_id from new_grants));
    else
        update sender_accounts a set grants_total = a.grants_total + changed.remaining
        from (select account_id, sum(remaining) as remaining
              from (select account_id, remaining from new_grants
                    union all
                    select account_id, -remaining from old_grants) as moves
              group by account_id having sum(remaining) <> 0) changed
        where a.id = changed.account_id
          and a.id = any(array(select account_id from new_grants union select account_id from old_grants));
    end if;
    return null;
end $$;

create or replace trigger credit_grants_inserted_add_to_totals
    after insert on credit_grants
    referencing new table as new_grants
    for each statement execute function credit_grants_add_to_totals();

create or replace trigger credit_grants_updated_add_to_totals
    after update on credit_grants
    referencing old table as old_grants new table as new_grants
    for each statement execute function credit_grants_add_to_totals();

drop trigger if exists credit_grants_deleted_add_to_totals on credit_grants;  -- grants are never deleted

-- The totals change only through those triggers: a statement that sets them from anywhere else
-- (no trigger under way) is refused before it changes a row. Checked once per statement, not per
-- row (the WHEN is all it takes: the function only raises).
create or replace function sender_accounts_totals_kept_by_triggers() returns trigger
language plpgsql as $$
begin
    raise exception 'ledger_total and grants_total of sender accounts are kept by the database; change credits with the credit functions'
        using errcode = '42501';
end $$;

drop trigger if exists sender_accounts_totals_kept_by_triggers on sender_accounts;  -- once per row
create trigger sender_accounts_totals_kept_by_triggers
    before update of ledger_total, grants_total on sender_accounts
    for each statement when (pg_trigger_depth() < 1)
    execute function sender_accounts_totals_kept_by_triggers();

-- At commit: ledger = grants, balance within the cap (A5). Deferred constraint triggers, so a
-- transaction may pass through intermediate states but can never commit a wrong one, whoever
-- wrote the SQL.
--
-- Ledger = grants is checked per account, on the totals: every change to either goes through an
-- update of the account's row, and an update that leaves them apart queues the check (the WHEN
-- is evaluated at the update, the check reads the row again at commit). So the last change of a
-- transaction decides: balanced, nothing was queued after it and any earlier check finds the row
-- balanced; apart, its check refuses the commit. A claim's batch queues one check per account
-- (its ledger entries and its grants' changes each update the totals once), not one per entry.
drop trigger if exists credit_invariants_hold on credit_ledger;        -- both checks, once per entry
drop trigger if exists credit_grants_invariants_hold on credit_grants;  -- both checks, once per grant change
drop function if exists credit_invariants_hold();

create or replace function credit_totals_agree() returns trigger
language plpgsql as $$
declare
    account sender_accounts;
begin
    select * into account from sender_accounts where id = new.id;
    if account.ledger_total <> account.grants_total then
        raise exception 'credit ledger of account % says %, its grants hold %', account.id, account.ledger_total, account.grants_total
            using errcode = '23514';
    end if;
    return null;
end $$;

drop trigger if exists sender_accounts_credit_totals_agree on sender_accounts;
create constraint trigger sender_accounts_credit_totals_agree
    after insert or update of ledger_total, grants_total on sender_accounts
    deferrable initially deferred
    for each row when (new.ledger_total <> new.grants_total) execute function credit_totals_agree();

-- The cap (A5), after every increase: only an increase can pass it (a reserve moves a credit from
-- the balance to held; a spend, a release or an expiry lowers them or leaves them as they were).
create or replace function credit_cap_holds() returns trigger
language plpgsql as $$
declare
    cap integer;
begin
    select p.credit_cap into cap from sender_accounts a join plans p on p.code = a.plan_code where a.id = new.account_id;
    if credit_balance(new.account_id) + credit_held(new.account_id) > cap then
        raise exception 'account % would hold more than its cap of % credits (A5)', new.account_id, cap
            using errcode = '23514';
    end if;
    return null;
end $$;

drop trigger if exists credit_ledger_cap_holds on credit_ledger;
create constraint trigger credit_ledger_cap_holds
    after insert on credit_ledger
    deferrable initially deferred
    for each row when (new.amount > 0) execute function credit_cap_holds();

drop trigger if exists credit_grants_inserted_cap_holds on credit_grants;
create constraint trigger credit_grants_inserted_cap_holds
    after insert on credit_grants
    deferrable initially deferred
    for each row when (new.remaining > 0) execute function credit_cap_holds();

drop trigger if exists credit_grants_raised_cap_holds on credit_grants;
create constraint trigger credit_grants_raised_cap_holds
    after update of remaining on credit_grants
    deferrable initially deferred
    for each row when (new.remaining > old.remaining) execute function credit_cap_holds();

-- A4: grants whose time is up give their remaining credits back to nobody.
create or replace function expire_credits(p_account bigint) returns integer
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

-- A4 at its moment: books the expiry of every grant whose time is up, account by account in id
-- order (each locked as any credit change locks it), so the ledger, statements, reports and a
-- cancellation never count an expired credit. The elected worker runs it every minute. Returns
-- how many credits expired.
create or replace function expire_due_credits() returns integer
language plpgsql as $$
declare
    account_id bigint;
    total integer := 0;
begin
    for account_id in
        select distinct g.account_id from credit_grants g
        where g.spendable and g.expires_at <= clock_now()  -- credit_grants_expiry_idx
        order by g.account_id
    loop
        perform lock_account(account_id);
        total := total + expire_credits(account_id);
    end loop;
    return total;
end $$;

-- The one way credits arrive (renewal, purchase, refund): a grant and its ledger entry
-- together. S8: it also wakes the account's credit InMails that wait for credits; one still
-- short of credits is simply deferred again by its claim.
create or replace function add_credit_grant(
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
    perform queue_wake(p_account::text, '{"uses_credit": true}', credits_retry_after(), 'credits');
    return new_grant;
end $$;

-- Renewals (A3-A5) -------------------------------------------------------------------------------

-- A3: the first day of the billing cycle that contains p_day. An anchor day of 29-31 falls on
-- the last day of shorter months; 'first_of_month_utc' plans renew on the 1st.
create or replace function billing_cycle_start(p_anchor date, p_renewal_anchor text, p_day date) returns date
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
create or replace function next_billing_cycle_start(p_anchor date, p_renewal_anchor text, p_day date) returns date
language plpgsql immutable as $$
declare
    current_start date := billing_cycle_start(p_anchor, p_renewal_anchor, p_day);
    probe date := (date_trunc('month', current_start) + interval '1 month')::date;
begin
    return billing_cycle_start(p_anchor, p_renewal_anchor, (probe + interval '1 month - 1 day')::date);
end $$;

-- A3-A5: expire what is due, then grant the plan's allotment up to its cap, once per cycle.
-- Returns the credits granted; 0 when the cycle was already renewed or the account is cancelled.
-- A cycle that has not begun (business time) is refused: its credits would arrive early.
create or replace function renew_credits(p_account bigint, p_cycle date) returns integer
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    plan plans;
    expired integer;
    granted integer;
    granted_at timestamptz := p_cycle::timestamp at time zone 'UTC';
begin
    if granted_at > clock_now() then
        raise exception 'the billing cycle starting % has not begun (business time is %); its credits cannot be granted yet',
            p_cycle, clock_now() using errcode = '22023';
    end if;
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

-- Renewal cycles due on or before p_day (business date) and not yet renewed: the last 92 days
-- are caught up, so days the cron missed are not lost. A day after the business date is refused.
-- Each account's cycles are walked back from p_day's one (a cycle's start minus a day lies in
-- the cycle before), four or so per account rather than one per day of the 92.
create or replace function renewal_cycles_due(p_day date)
returns table (account_id bigint, cycle_start date)
language plpgsql stable as $$
begin
    if p_day > (clock_now() at time zone 'UTC')::date then
        raise exception 'renewals can be scheduled up to today (%), not for %: credits of a cycle that has not begun would arrive early',
            (clock_now() at time zone 'UTC')::date, p_day using errcode = '22023';
    end if;
    return query
    with recursive cycles as (
        select a.id, a.billing_anchor, p.renewal_anchor, greatest(a.billing_anchor, p_day - 92) as since,
               billing_cycle_start(a.billing_anchor, p.renewal_anchor, p_day) as start
        from sender_accounts a
        join plans p on p.code = a.plan_code
        where a.status <> 'cancelled' and p.monthly_allotment > 0 and a.billing_anchor <= p_day
        union all
        select c.id, c.billing_anchor, c.renewal_anchor, c.since, billing_cycle_start(c.billing_anchor, c.renewal_anchor, c.start - 1)
        from cycles c
        where c.start - 1 >= c.since
    )
    select c.id, c.start
    from cycles c
    where c.start >= c.billing_anchor
      and not exists (select 1 from renewal_cycles r where r.account_id = c.id and r.cycle_start = c.start)
    order by c.id, c.start;
end $$;

-- Reservations ----------------------------------------------------------------------------------

-- How long the sends of an account that another session held past reserve_sends' bounded wait
-- wait before their claim tries again. A racing claim holds an account for milliseconds, so
-- this is a stopped worker's, held until the server ends its session
-- (idle_in_transaction_session_timeout, 30 s for worker sessions).
create or replace function account_busy_retry_after() returns interval
language sql immutable as $$ select interval '15 seconds' $$;

-- The limit a send would pass beyond, or null when it fits: the daily limit of its channel
-- (S6), then the monthly cap on free InMails, then the credits above the reserve (S7, S8).
-- The counts are of the account's earlier sends in the same batch that fit (message_rank
-- counts this one too); a null *_left is no limit.
create or replace function send_limit_refusal(
    p_channel send_channel, p_uses_credit boolean, p_message_rank bigint, p_free_before bigint, p_credit_before bigint,
    p_messages_left integer, p_inmails_left integer, p_free_left bigint, p_credits_left bigint)
returns send_refusal
language sql immutable as $$
    select case
        when p_channel = 'message' then
            case when p_message_rank > p_messages_left then 'daily_limit_reached'::send_refusal end
        -- Earlier InMails of the batch that fit are the first ones of each kind, up to that kind's room.
        when least(p_free_before, p_free_left) + least(p_credit_before, p_credits_left) >= p_inmails_left then
            'daily_limit_reached'
        when not p_uses_credit and p_free_before >= p_free_left then 'free_inmail_monthly_limit'
        when p_uses_credit and p_credit_before >= p_credits_left then 'credits_at_reserve'
    end
$$;

-- The reservation of sends for a claimed batch, in the claim's transaction, in one statement
-- over the whole batch. Each send gets one daily slot on its account's local day and, for a
-- credit InMail, one credit from the grant that expires soonest; or the reason it cannot go
-- now and when to try again. The sends of one account are judged in the order given, as if one
-- after the other: a send that does not fit takes nothing from the ones after it. A retry of a
-- delivery gets its live reservation back (held, or spent when it was delivered) with no
-- refusal; a released one no longer answers for its key, so the delivery reserves anew. With
-- p_require_gateway (a worker delivering through the gateway), an account without a gateway
-- account is refused (account_not_connected). An account with a spacing between sends
-- (max_spacing > 0) sends at most one per batch.
--
-- The batch's accounts are locked first, all in id order, so two claims never wait on each
-- other in a cycle; a racing claim holds an account for a few milliseconds. The lock is FOR NO
-- KEY UPDATE: it excludes other claims and every credit or usage change, but not the foreign
-- key checks of rows that merely reference the account (messages and ledger entries written by
-- handlers finishing their sends), so those never queue behind a claim.
-- An account held by a session that has sat idle inside its transaction for over a second (a
-- worker stopped mid-claim: SIGSTOP, a frozen VM, a cut network) is not waited for: its sends
-- are refused as account_busy, so a stuck worker stalls no one else's claims until the server
-- ends its session (idle_in_transaction_session_timeout). A session stuck since this check is
-- waited for at most lock_timeout (5 s on worker sessions); the claim is then retried and finds it.
create or replace function reserve_sends(p_accounts bigint[], p_keys text[], p_channels send_channel[], p_uses_credit boolean[],
                                         p_require_gateway boolean default false)
returns table (delivery_key text, reservation_id bigint, reservation_state reservation_state, refusal send_refusal,
               retry_at timestamptz)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
    stuck bigint[] := '{}';
    locked bigint[];
    unknown bigint;
    now_business timestamptz := clock_now();
begin
    perform discard_plans_every('inmailq.reserve_sends_calls', 100);
    if exists (select 1 from pg_stat_activity
               where state = 'idle in transaction' and state_change < clock_timestamp() - interval '1 second'
                 and backend_xid is not null) then
        -- Who holds a row: its xmax is the locking transaction; pg_stat_activity has its session.
        select coalesce(array_agg(a.id), '{}') into stuck
        from sender_accounts a
        join pg_stat_activity s on s.backend_xid = a.xmax
        where a.id = any(p_accounts)
          and s.state = 'idle in transaction' and s.state_change < clock_timestamp() - interval '1 second';
    end if;
    select coalesce(array_agg(id), '{}') into locked
    from (select id from sender_accounts where id = any(p_accounts) and not id = any(stuck) order by id for no key update) l;
    select a into unknown from unnest(p_accounts) a where not a = any(locked) and not a = any(stuck) limit 1;
    if found then
        raise exception 'no sender account with id %', unknown using errcode = 'P0002';
    end if;

    -- Each account's day starts with its limits copied in, so the check constraints of
    -- daily_usage hold the line (S6).
    insert into daily_usage (account_id, local_day, inmail_limit, message_limit)
    select a.id, (now_business at time zone a.time_zone)::date, a.daily_inmail_limit, a.daily_message_limit
    from sender_accounts a
    where a.id = any(locked) and a.status = 'active'
    on conflict (account_id, local_day) do nothing;
    -- A4: credits whose time is up are booked as expired before any are counted.
    perform expire_credits(a.id)
    from sender_accounts a
    where a.id = any(locked)
      -- offset 0: probed per account (credit_grants_account_idx), never a hash of all grants
      and exists (select from credit_grants g where g.account_id = a.id and g.remaining > 0 and g.expires_at <= now_business
                  offset 0);

    -- The batch's statement is planned once and its plan kept for the session: a generic plan
    -- (the function's plan_cache_mode, which the foreign-key checks and trigger queries run
    -- under it use anyway), as planning it on each call took 2.4 ms a batch. A plan kept while a
    -- table was small reads it whole, as small tables are read, and would go on doing so as it
    -- grows (runs fell to 770 jobs/s, claims took 60 ms); so the session's plans are made again
    -- every 100 calls (discard_plans_every, above), for the tables as they are by then.
    return query
    with request as (
        select r.i, r.account_id, r.delivery_key, r.channel, r.uses_credit and r.channel = 'inmail' as uses_credit
        from unnest(p_accounts, p_keys, p_channels, p_uses_credit) with ordinality
             as r(account_id, delivery_key, channel, uses_credit, i)
    ),
    live as (
        select r.delivery_key, r.id, r.state from reservations r where r.delivery_key = any(p_keys) and r.state <> 'released'
    ),
    needs as (
        select q.account_id, bool_or(q.channel = 'inmail' and not q.uses_credit) as free_inmails, bool_or(q.uses_credit) as credits
        from request q
        group by q.account_id
    ),
    -- Each send with what holds for every send of its account now, the room the account has
    -- left, and what refuses it whatever else the batch holds.
    judged as (
        select q.*, u.local_day, a.next_send_at, u.message_limit - u.messages as messages_left,
               u.inmail_limit - u.inmails as inmails_left,
               case when n.free_inmails and a.monthly_free_inmail_limit is not null then
                   a.monthly_free_inmail_limit - (
                       select count(*) from reservations r   -- reservations_account_day_idx
                       where r.account_id = a.id and r.local_day >= date_trunc('month', u.local_day)::date
                         and r.channel = 'inmail' and r.grant_id is null and r.state <> 'released')
               end as free_left,
               -- The account's unexpired credits: its grants' total, as the ones due were expired above.
               case when n.credits then a.grants_total - a.credit_reserve end as credits_left,
               a.max_spacing > interval '0' as spaced,
               a.min_spacing + random() * (a.max_spacing - a.min_spacing) as spacing,
               case
                   when a.id is null then 'account_busy'::send_refusal
                   when a.status <> 'active' then ('account_' || a.status)::send_refusal    -- A6, A7, paused
                   when p_require_gateway and a.gateway_account_id is null then 'account_not_connected'
                   when q.channel = 'inmail' and not p.can_send_inmail then 'plan_cannot_send_inmail'   -- A1
                   when not account_open_at(a, now_business) then 'outside_working_hours'
                   when a.next_send_at > now_business then 'too_soon_after_last_send'
               end as account_refusal
        from request q
        join needs n on n.account_id = q.account_id
        left join sender_accounts a on a.id = q.account_id and a.id = any(locked)
        left join plans p on p.code = a.plan_code
        left join lateral (select now_business at time zone a.time_zone as now) local on true
        left join daily_usage u on u.account_id = a.id and u.local_day = local.now::date
        where not exists (select 1 from live l where l.delivery_key = q.delivery_key)
    ),
    -- The limits, counting the account's earlier sends of the batch that got past judged.
    -- Every step below reads the one before it row by row (windows, no joins between them),
    -- so a batch costs time in proportion to its size.
    limited as (
        select j.*,
               send_limit_refusal(
                   j.channel, j.uses_credit,
                   count(*) filter (where j.account_refusal is null and j.channel = 'message') over up_to_this,
                   coalesce(count(*) filter (where j.account_refusal is null and j.channel = 'inmail' and not j.uses_credit)
                                over before_this, 0),
                   coalesce(count(*) filter (where j.account_refusal is null and j.uses_credit) over before_this, 0),
                   j.messages_left, j.inmails_left, j.free_left, j.credits_left) as refusal_in_turn,
               send_limit_refusal(j.channel, j.uses_credit, 1, 0, 0, j.messages_left, j.inmails_left, j.free_left,
                                  j.credits_left) as refusal_alone
        from judged j
        window up_to_this as (partition by j.account_id order by j.i rows between unbounded preceding and current row),
               before_this as (partition by j.account_id order by j.i rows between unbounded preceding and 1 preceding)
    ),
    -- A spaced account sends the first that fits on its own; the ones after it are too soon.
    decided as (
        select l.*,
               coalesce(l.account_refusal,
                        case when not l.spaced then l.refusal_in_turn
                             when l.i = l.first_fit then null
                             when l.i > l.first_fit then 'too_soon_after_last_send'::send_refusal
                             else l.refusal_alone end) as refusal,
               l.account_refusal is null and l.spaced and l.i > l.first_fit as behind_batch_send,
               -- The spacing the account's send of this batch sets: its next send's moment.
               max(l.spacing) filter (where l.i = l.first_fit) over (partition by l.account_id) as batch_spacing
        from (select l.*, min(l.i) filter (where l.account_refusal is null and l.refusal_alone is null)
                              over (partition by l.account_id) as first_fit
              from limited l) l
    ),
    admitted as (
        select d.*, row_number() over (partition by d.account_id, d.uses_credit order by d.i) as credit_turn
        from decided d
        where d.refusal is null
    ),
    -- The n-th credit InMail of an account takes the grant whose range of credits holds n, the
    -- grants taken in the order they are spent (soonest to expire first).
    assigned as (
        select a.*, g.id as grant_id
        from admitted a
        left join lateral (
            select g.id
            from (select g.id, sum(g.remaining) over (order by g.expires_at, g.id) as through
                  from credit_grants g   -- credit_grants_account_idx
                  where g.account_id = a.account_id and g.remaining > 0 and g.expires_at > now_business) g
            where a.credit_turn <= g.through
            order by g.through
            limit 1
        ) g on a.uses_credit
    ),
    reserved as (
        insert into reservations (account_id, delivery_key, channel, grant_id, local_day, reserved_at)
        select a.account_id, a.delivery_key, a.channel, a.grant_id, a.local_day, now_business from assigned a order by a.i
        returning id, delivery_key, account_id, grant_id, state
    ),
    ledger as (
        insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note, at)
        select r.account_id, 'reserve', -1, r.grant_id, r.id, r.delivery_key, now_business from reserved r where r.grant_id is not null
    ),
    taken_from_grants as (
        update credit_grants g set remaining = g.remaining - n.taken
        from (select a.grant_id, count(*)::integer as taken from assigned a where a.grant_id is not null group by a.grant_id) n
        where g.id = n.grant_id
    ),
    used_today as (
        update daily_usage u set inmails = u.inmails + n.inmails, messages = u.messages + n.messages
        from (select a.account_id, a.local_day, count(*) filter (where a.channel = 'inmail')::integer as inmails,
                     count(*) filter (where a.channel = 'message')::integer as messages
              from assigned a group by a.account_id, a.local_day) n
        where u.account_id = n.account_id and u.local_day = n.local_day
    ),
    -- Only a spaced account's next send waits; the others' next_send_at only changes when a
    -- platform asks an account to slow down.
    spaced_out as (
        update sender_accounts a set next_send_at = now_business + n.spacing
        from (select distinct a.account_id, a.spacing from assigned a where a.spaced) n
        where a.id = n.account_id
    )
    select r.delivery_key, r.id, r.state, null, null from reserved r
    union all
    select d.delivery_key, null, null, d.refusal,
           case d.refusal
               when 'account_busy' then now_business + account_busy_retry_after()
               when 'account_cancelled' then null
               when 'account_paused' then now_business + inactive_account_retry_after()
               when 'account_payment_failed' then now_business + inactive_account_retry_after()
               when 'account_not_connected' then now_business + inactive_account_retry_after()
               when 'plan_cannot_send_inmail' then null
               when 'outside_working_hours' then next_working_moment(sa, now_business)
               when 'too_soon_after_last_send' then
                   case when d.behind_batch_send then now_business + d.batch_spacing else d.next_send_at end
               when 'daily_limit_reached' then
                   next_working_moment(sa, (d.local_day + 1)::timestamp at time zone sa.time_zone)
               when 'free_inmail_monthly_limit' then
                   next_working_moment(sa, (date_trunc('month', d.local_day) + interval '1 month')::timestamp at time zone sa.time_zone)
               when 'credits_at_reserve' then
                   least(next_billing_cycle_start(sa.billing_anchor, p.renewal_anchor, now_business::date)::timestamp
                             at time zone 'UTC' + interval '1 hour',
                         now_business + credits_retry_after())
           end
    from decided d
    left join sender_accounts sa on sa.id = d.account_id
    left join plans p on p.code = sa.plan_code
    where d.refusal is not null
    union all
    select l.delivery_key, l.id, l.state, null, null from live l;
end $$;

-- One send's reservation: reserve_sends for a batch of one.
create or replace function reserve_send(p_account bigint, p_delivery_key text, p_channel send_channel, p_uses_credit boolean,
                                        p_require_gateway boolean default false)
returns table (reservation_id bigint, reservation_state reservation_state, refusal send_refusal, retry_at timestamptz)
language sql as $$
    select r.reservation_id, r.reservation_state, r.refusal, r.retry_at
    from reserve_sends(array[p_account], array[p_delivery_key], array[p_channel], array[p_uses_credit], p_require_gateway) r
$$;

-- The messages were delivered: their reservations become spends, in one statement for a
-- batch. No account lock: spending changes neither the balance nor the usage, and the update
-- of the reservation row itself decides a race with a release (the loser finds it not held).
-- Handlers finishing sends therefore never queue behind a claim that holds the account.
-- Raises, changing nothing, when a reservation is unknown or not held.
create or replace function spend_reservations(p_reservations bigint[]) returns void
language plpgsql as $$
declare
    unspent bigint;
    now_business timestamptz := clock_now();
begin
    with settled as (
        update reservations r set state = 'spent', settled_at = now_business
        where r.id = any(p_reservations) and r.state = 'held'
        returning r.id, r.account_id, r.grant_id, r.delivery_key
    ),
    ledger as (
        insert into credit_ledger (account_id, entry, amount, grant_id, reservation_id, note, at)
        select s.account_id, 'spend', 0, s.grant_id, s.id, s.delivery_key, now_business from settled s where s.grant_id is not null
    )
    select wanted into unspent
    from unnest(p_reservations) as wanted
    where not exists (select 1 from settled s where s.id = wanted)
    limit 1;
    if found then
        if not exists (select 1 from reservations where id = unspent) then
            raise exception 'no reservation with id %', unspent using errcode = 'P0002';
        end if;
        raise exception 'reservation % is not held', unspent using errcode = '55000';
    end if;
end $$;

-- spend_reservations for one reservation.
create or replace function spend_reservation(p_reservation bigint) returns void
language sql as $$ select spend_reservations(array[p_reservation]) $$;

-- The delivery failed for good before anything was sent: the slot and the credit come back.
create or replace function release_reservation(p_reservation bigint, p_reason text) returns void
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
create or replace function credit_back(p_reservation bigint) returns boolean
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

-- Operators' actions on credits and plans ------------------------------------------------------

-- A8: purchases only where the plan allows them, and never above the cap (A5).
create or replace function purchase_credits(p_account bigint, p_credits integer) returns integer
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
create or replace function cancel_subscription(p_account bigint) returns integer
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
    perform expire_credits(p_account);  -- what expired is booked as expired, not as cancelled
    for held in select id from reservations where account_id = p_account and settled_at is null loop  -- held
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

-- Takes up to p_count spendable credits of the account (the caller holds its lock) from the
-- grants that expire first, each with a ledger entry p_entry and p_note; credits held by
-- reservations are not touched. Returns how many it took.
create or replace function take_credits(p_account bigint, p_count integer, p_entry text, p_note text) returns integer
language plpgsql as $$
declare
    g record;
    take integer;
    taken integer := 0;
begin
    for g in
        select id, remaining from credit_grants
        where account_id = p_account and remaining > 0 and expires_at > clock_now()
        order by expires_at, id
        for update
    loop
        exit when taken >= p_count;
        take := least(p_count - taken, g.remaining);
        update credit_grants set remaining = remaining - take where id = g.id;
        insert into credit_ledger (account_id, entry, amount, grant_id, note) values (p_account, p_entry, -take, g.id, p_note);
        taken := taken + take;
    end loop;
    return taken;
end $$;

-- Plan changes keep the ledger whole: credits above the new cap expire at once.
create or replace function change_plan(p_account bigint, p_plan text) returns text
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    plan plans;
    excess integer;
begin
    select * into plan from plans where code = p_plan;
    if not found then
        raise exception 'unknown plan "%" (see: select code from plans)', p_plan using errcode = 'P0002';
    end if;
    update sender_accounts set plan_code = p_plan where id = p_account;
    excess := credit_balance(p_account) + credit_held(p_account) - plan.credit_cap;
    perform take_credits(p_account, excess, 'expire', format('above the cap of %s', plan.name));
    return p_plan;
end $$;

-- An account's ledger with the running balance, oldest first.
create or replace function credit_statement(p_account bigint)
returns table (at timestamptz, entry text, amount integer, balance bigint, note text)
language plpgsql stable as $$
begin
    if not exists (select 1 from sender_accounts where id = p_account) then
        raise exception 'no sender account with id %', p_account using errcode = 'P0002';
    end if;
    return query
        select l.at, l.entry, l.amount, sum(l.amount) over (order by l.id), l.note
        from credit_ledger l where l.account_id = p_account order by l.id;
end $$;

-- How and when an account sends: its working days (ISO, 1 = Monday) and hours in its own time
-- zone, the random spacing between two sends, and its daily limits (S6). A null keeps the
-- current value. Each bad value is refused with its name and the rule; nothing changes then.
-- The new limits count from the account's next local day (today's row keeps the limits it
-- started with). Returns the account's settings as text.
create or replace function admin_set_sending_schedule(
    p_account bigint, p_working_days smallint[] default null, p_working_start time default null,
    p_working_end time default null, p_min_spacing interval default null, p_max_spacing interval default null,
    p_daily_inmail_limit integer default null, p_daily_message_limit integer default null, p_time_zone text default null
) returns text
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
begin
    if p_working_days is not null and (cardinality(p_working_days) = 0 or not p_working_days <@ '{1,2,3,4,5,6,7}') then
        raise exception 'working days % must be ISO day numbers 1 (Monday) to 7 (Sunday), at least one', p_working_days using errcode = '22023';
    end if;
    if coalesce(p_working_start, account.working_start) >= coalesce(p_working_end, account.working_end) then
        raise exception 'working hours must start before they end (% to %)', coalesce(p_working_start, account.working_start),
            coalesce(p_working_end, account.working_end) using errcode = '22023';
    end if;
    if coalesce(p_min_spacing, account.min_spacing) < interval '0'
       or coalesce(p_min_spacing, account.min_spacing) > coalesce(p_max_spacing, account.max_spacing)
       or coalesce(p_max_spacing, account.max_spacing) > interval '1 day' then
        raise exception 'spacing from % to % must be 0 or more, its minimum not above its maximum, at most a day',
            coalesce(p_min_spacing, account.min_spacing), coalesce(p_max_spacing, account.max_spacing) using errcode = '22023';
    end if;
    if p_daily_inmail_limit not between 0 and 1000 or p_daily_message_limit not between 0 and 1000 then
        raise exception 'daily limits must be between 0 and 1000 (got InMails %, messages %)', p_daily_inmail_limit,
            p_daily_message_limit using errcode = '22023';
    end if;
    if p_time_zone is not null and not is_time_zone(p_time_zone) then
        raise exception 'unknown time zone "%" (use an IANA name such as Europe/Paris)', p_time_zone using errcode = '22023';
    end if;
    update sender_accounts set
        working_days = coalesce(p_working_days, working_days), working_start = coalesce(p_working_start, working_start),
        working_end = coalesce(p_working_end, working_end), min_spacing = coalesce(p_min_spacing, min_spacing),
        max_spacing = coalesce(p_max_spacing, max_spacing),
        daily_inmail_limit = coalesce(p_daily_inmail_limit, daily_inmail_limit),
        daily_message_limit = coalesce(p_daily_message_limit, daily_message_limit),
        time_zone = coalesce(p_time_zone, time_zone)
    where id = p_account
    returning * into account;
    return format('account %s: days %s, %s-%s %s, %s to %s between sends, %s InMails and %s messages a day',
        account.id, account.working_days, account.working_start, account.working_end, account.time_zone,
        account.min_spacing, account.max_spacing, account.daily_inmail_limit, account.daily_message_limit);
end $$;

-- Tenancy: the functions behind the operators' scripts in sql/admin. Each fails with a message
-- naming the bad input, and changes nothing when it fails.

create or replace function admin_create_agency(p_name text) returns bigint
language plpgsql as $$
declare
    new_id bigint;
begin
    if p_name is null or length(btrim(p_name)) = 0 then
        raise exception 'an agency needs a name' using errcode = '22023';
    end if;
    insert into agencies (name) values (btrim(p_name)) returning id into new_id;
    return new_id;
exception when unique_violation then
    raise exception 'an agency named "%" already exists', btrim(p_name) using errcode = '23505';
end $$;

create or replace function admin_create_workspace(p_agency bigint, p_name text) returns bigint
language plpgsql as $$
declare
    new_id bigint;
begin
    if not exists (select 1 from agencies where id = p_agency) then
        raise exception 'no agency with id %', p_agency using errcode = 'P0002';
    end if;
    insert into workspaces (agency_id, name) values (p_agency, btrim(p_name)) returning id into new_id;
    return new_id;
exception when unique_violation then
    raise exception 'agency % already has a workspace named "%"', p_agency, btrim(p_name) using errcode = '23505';
end $$;

create or replace function admin_create_sender_account(
    p_workspace bigint, p_name text, p_plan text, p_billing_anchor date, p_time_zone text
) returns bigint
language plpgsql as $$
declare
    new_id bigint;
begin
    if not exists (select 1 from workspaces where id = p_workspace) then
        raise exception 'no workspace with id %', p_workspace using errcode = 'P0002';
    end if;
    if not exists (select 1 from plans where code = p_plan) then
        raise exception 'unknown plan "%" (known: %)', p_plan, (select string_agg(code, ', ' order by code) from plans)
            using errcode = 'P0002';
    end if;
    if not is_time_zone(p_time_zone) then
        raise exception 'unknown time zone "%" (use an IANA name such as Europe/Paris)', p_time_zone using errcode = '22023';
    end if;
    insert into sender_accounts (workspace_id, display_name, plan_code, billing_anchor, time_zone)
    values (p_workspace, btrim(p_name), p_plan, p_billing_anchor, p_time_zone)
    returning id into new_id;
    return new_id;
end $$;

-- Delivery through a gateway --------------------------------------------------------------------

-- Binds a sender account to its gateway account (sql/admin/connect_gateway_account.sql). The
-- gateway recommends at least 10-20 s between two messages of an account: its spacing is
-- raised to p_min_spacing unless it is already longer. Returns the gateway account.
create or replace function connect_gateway_account(p_account bigint, p_gateway_account text,
                                                   p_min_spacing interval default interval '15 seconds')
returns text
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
begin
    if p_gateway_account is null or p_gateway_account !~ '^[A-Za-z0-9_.:=-]{1,200}$' then
        raise exception 'gateway account "%" is not a gateway account id (1-200 letters, digits or _ . : = -)', left(p_gateway_account, 200)
            using errcode = '22023';
    end if;
    if exists (select 1 from sender_accounts where gateway_account_id = p_gateway_account and id <> p_account) then
        raise exception 'gateway account % is already bound to sender account %', p_gateway_account,
            (select id from sender_accounts where gateway_account_id = p_gateway_account)
            using errcode = '23505';
    end if;
    update sender_accounts
    set gateway_account_id = p_gateway_account,
        min_spacing = greatest(min_spacing, p_min_spacing),
        max_spacing = greatest(max_spacing, p_min_spacing)
    where id = account.id;
    return p_gateway_account;
end $$;

-- Brings the ledger to LinkedIn's count of an account's InMail credits: p_linkedin is what the
-- gateway reports, p_expected what the ledger counted when it was asked (credits spendable
-- plus those held by reservations, which LinkedIn has not spent yet). If the ledger moved since
-- (a send, a renewal), nothing is changed and null is returned: the next round compares again.
-- Otherwise the difference is booked as a 'reconcile' entry: a grant of the missing credits
-- (lifetime of the plan), or the surplus taken from the grants that expire first. Returns the
-- correction (0 when they agree).
create or replace function reconcile_credits(p_account bigint, p_linkedin integer, p_expected integer, p_note text)
returns integer
language plpgsql as $$
declare
    account sender_accounts := lock_account(p_account);
    plan plans;
    expected integer;
begin
    if p_linkedin is null or p_linkedin < 0 then
        raise exception 'LinkedIn''s credit count must be a number of 0 or more (got %)', p_linkedin using errcode = '22023';
    end if;
    perform expire_credits(p_account);
    expected := credit_balance(p_account) + credit_held(p_account);
    if expected <> p_expected then
        return null;
    end if;
    if p_linkedin > expected then
        select * into plan from plans where code = account.plan_code;
        perform add_credit_grant(p_account, 'reconcile', 'reconcile', p_linkedin - expected, clock_now(), plan.credit_lifetime,
                                 left(p_note, 500));
        return p_linkedin - expected;
    end if;
    perform take_credits(p_account, expected - p_linkedin, 'reconcile', left(p_note, 500));  -- held credits stay with their sends
    return p_linkedin - expected;
end $$;

-- Metrics: each account that is not cancelled, with its agency, today's sends against its
-- limits in its own local day (S6), and its spendable credits. The elected worker samples it
-- every few seconds: one pass over the accounts, each with an index lookup of today's usage
-- (the primary key) and of its spendable grants (credit_grants_account_idx); the business
-- clock is read once.
create or replace function account_metrics()
returns table (account_id bigint, agency_id bigint, status account_status, inmails_today integer, inmail_limit integer,
               messages_today integer, message_limit integer, credits integer)
language sql stable as $$
    select a.id, w.agency_id, a.status,
           coalesce(u.inmails, 0), coalesce(u.inmail_limit, a.daily_inmail_limit),
           coalesce(u.messages, 0), coalesce(u.message_limit, a.daily_message_limit),
           (select coalesce(sum(g.remaining), 0)::integer from credit_grants g
            where g.account_id = a.id and g.remaining > 0 and g.expires_at > clock.now)
    from (select clock_now() as now) as clock
    cross join sender_accounts a
    join workspaces w on w.id = a.workspace_id
    left join daily_usage u on u.account_id = a.id and u.local_day = (clock.now at time zone a.time_zone)::date
    where a.status <> 'cancelled'
$$;
