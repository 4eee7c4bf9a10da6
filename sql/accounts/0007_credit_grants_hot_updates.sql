-- accounts 0007: a claim takes each credit InMail's credit from a grant (remaining - 1), some 40
-- grant updates a batch of 64. remaining was in the predicate of both grant indexes
-- (remaining > 0), so none of those updates could be HOT: each wrote three index entries and left
-- three dead ones. Now no index reads remaining. The account's index takes all its grants (an
-- account has a few; the unexpired ones are found by expires_at), and the expiry sweep's index
-- reads `spendable`, stored, which changes only when a grant's last credit goes or comes back.
-- 30% of each page is kept for the new versions of its rows.
alter table credit_grants set (fillfactor = 70);
alter table credit_grants add column spendable boolean generated always as (remaining > 0) stored;  -- rewrites the table

drop index credit_grants_spendable_idx;
create index credit_grants_account_idx on credit_grants (account_id, expires_at);

drop index credit_grants_expiry_idx;
create index credit_grants_expiry_idx on credit_grants (expires_at) where spendable;
