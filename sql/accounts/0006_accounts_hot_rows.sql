-- The rows a claim updates: the account's (its credit totals, kept by triggers; a spaced
-- account's next_send_at), its day's usage and the grant it spends from. However large an
-- agency, a day's sends update the same few rows over and over.

-- No indexed column of an account changes, so when the row's page has room for the new version
-- the update is a HOT update, which adds nothing to the primary key that every foreign-key check
-- reads; with full pages (the default fillfactor of 100, as accounts created together leave
-- them) few were (6% of bench scale's 434,000 account updates; 43% with this). 30% of each page
-- is kept for it: the table is small (about 300 bytes an account). Pages written from now on
-- keep the room; existing ones get it when the table is rewritten (VACUUM FULL, pg_repack).
alter table sender_accounts set (fillfactor = 70);

-- Each update that is not HOT leaves an index entry behind until VACUUM removes it, and every
-- look-up of that key reads them all. Autovacuum's default waits for dead rows to reach 20% of a
-- table, so the dead entries tolerated on the hot keys grew with the agency: on bench scale's
-- 100,000 accounts and 3 million days of usage, one account's key check read 45-58 buffers and a
-- claim's usage rows 866; after a VACUUM 5-6 and 369. A fixed number of dead rows (the tables'
-- old rows are all-visible, so a vacuum skips them) keeps that flat.
alter table sender_accounts set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000);
alter table daily_usage set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
alter table credit_grants set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
