-- A contact's workspace is its campaign's, proved by one composite foreign key. Before, a row
-- trigger copied it from the campaign and two foreign keys checked the campaign and the workspace
-- apart: three look-ups per row, most of the time of a large import. The workspace needs no key
-- of its own: the campaign's row references it.
alter table campaigns add constraint campaigns_id_workspace_key unique (id, workspace_id);

alter table contacts
    drop constraint contacts_campaign_id_fkey,
    drop constraint contacts_workspace_id_fkey,
    add constraint contacts_campaign_workspace_fkey
        foreign key (campaign_id, workspace_id) references campaigns (id, workspace_id);

-- (made by R__outreach.sql, which runs after the versioned files: absent from a new database)
drop trigger if exists contacts_take_campaign_workspace on contacts;
drop function if exists contacts_take_campaign_workspace();
