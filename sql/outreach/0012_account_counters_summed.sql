-- An account's message numbers are summed from its rows per campaign and account, instead of
-- being counted a third time under a key of their own (campaign null). Each delivery statement
-- wrote one such row per account it sent from: with many accounts, one counter row and two index
-- entries per send, for a sum the reader can make over the account's few campaigns.
-- (The rows deleted here are that sum: every change was counted under all three keys.)
delete from message_counts where campaign_id is null;

alter table message_counts drop constraint message_counts_check;  -- campaign or account
alter table message_counts alter column campaign_id set not null;

-- "This account's rows", now in every campaign: what sender_report and message_stats sum.
drop index message_counts_account_idx;
create index message_counts_account_idx on message_counts (account_id);
