-- queue 0003: leadership with a time to live. The maintenance leader was whoever held a session
-- advisory lock, which a stopped (not dead) leader keeps for as long as its connection lives:
-- nobody promoted or rescued meanwhile. Now the leader renews a row before each round of
-- maintenance; once the row has expired, any worker takes it over (queue_elect).
create table queue_leader (
    singleton  boolean primary key default true check (singleton),
    worker_id  text not null,
    elected_at timestamptz not null,   -- real time, like leases
    expires_at timestamptz not null
);
