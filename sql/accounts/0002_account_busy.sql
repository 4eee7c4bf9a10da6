-- accounts 0002: a claim no longer waits for an account another session holds (a worker stopped
-- inside its claim transaction would stall every claim behind it); it refuses that account's
-- sends for a moment instead.
alter type send_refusal add value 'account_busy';
