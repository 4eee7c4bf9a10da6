-- access: who may do what. Four NOLOGIN group roles, granted by a DBA to the login roles that
-- connect (README, "Running in production"):
--   inmailq_owner     owns the schema and runs migrations
--   inmailq_worker    `inmailq worker` and `inmailq serve`: the DML and functions they need; no
--                     DDL (it owns nothing), no TRUNCATE, no operator-only function
--   inmailq_operator  the admin scripts (sql/admin) and the CLI's operator commands
--   inmailq_reader    reports; each reader login sees one agency's rows only (row-level security)
-- Roles belong to the whole cluster, so several databases (or tests) may share them: each is
-- created once, whoever gets there first.
do $$
declare
    name text;
begin
    foreach name in array array['inmailq_owner', 'inmailq_worker', 'inmailq_operator', 'inmailq_reader'] loop
        if not exists (select 1 from pg_roles where rolname = name) then
            begin
                execute format('create role %I nologin', name);
            exception
                when duplicate_object or unique_violation then null;  -- another database's migration made it meanwhile
                when insufficient_privilege then
                    raise exception 'role % does not exist and % may not create it', name, current_user
                        using hint = 'as a superuser, create the roles inmailq_owner, inmailq_worker, inmailq_operator and '
                                     'inmailq_reader (NOLOGIN), grant inmailq_owner to the login that migrates, and migrate again';
            end;
        end if;
    end loop;
    -- Operators map reader logins to agencies (sql/admin/grant_agency_reader.sql), which grants
    -- them inmailq_reader.
    begin
        grant inmailq_reader to inmailq_operator with admin option;
    exception when insufficient_privilege then
        raise exception '% may not let inmailq_operator grant inmailq_reader', current_user
            using hint = 'as a superuser: grant inmailq_reader to inmailq_operator with admin option';
    end;
    -- Row-level security is forced on the owner too: the login that migrates (and so owns the
    -- tables) must be an inmailq_owner to see their rows. A superuser bypasses it anyway.
    if not (select rolsuper from pg_roles where rolname = current_user)
       and not pg_has_role(current_user, 'inmailq_owner', 'member') then
        begin
            execute format('grant inmailq_owner to %I', current_user);
        exception when insufficient_privilege then
            raise exception 'the login that migrates (%) must be a member of inmailq_owner', current_user
                using hint = format('as a superuser: grant inmailq_owner to %I', current_user);
        end;
    end if;
end $$;

-- Which agency each reader login may see: one row per login (or role a session may SET ROLE
-- to), written by sql/admin/grant_agency_reader.sql. Keyed on the login rather than on a session
-- setting: a setting can be changed by whoever holds the session, a login cannot.
create table agency_readers (
    role_name  name primary key,
    agency_id  bigint not null references agencies,
    granted_at timestamptz not null default now()
);
create index agency_readers_agency_idx on agency_readers (agency_id);

-- Tables of one agency's data are filtered per reader; every other role's policy is `true`.
-- FORCE: the tables' owner is filtered too (it has its own `true` policy, R__access.sql).
alter table agencies          enable row level security, force row level security;
alter table workspaces        enable row level security, force row level security;
alter table sender_accounts   enable row level security, force row level security;
alter table credit_grants     enable row level security, force row level security;
alter table credit_ledger     enable row level security, force row level security;
alter table renewal_cycles    enable row level security, force row level security;
alter table reservations      enable row level security, force row level security;
alter table daily_usage       enable row level security, force row level security;
alter table campaigns         enable row level security, force row level security;
alter table campaign_steps    enable row level security, force row level security;
alter table campaign_senders  enable row level security, force row level security;
alter table do_not_contact    enable row level security, force row level security;
alter table contacts          enable row level security, force row level security;
alter table messages          enable row level security, force row level security;
alter table responses         enable row level security, force row level security;
alter table contact_searches  enable row level security, force row level security;
