-- sandbox 0001: the state of the sandbox courier, the simulated LinkedIn that the demo, the tests
-- and the benchmarks deliver to. Every worker process shares it through these tables, so its
-- answers stay the same whichever worker asks. Real deliveries never touch them.

create table sandbox_settings (
    singleton           boolean primary key default true check (singleton),
    seed                bigint not null default 42,        -- the same seed, the same simulated world
    latency_ms          integer not null default 0 check (latency_ms >= 0),  -- each delivery takes this long
    restricted_accounts bigint[] not null default '{}',    -- accounts LinkedIn has restricted
    perfect             boolean not null default false      -- no opt-outs, failures or responses (benchmarks)
);
insert into sandbox_settings default values;

-- Every delivery key the sandbox was asked to deliver, and the message it delivered for it.
-- A request with a key already delivered gets the first receipt back (and counts as a repeat),
-- never a second message: the primary key is the sandbox's duplicate detection.
create table sandbox_messages (
    delivery_key       text primary key,
    requests           integer not null default 1 check (requests >= 1),   -- every request with this key
    repeats            integer not null default 0 check (repeats >= 0),    -- requests after it was delivered
    account_id         bigint not null,
    member_key         text not null,
    channel            text not null,
    subject            text,
    body               text,
    receipt            text unique,                   -- null until delivered
    first_requested_at timestamptz not null default clock_now(),
    delivered_at       timestamptz,
    check ((receipt is null) = (delivered_at is null))
);
