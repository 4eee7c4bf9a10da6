-- Every claimed batch updates its accounts' rows (the credit totals kept by triggers, a spaced
-- account's next_send_at). No indexed column changes, so when the row's page has room for the
-- new version it is a HOT update, which adds nothing to the primary key; with full pages (the
-- default fillfactor of 100, as 100,000 accounts created together leave them) nearly every one
-- was not, and the key every foreign-key check reads grew to four times its size (bench scale:
-- 20-27 buffers for one account's key check, 4 after a REINDEX). 30% of each page is kept for
-- it: the table is small (about 300 bytes an account). Pages written from now on keep the room;
-- existing ones get it when the table is rewritten (VACUUM FULL, pg_repack).
alter table sender_accounts set (fillfactor = 70);
