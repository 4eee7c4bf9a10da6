-- A contact's campaign, and its workspace being the campaign's, are checked once per statement
-- (contacts_in_their_campaign in R__outreach.sql) instead of by the composite foreign key of
-- 0004_contacts_campaign_workspace.sql. PostgreSQL checks a foreign key row by row, a query and a
-- row lock for each: for an import, 100,000 times the same campaign, a fifth of
-- `bench import --rows 100000` (2.94 s with the statement's check against 3.56 s with the key,
-- the means of five alternating runs). The statement's check reads its distinct campaigns once.
alter table contacts drop constraint contacts_campaign_workspace_fkey;
