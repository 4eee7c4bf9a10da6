-- outreach 0002: every free-text input has a bound, whatever wrote it (a 100 KB profile name
-- was stored once, and another failed with "index row requires 102424 bytes").
alter table contacts
    add constraint contacts_member_key_length check (length(member_key) <= 200),
    add constraint contacts_profile_url_length check (length(profile_url) <= 2048),
    add constraint contacts_names_length check (
        coalesce(length(first_name), 0) <= 200 and coalesce(length(last_name), 0) <= 200
        and coalesce(length(company), 0) <= 200 and coalesce(length(title), 0) <= 200),
    add constraint contacts_custom_fields_size check (pg_column_size(custom_fields) <= 16384);
alter table campaign_steps
    add constraint campaign_steps_subject_length check (length(subject) <= 1000),
    add constraint campaign_steps_body_length check (length(body) <= 10000);
alter table do_not_contact
    add constraint do_not_contact_reason_length check (length(reason) <= 500),
    add constraint do_not_contact_member_key_length check (length(member_key) <= 200);
