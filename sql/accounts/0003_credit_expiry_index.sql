-- accounts 0003: expiries are booked at their moment by the elected worker
-- (expire_due_credits), which looks for "grants with credit left whose time is up" across all
-- accounts; this index serves it without reading every grant.
create index credit_grants_expiry_idx on credit_grants (expires_at) where remaining > 0;
