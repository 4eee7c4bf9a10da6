-- 0007_contact_searches: contacts found by a LinkedIn or Sales Navigator search URL (C2). The
-- search job pages through the results through the courier; the page cursor is stored with
-- each page's contacts, so a search whose worker died resumes where it stopped.

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
