-- A message's member key was only ever its contact's (S4's one open InMail per member and account
-- goes by it); that becomes a rule (messages_of_their_contact in R__outreach.sql), checked here
-- first for the messages already stored: a mismatch stops the migration, naming the message.
do $$
declare
    stray record;
begin
    select m.id, m.member_key, c.id as contact_id, c.member_key as contact_member_key into stray
    from messages m join contacts c on c.id = m.contact_id
    where c.member_key <> m.member_key
    limit 1;
    if found then
        raise exception 'message % is to member %, but its contact % is member %: correct it, then migrate again',
            stray.id, stray.member_key, stray.contact_id, stray.contact_member_key;
    end if;
end $$;
