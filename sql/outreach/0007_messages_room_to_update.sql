-- A message is written 'sending' and updated to 'sent' a few milliseconds later. That update
-- changes no indexed column, so when the row's page has room for the new version it is a HOT
-- update, which adds no entry to the table's seven indexes; with full pages (the default
-- fillfactor of 100) nearly every one was not. 20% of each page is kept for it.
alter table messages set (fillfactor = 80);
