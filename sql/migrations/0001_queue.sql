-- 0001_queue: the job queue. It knows jobs, leases and time, nothing of InMail.
--
-- Times: run_at is business time, read from clock_now() (real time moved forward by an
-- offset that tests and demos set, so simulated days pass in seconds). Leases, attempts and
-- history (created_at, attempted_at, finished_at) are real time: a worker's liveness is
-- never simulated.

-- The business clock: one row holding how far it is ahead of real time.
create table queue_clock (
    singleton boolean primary key default true check (singleton),
    offset_by interval not null default interval '0' check (offset_by >= interval '0')
);
insert into queue_clock default values;

-- Business "now": the transaction's start time plus the clock's offset.
create function clock_now() returns timestamptz
language sql stable parallel safe as
$$ select now() + offset_by from queue_clock $$;

-- Moves business time forward (never back) and returns the new business "now".
create function clock_advance(by_interval interval) returns timestamptz
language plpgsql as $$
begin
    if by_interval < interval '0' then
        raise exception 'the clock only moves forward (asked to move by %)', by_interval
            using errcode = '22023';
    end if;
    update queue_clock set offset_by = offset_by + by_interval;
    perform pg_notify('queue_jobs_available', 'clock');
    return clock_now();
end $$;

create type job_state as enum (
    'scheduled',   -- waiting for run_at (business time)
    'available',   -- may be claimed now
    'running',     -- claimed; lease_owner holds it until lease_expires_at
    'retryable',   -- failed; waiting for run_at before the next attempt
    'completed',   -- finished: success
    'discarded',   -- finished: failed max_attempts times (errors holds every failure)
    'cancelled'    -- finished: cancelled before it ran to completion
);

create table jobs (
    id               bigint generated always as identity primary key,
    kind             text not null check (kind ~ '^[a-z][a-z0-9_.-]{0,99}$'),
    args             jsonb not null default '{}',
    state            job_state not null default 'available',
    priority         smallint not null default 0 check (priority between -100 and 100),  -- lower first
    run_at           timestamptz not null default clock_now(),
    attempt          integer not null default 0 check (attempt >= 0),
    max_attempts     integer not null default 20 check (max_attempts between 1 and 1000),
    errors           jsonb not null default '[]' check (jsonb_typeof(errors) = 'array'),
    lease_owner      text,
    lease_expires_at timestamptz,
    unique_key       text,
    partition_key    text,
    created_at       timestamptz not null default clock_timestamp(),
    attempted_at     timestamptz,
    finished_at      timestamptz,
    constraint jobs_running_has_lease
        check ((state = 'running') = (lease_owner is not null and lease_expires_at is not null)),
    constraint jobs_finished_has_time
        check ((state in ('completed', 'discarded', 'cancelled')) = (finished_at is not null))
) with (fillfactor = 85);  -- room on each page so lease renewals stay HOT updates

-- The claim: "available jobs in priority, then FIFO order". Only available rows are in it, so
-- a million scheduled rows or a long history never slow the claim down.
create index jobs_claim_idx on jobs (priority, id) where state = 'available';

-- Promotion: "scheduled or retryable jobs whose run_at has come", scanned in run_at order.
create index jobs_due_idx on jobs (run_at) where state in ('scheduled', 'retryable');

-- Rescue and release: "running jobs" (a few hundred at most). lease_expires_at is left out on
-- purpose: renewing a lease then changes no indexed column, so the update stays HOT.
create index jobs_running_idx on jobs (lease_owner) where state = 'running';

-- At most one unfinished job per unique key; finished jobs free the key.
create unique index jobs_unique_key_idx on jobs (unique_key)
    where unique_key is not null and state in ('scheduled', 'available', 'running', 'retryable');

-- The pruner: "finished jobs older than the retention period", oldest first.
create index jobs_finished_idx on jobs (finished_at) where state in ('completed', 'discarded', 'cancelled');

-- The layer above asks per partition (e.g. "this sender account's waiting jobs").
create index jobs_partition_idx on jobs (partition_key, run_at)
    where partition_key is not null and state in ('scheduled', 'available', 'retryable');

-- Wakes idle workers: one notification per inserting statement (identical payloads within a
-- transaction are delivered once), only when something became available.
create function jobs_notify_available() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from inserted where state = 'available') then
        perform pg_notify('queue_jobs_available', '');
    end if;
    return null;
end $$;

create trigger jobs_notify_available
    after insert on jobs
    referencing new table as inserted
    for each statement execute function jobs_notify_available();
