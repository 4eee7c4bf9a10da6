-- queue 0001: the job queue's tables. It knows jobs, leases and time, nothing of InMail.
-- Its functions and views (the queue's SQL interface) are in R__queue.sql.
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

-- Business "now": the transaction's start time plus the clock's offset. Defined here, not in
-- R__queue.sql, because column defaults of every owner use it.
create function clock_now() returns timestamptz
language sql stable parallel safe as
$$ select now() + offset_by from queue_clock $$;

create type job_state as enum (
    'scheduled',   -- waiting for run_at (business time)
    'available',   -- may be claimed now
    'running',     -- claimed; lease_owner holds it until lease_expires_at
    'retryable',   -- failed; waiting for run_at before the next attempt
    'completed',   -- finished: success
    'discarded',   -- finished: failed max_attempts times (errors holds every failure)
    'cancelled'    -- finished: cancelled before it ran to completion
);

-- Unfinished jobs only: the hot table stays small however long the history grows. A job
-- leaves it, in the statement that finishes it, for job_history.
create table jobs (
    id               bigint generated always as identity primary key,
    kind             text not null check (kind ~ '^[a-z][a-z0-9_.-]{0,99}$'),
    args             jsonb not null default '{}',
    state            job_state not null default 'available'
                     check (state in ('scheduled', 'available', 'running', 'retryable')),
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
    constraint jobs_running_has_lease
        check ((state = 'running') = (lease_owner is not null and lease_expires_at is not null))
) with (fillfactor = 85);  -- room on each page so lease renewals stay HOT updates

-- The claim: "available jobs in priority, then FIFO order". Only available rows are in it, so
-- a million scheduled rows never slow the claim down.
create index jobs_claim_idx on jobs (priority, id) where state = 'available';

-- Promotion: "scheduled or retryable jobs whose run_at has come", scanned in run_at order.
create index jobs_due_idx on jobs (run_at) where state in ('scheduled', 'retryable');

-- Rescue: "running jobs" (a few hundred at most), read whole. Keyed by id on purpose:
-- lease_expires_at here would make every lease renewal a non-HOT update, and lease_owner here
-- lets the planner, misled by default selectivities on a fresh table, drive the batched finish
-- from "this owner's running jobs" in a nested loop that is quadratic in the batch size.
create index jobs_running_idx on jobs (id) where state = 'running';

-- At most one unfinished job per unique key; a finished job (moved to job_history) frees it.
-- Also serves queue_job(unique_key), the layer above's look-up of a job by its key.
create unique index jobs_unique_key_idx on jobs (unique_key) where unique_key is not null;

-- queue_defer, queue_wake and queue_jobs_in: "this partition's waiting jobs" (e.g. the jobs
-- of one sender account), in run_at order.
create index jobs_partition_idx on jobs (partition_key, run_at)
    where partition_key is not null and state in ('scheduled', 'available', 'retryable');

-- Finished jobs, append-only until pruned. Kept off the hot path: no claim ever reads it.
create table job_history (
    id            bigint not null,
    kind          text not null,
    args          jsonb not null,
    state         job_state not null check (state in ('completed', 'discarded', 'cancelled')),
    priority      smallint not null,
    run_at        timestamptz not null,
    attempt       integer not null,
    max_attempts  integer not null,
    errors        jsonb not null,
    unique_key    text,
    partition_key text,
    created_at    timestamptz not null,
    attempted_at  timestamptz,
    finished_at   timestamptz not null
);

-- Looking a finished job up by id (operators, reports). Ids arrive in nearly increasing order,
-- so a BRIN index finds them for a fraction of a B-tree's cost on every finish.
create index job_history_id_brin on job_history using brin (id);

-- The pruner: "finished before the retention cut-off". Rows arrive in finished_at order, so a
-- BRIN index is tiny and costs next to nothing per insert.
create index job_history_finished_brin on job_history using brin (finished_at);
