-- As for messages (outreach/0007): a simulated delivery is a request row, then its receipt. The
-- receipt needs no unique index of its own (it is made from the delivery key, the primary key),
-- and with room on the page the update is a HOT update, adding nothing to the primary key.
alter table sandbox_messages drop constraint sandbox_messages_receipt_key;
alter table sandbox_messages set (fillfactor = 80);
