-- A delivery rewrites two rows in place: its message ('sending' to 'sent') and its contact
-- ('waiting' to 'sent'). A rewrite that keeps every indexed value and finds room on its page for
-- the new version is a HOT update: it adds nothing to the table's indexes (eight on messages,
-- five on contacts). A bench pipeline run measured 29% of the message updates and none of the
-- contact updates so.

-- Messages: 0007 kept 20% of each page free, enough for a few rewritten rows. But a batch's
-- messages are written by one statement, side by side, and marked sent by one statement a few
-- milliseconds later, when none of the old versions can be cleared yet: every row of a page is
-- rewritten at once, so the page needs room for as many rows again (a sent row is about a sixth
-- wider, with its receipt). At 45% every message update was HOT. The price is room: a page keeps
-- about half of itself for its rows' second versions, where at 80% the versions that left their
-- page filled other pages until vacuum reclaimed them (the README's Speed section has the sizes).
-- Pages written before this keep their old fill.
alter table messages set (fillfactor = 45);

-- Contacts: the status is in the predicate of the one-campaign-at-a-time index, so any change
-- of it made a new index entry in all five indexes, though 'waiting' to 'sent' leaves the
-- contact in progress. The predicate now reads a stored column that changes only when a contact
-- enters or leaves progress. Adding it rewrites the table (under an exclusive lock: on a large
-- table, migrate between campaigns' working hours); the rewrite already keeps the room below.
alter table contacts set (fillfactor = 70);  -- a contact is rewritten when its sender is assigned, then when it is sent
alter table contacts add column in_progress boolean not null generated always as (status in ('waiting', 'sent', 'accepted')) stored;

-- A member is in at most one in-progress campaign of a workspace at a time (as in 0001, which
-- says where it is used). Queries that look for a member's contact in progress say
-- `in_progress`, so that they reach it.
drop index contacts_member_in_progress_idx;
create unique index contacts_member_in_progress_idx on contacts (workspace_id, member_key) where in_progress;
