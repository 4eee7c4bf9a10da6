-- access: the current grants and row-level security policies (re-applied whenever this file
-- changes or any migration ran, so objects made since are covered). Roles: 0001_roles.sql.

-- The reader's filters. SECURITY DEFINER: they read the mapping and the ids of the reader's
-- agency as their owner, so a reader needs no access to agency_readers and cannot widen what
-- it sees; the policies pass `current_user`, which a session cannot forge (a SET ROLE changes
-- it only to a role the login was granted). search_path is fixed against hijacking.
-- A role the session's login does not belong to gets no agency: naming another reader's role
-- reveals nothing.
create or replace function reader_agency(p_role name) returns bigint
language sql stable security definer set search_path = pg_catalog, public as $$
    select agency_id from agency_readers where role_name = p_role and pg_has_role(session_user, p_role, 'member')
$$;

create or replace function reader_workspaces(p_role name) returns bigint[]
language sql stable security definer set search_path = pg_catalog, public as $$
    select coalesce(array_agg(id), '{}') from workspaces where agency_id = (select reader_agency(p_role))
$$;

create or replace function reader_accounts(p_role name) returns bigint[]
language sql stable security definer set search_path = pg_catalog, public as $$
    select coalesce(array_agg(a.id), '{}') from sender_accounts a where a.workspace_id = any((select reader_workspaces(p_role))::bigint[])
$$;

create or replace function reader_campaigns(p_role name) returns bigint[]
language sql stable security definer set search_path = pg_catalog, public as $$
    select coalesce(array_agg(c.id), '{}') from campaigns c where c.workspace_id = any((select reader_workspaces(p_role))::bigint[])
$$;

-- Tables ---------------------------------------------------------------------------------------

-- The owner's login owns everything; the group role may do everything to it too.
grant all on all tables in schema public to inmailq_owner;
grant all on all sequences in schema public to inmailq_owner;

-- Workers and serve: read everything, write what jobs and webhooks change. What operators alone
-- set up (agencies, workspaces, plans, reference data, campaign steps) is read-only to them.
-- No TRUNCATE, and no DDL: they own nothing.
grant select, insert, update, delete on all tables in schema public to inmailq_worker;
revoke select on agency_readers from inmailq_worker;
revoke insert, update, delete on agencies, workspaces, plans, message_limits, response_kinds, reply_phrases,
    campaign_steps, agency_readers, schema_migrations from inmailq_worker;
grant usage, select on all sequences in schema public to inmailq_worker;

-- Operators: every row, through the admin scripts and the CLI; no TRUNCATE, no DDL.
grant select, insert, update, delete on all tables in schema public to inmailq_operator;
revoke insert, update, delete on schema_migrations from inmailq_operator;
grant usage, select on all sequences in schema public to inmailq_operator;

-- Readers: their agency's rows (policies below), the reference tables, and the business clock
-- the reports compute with. Not the queue's tables (jobs carry every agency's work), nor the
-- gateway's webhooks, nor the mapping of readers.
revoke all on all tables in schema public from inmailq_reader;
grant select on agencies, workspaces, sender_accounts, credit_grants, credit_ledger, renewal_cycles, reservations,
    daily_usage, campaigns, campaign_steps, campaign_senders, do_not_contact, contacts, messages, responses,
    contact_searches, message_counts, contact_counts, plans, message_limits, response_kinds, reply_phrases, queue_clock
    to inmailq_reader;
-- The reports' views, evaluated with the reader's rights (and so its policies) rather than
-- their owner's.
grant select on message_outcomes, message_stats, campaign_report, agency_report, sender_report to inmailq_reader;
alter view message_outcomes set (security_invoker = true);
alter view message_stats set (security_invoker = true);
alter view campaign_report set (security_invoker = true);
alter view agency_report set (security_invoker = true);
alter view sender_report set (security_invoker = true);
alter view contact_progress set (security_invoker = true);
alter view stuck_sends set (security_invoker = true);
alter view all_jobs set (security_invoker = true);

-- Functions --------------------------------------------------------------------------------------

-- Operator-only: setting up agencies, accounts and campaigns, buying credits, ending
-- subscriptions, resolving stuck sends and moving the business clock. Every other function may
-- be called by anyone who may connect; what it writes is still bound by the table grants above.
do $$
declare
    operator_only text[] := array[
        'admin_create_agency', 'admin_create_workspace', 'admin_create_sender_account', 'admin_set_sending_schedule',
        'purchase_credits', 'cancel_subscription', 'change_plan', 'connect_gateway_account', 'resolve_stuck_send',
        'create_campaign', 'activate_campaign', 'pause_campaign', 'end_campaign', 'add_to_do_not_contact',
        'inbox_phrase', 'clock_advance', 'grant_agency_reader', 'console_agency_role'];
    f regprocedure;
begin
    for f in select p.oid::regprocedure from pg_proc p
             where p.pronamespace = 'public'::regnamespace and p.proname = any(operator_only) loop
        execute format('revoke execute on function %s from public', f);
        execute format('grant execute on function %s to inmailq_owner, inmailq_operator', f);
    end loop;
end $$;

-- Maps a reader login to the agency it may see, and grants it inmailq_reader.
create or replace function grant_agency_reader(p_login name, p_agency bigint) returns void
language plpgsql as $$
begin
    if not exists (select 1 from pg_roles where rolname = p_login) then
        raise exception 'no role named %', p_login using errcode = '42704', hint = 'create the login first: create role ... login password ...';
    end if;
    if not exists (select 1 from agencies where id = p_agency) then
        raise exception 'no agency with id %', p_agency using errcode = '23503';
    end if;
    execute format('grant inmailq_reader to %I', p_login);
    insert into agency_readers (role_name, agency_id) values (p_login, p_agency)
    on conflict (role_name) do update set agency_id = excluded.agency_id, granted_at = now();
end $$;
revoke execute on function grant_agency_reader(name, bigint) from public;
grant execute on function grant_agency_reader(name, bigint) to inmailq_owner, inmailq_operator;

-- The web console -----------------------------------------------------------------------------------

-- The role the console reads one agency's rows as (`set local role`, request by request): a
-- NOLOGIN reader mapped to the agency. Roles belong to the whole cluster while agency ids are
-- per database, so the name carries the database's oid.
create or replace function console_role_name(p_agency bigint) returns name
language sql stable as $$
    select format('inmailq_console_%s_%s', (select oid from pg_database where datname = current_database()), p_agency)::name
$$;

-- Makes (once) and maps the agency's console role. inmailq_worker and inmailq_owner are granted
-- it, so `inmailq serve`, logged in as either, may take it; reader_agency() then accepts it, as
-- the session's login is a member. Called by `inmailq console add-login`.
create or replace function console_agency_role(p_agency bigint) returns name
language plpgsql as $$
declare
    role name := console_role_name(p_agency);
begin
    if not exists (select 1 from agencies where id = p_agency) then
        raise exception 'no agency with id %', p_agency using errcode = 'P0002';
    end if;
    if not exists (select 1 from pg_roles where rolname = role) then
        begin
            execute format('create role %I nologin', role);
        exception
            when duplicate_object or unique_violation then null;  -- made meanwhile by another session
            when insufficient_privilege then
                raise exception '% may not create the console''s role for agency %', current_user, p_agency
                    using hint = 'add console logins as a login with CREATEROLE (the owner), or as a superuser';
        end;
    end if;
    execute format('grant %I to inmailq_worker, inmailq_owner', role);
    perform grant_agency_reader(role, p_agency);
    return role;
end $$;

-- A reader's agency's jobs (readers are not granted the queue's tables, which hold every
-- agency's work). A job belongs to the agency whose sender account is its partition (sends,
-- follow-ups, renewals). The role defaults to the caller's (a default is evaluated where the
-- function is called).
drop function if exists reader_jobs(timestamptz, name);  -- every job: counted and filtered by the page

-- The agency's sender accounts as the queue's partition keys.
create or replace function reader_partitions(p_role name) returns text[]
language sql stable security definer set search_path = pg_catalog, public as $$
    select array(select a::text from unnest(reader_accounts(p_role)) a)
$$;

-- The agency's jobs by kind and state (queue_job_counts_of): unfinished, or finished since
-- p_finished_since. (An argument without a subquery lets the queue's function be inlined.)
create or replace function reader_job_counts(p_finished_since timestamptz, p_role name default current_user)
returns table (kind text, state job_state, jobs bigint, earliest_run_at timestamptz)
language sql stable security definer set search_path = pg_catalog, public as $$
    select * from queue_job_counts_of(reader_partitions(p_role), p_finished_since)
$$;

-- The agency's jobs attempted or finished since p_since (queue_recent_jobs_of).
create or replace function reader_recent_jobs(p_since timestamptz, p_role name default current_user)
returns setof all_jobs
language sql stable security definer set search_path = pg_catalog, public as $$
    select * from queue_recent_jobs_of(reader_partitions(p_role), p_since)
$$;

-- One of the reader's agency's jobs by id, or nothing (whose ever else it is): its partition is
-- one of the agency's accounts, found by primary key (a partition key that is no account id
-- matches none).
create or replace function reader_job(p_id bigint, p_role name default current_user)
returns setof all_jobs
language sql stable security definer set search_path = pg_catalog, public as $$
    select j.* from queue_job_with_id(p_id) j
    where exists (select from sender_accounts a
                  where a.id = case when j.partition_key ~ '^[0-9]{1,18}$' then j.partition_key::bigint end
                    and a.workspace_id = any((select reader_workspaces(p_role))::bigint[]))
$$;

-- A page of the People view of one of the reader's agency's campaigns (contact_progress reads
-- the queue's jobs, which readers are not granted): its contacts after p_after_contact in id
-- order, of one status when given, whose name, company or member key contains p_search when
-- given; at most 200. Nothing for another agency's campaign.
create or replace function reader_people(p_campaign bigint, p_status contact_status, p_search text, p_after_contact bigint,
                                         p_limit integer, p_role name default current_user)
returns setof contact_progress
language sql stable security definer set search_path = pg_catalog, public as $$
    select p.* from contact_progress p
    where p.campaign_id = p_campaign and p_campaign = any((select reader_campaigns(p_role))::bigint[])
      and (p_status is null or p.status = p_status)
      and (p_search is null
           or concat_ws(' ', p.first_name, p.last_name, p.company, p.member_key)
              ilike '%' || replace(replace(replace(p_search, '\', '\\'), '%', '\%'), '_', '\_') || '%')
      and p.contact_id > coalesce(p_after_contact, 0)
    order by p.contact_id
    limit least(greatest(p_limit, 1), 200)
$$;

-- Policies -----------------------------------------------------------------------------------------

-- Everyone but a reader sees and writes every row of each table with row-level security (the
-- ones 0001_roles.sql names); the planner folds `true` away, so the hot paths pay nothing for it.
do $$
declare
    t text;
begin
    for t in select relname from pg_class
             where relnamespace = 'public'::regnamespace and relkind = 'r' and relrowsecurity loop
        execute format('drop policy if exists inmailq_all_rows on %I', t);
        execute format('create policy inmailq_all_rows on %I to inmailq_owner, inmailq_worker, inmailq_operator '
                       'using (true) with check (true)', t);
        execute format('drop policy if exists inmailq_agency_reader on %I', t);
    end loop;
end $$;

-- A reader: its agency's rows only. The agency's own rows and its workspaces' rows are found
-- by key (a subselect makes the agency's few workspaces an init plan, computed once per query);
-- every other row is visible when the row it belongs to is (its account, campaign or message),
-- whose own policy decides. Never an array test like `account_id = any(...)`: an agency of
-- 100,000 accounts would make it compare each row with each of them.
-- - By account or message: a scalar subquery, a probe of that row's primary key per row. (An
--   EXISTS may be planned as a hash of all the agency's accounts or messages, built for every
--   query: with a row count misestimated, a page of 80 rows chose a 20-million-row index scan
--   to avoid building one.)
-- - By campaign: EXISTS, which the planner makes a probe per row for a page of rows, or a hash
--   of the agency's few campaigns for a scan of many.
create policy inmailq_agency_reader on agencies for select to inmailq_reader
    using (id = (select reader_agency(current_user)));
create policy inmailq_agency_reader on workspaces for select to inmailq_reader
    using (agency_id = (select reader_agency(current_user)));
create policy inmailq_agency_reader on sender_accounts for select to inmailq_reader
    using (workspace_id = any((select reader_workspaces(current_user))::bigint[]));
create policy inmailq_agency_reader on campaigns for select to inmailq_reader
    using (workspace_id = any((select reader_workspaces(current_user))::bigint[]));
create policy inmailq_agency_reader on do_not_contact for select to inmailq_reader
    using (workspace_id = any((select reader_workspaces(current_user))::bigint[]));
create policy inmailq_agency_reader on contacts for select to inmailq_reader
    using (workspace_id = any((select reader_workspaces(current_user))::bigint[]));
create policy inmailq_agency_reader on credit_grants for select to inmailq_reader
    using ((select true from sender_accounts a where a.id = credit_grants.account_id));
create policy inmailq_agency_reader on credit_ledger for select to inmailq_reader
    using ((select true from sender_accounts a where a.id = credit_ledger.account_id));
create policy inmailq_agency_reader on renewal_cycles for select to inmailq_reader
    using ((select true from sender_accounts a where a.id = renewal_cycles.account_id));
create policy inmailq_agency_reader on reservations for select to inmailq_reader
    using ((select true from sender_accounts a where a.id = reservations.account_id));
create policy inmailq_agency_reader on daily_usage for select to inmailq_reader
    using ((select true from sender_accounts a where a.id = daily_usage.account_id));
create policy inmailq_agency_reader on campaign_steps for select to inmailq_reader
    using (exists (select from campaigns c where c.id = campaign_steps.campaign_id));
create policy inmailq_agency_reader on campaign_senders for select to inmailq_reader
    using (exists (select from campaigns c where c.id = campaign_senders.campaign_id));
create policy inmailq_agency_reader on contact_searches for select to inmailq_reader
    using (exists (select from campaigns c where c.id = contact_searches.campaign_id));
create policy inmailq_agency_reader on messages for select to inmailq_reader
    using (exists (select from campaigns c where c.id = messages.campaign_id));
-- A counter row's campaign and account (whichever it names) are both the reader's.
create policy inmailq_agency_reader on message_counts for select to inmailq_reader
    using ((campaign_id is null or exists (select from campaigns c where c.id = message_counts.campaign_id))
           and (account_id is null or (select true from sender_accounts a where a.id = message_counts.account_id)));
create policy inmailq_agency_reader on contact_counts for select to inmailq_reader
    using (exists (select from campaigns c where c.id = contact_counts.campaign_id));
create policy inmailq_agency_reader on responses for select to inmailq_reader
    using ((select true from messages m where m.id = responses.message_id));
