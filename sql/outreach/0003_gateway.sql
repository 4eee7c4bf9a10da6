-- outreach 0003: what delivery through a gateway keeps. A message records its chat (follow-ups
-- go into the chat the first message started) and when a request that may have sent it went
-- out (a retry then asks the gateway before sending again). Members resolved to the gateway's
-- ids are cached per gateway account (ids differ by LinkedIn product).

alter table messages
    add column chat_id text check (length(chat_id) <= 500),
    add column posted_at timestamptz;

create table gateway_members (
    gateway_account_id text not null,
    member_key         text not null,
    provider_id        text not null check (length(provider_id) between 1 and 500),
    first_degree       boolean not null,
    resolved_at        timestamptz not null default now(),
    primary key (gateway_account_id, member_key)
);

drop function if exists record_delivery(bigint, text, bigint, bigint);

-- The fleet's request budget towards the gateway (--gateway-rps): one token bucket.
create table gateway_pacing (
    singleton  boolean primary key default true check (singleton),
    allowance  double precision not null default 0,
    checked_at timestamptz not null default clock_timestamp()
);
insert into gateway_pacing default values;
