-- accounts 0004: delivery through a LinkedIn messaging gateway. A sender account is bound to
-- its gateway account (the gateway's account id), each plan names the LinkedIn product its
-- InMails start chats with, a status keeps its reason (a disconnected account says so), and
-- credits are reconciled with LinkedIn's own count by 'reconcile' ledger entries and grants.

alter table plans add column gateway_api text not null default 'classic'
    check (gateway_api in ('classic', 'sales_navigator', 'recruiter'));
update plans set gateway_api = 'sales_navigator' where code like 'sales_navigator%';
update plans set gateway_api = 'recruiter' where code like 'recruiter%';

alter table sender_accounts
    add column gateway_account_id text unique check (gateway_account_id ~ '^[A-Za-z0-9_.:=-]{1,200}$'),
    add column status_reason text check (length(status_reason) <= 1000);

-- A gateway worker refuses to send from an account that is not bound to a gateway account.
alter type send_refusal add value 'account_not_connected';

alter table credit_ledger drop constraint credit_ledger_entry_check;
alter table credit_ledger add constraint credit_ledger_entry_check
    check (entry in ('grant', 'reserve', 'spend', 'release', 'refund', 'expire', 'purchase', 'cancel', 'reconcile'));
alter table credit_grants drop constraint credit_grants_source_check;
alter table credit_grants add constraint credit_grants_source_check
    check (source in ('renewal', 'purchase', 'refund', 'reconcile'));

-- Signatures that changed; R__accounts.sql defines them anew.
drop function if exists reserve_sends(bigint[], text[], send_channel[], boolean[]);
drop function if exists reserve_send(bigint, text, send_channel, boolean);
drop function if exists set_account_status(bigint, text);
