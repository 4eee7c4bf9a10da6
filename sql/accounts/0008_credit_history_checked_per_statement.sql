-- The ledger's and the reservations' references to accounts, grants and reservations are checked
-- once per statement (R__accounts.sql) instead of by five foreign keys. PostgreSQL checks a
-- foreign key row by row, a query and a row lock each: 5.7 checks a send, in the claim's batch
-- statement and in the delivery's. Without any check the send path ran 11% faster (four
-- alternating pairs of `bench pipeline`); with the statements' checks, 3-6% (nine pairs), and
-- 200 bytes of WAL a send fewer. The rows they name are never deleted and never change id
-- (refused by triggers), so nothing needs locking.
alter table credit_ledger
    drop constraint credit_ledger_account_id_fkey,
    drop constraint credit_ledger_reservation_id_fkey,
    drop constraint credit_ledger_grant_id_fkey;
alter table reservations
    drop constraint reservations_account_id_fkey,
    drop constraint reservations_grant_id_fkey;
