-- 0003_admin: functions behind the operators' scripts in sql/admin. Each fails with a message
-- naming the bad input, and changes nothing when it fails.

create function admin_create_agency(p_name text) returns bigint
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

create function admin_create_workspace(p_agency bigint, p_name text) returns bigint
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

create function admin_create_sender_account(
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

-- An account's ledger with the running balance, oldest first.
create function credit_statement(p_account bigint)
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
