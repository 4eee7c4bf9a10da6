-- inbox 0001: the gateway's webhooks, kept as they arrived, and what processing them did.
--
-- `inmailq serve` writes each webhook here in the request's transaction and answers 200 only
-- after the commit; an `inbox.process` job (one per batch of new rows) then turns each into
-- domain changes (inbox_process). The unique event key makes a replayed webhook (gateways retry until they
-- get a 200) a no-op.

create type inbox_state as enum (
    'received',       -- stored, its job not done yet
    'processed',      -- applied (or, like the account's own message, nothing to apply)
    'unmatched',      -- names a chat or account inmailq does not know; kept for operators
    'unknown_event'   -- an event type inmailq does not handle; kept, acknowledged, not lost
);

create table gateway_inbox (
    id                 bigint generated always as identity primary key,
    -- What makes a delivery the same event: 'message:<gateway message id>' for messages,
    -- 'account_status:<account>:<status>:after:<previous status event id>' for account status
    -- (the gateway gives those no id: a status repeating the account's last one is a replay),
    -- 'other:<sha256 of the body>' for anything else.
    event_key          text not null unique check (length(event_key) <= 1000),
    event              text not null check (length(event) <= 200),    -- message_received, account_status, ...
    gateway_account_id text check (length(gateway_account_id) <= 500),
    chat_id            text check (length(chat_id) <= 500),
    payload            jsonb not null,
    received_at        timestamptz not null default now(),
    state              inbox_state not null default 'received',
    outcome            text check (length(outcome) <= 2000),           -- what processing did, in words
    processed_at       timestamptz,
    check ((state = 'received') = (processed_at is null))
);

-- The operators' list (sql/admin/inbox.sql) and the re-match when a chat becomes known:
-- "events still waiting, or kept unmatched or unknown" is a small part of the table.
create index gateway_inbox_attention_idx on gateway_inbox (chat_id, received_at) where state <> 'processed';

-- Account status events: "this account's latest status event" (the replay key above).
create index gateway_inbox_account_status_idx on gateway_inbox (gateway_account_id, id) where event = 'account_status';

-- A member's reply names only its chat: "the messages of this chat".
create index messages_chat_idx on messages (chat_id) where chat_id is not null;

-- LinkedIn's canned InMail answers, as the member's message text reads (lower case, single
-- spaces, no trailing punctuation): a message matching one is that response kind (R2, R3, R5);
-- any other text from the member is a free-text reply (R4). Operators add the texts their
-- accounts' languages use (sql/admin/set_reply_phrase.sql).
create table reply_phrases (
    phrase text primary key check (phrase = lower(phrase) and length(phrase) between 1 and 500),
    kind   text not null references response_kinds
);
insert into reply_phrases values
    ('interested', 'interested'),              -- R2, auto-reply "Interested"
    ('maybe later', 'maybe_later'),            -- R2, auto-reply "Maybe later"
    ('not interested', 'not_interested');      -- R2, auto-reply "Not interested"
