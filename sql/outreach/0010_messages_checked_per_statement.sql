-- A message's contact, campaign, account and reservation are checked once per statement
-- (messages_of_their_contact in R__outreach.sql) instead of by four foreign keys. PostgreSQL
-- checks a foreign key row by row, a query and a row lock each: four a message on the send path,
-- whose delivery writes a batch of messages in one statement. The statement's check locks each
-- contact once and lets it vouch for the rest: its campaign and its sender are the message's.
--
-- A message's campaign was only ever its contact's; that becomes a rule, checked here first for
-- the messages already stored (a mismatch stops the migration, naming the message).
do $$
declare
    stray record;
begin
    select m.id, m.campaign_id, c.id as contact_id, c.campaign_id as contact_campaign_id into stray
    from messages m join contacts c on c.id = m.contact_id
    where c.campaign_id <> m.campaign_id
    limit 1;
    if found then
        raise exception 'message % is in campaign %, but its contact % is in campaign %: correct it, then migrate again',
            stray.id, stray.campaign_id, stray.contact_id, stray.contact_campaign_id;
    end if;
end $$;

alter table messages drop constraint messages_contact_id_fkey;
alter table messages drop constraint messages_campaign_id_fkey;
alter table messages drop constraint messages_account_id_fkey;
alter table messages drop constraint messages_reservation_id_fkey;
