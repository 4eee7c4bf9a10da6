-- The People view pages a campaign's contacts in id order (`contact_id > after order by id
-- limit 50`, also with a status or search filter). Without this index a page after the first,
-- or a filter matching few contacts, walked the primary key through every campaign's contacts.
create index contacts_campaign_order_idx on contacts (campaign_id, id);
