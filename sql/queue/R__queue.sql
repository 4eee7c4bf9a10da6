-- queue: the current definition of the queue's functions, views and triggers (re-applied
-- whenever this file changes). This is the queue's SQL interface: the layers above enqueue,
-- defer, wake and look up jobs through the queue_* functions below, and no SQL outside
-- sql/queue (and Sources/Queue) names the jobs table.

-- Wakes idle workers (they LISTEN on queue_jobs_available). Within a transaction, identical
-- payloads are delivered once, at commit.
create or replace function queue_notify(p_reason text) returns void
language sql as $$ select pg_notify('queue_jobs_available', p_reason) $$;

-- Moves business time forward (never back) and returns the new business "now".
create or replace function clock_advance(by_interval interval) returns timestamptz
language plpgsql as $$
begin
    if by_interval < interval '0' then
        raise exception 'the clock only moves forward (asked to move by %)', by_interval
            using errcode = '22023';
    end if;
    update queue_clock set offset_by = offset_by + by_interval;
    perform queue_notify('clock');
    return clock_now();
end $$;

-- Makes the session's cached plans again on every p_every-th call (counted in the session setting
-- p_counter): a plan kept for a session is made for the tables as they were, and one made while a
-- table was small reads it whole, as small tables are read, however large it grows. Plans are
-- only dropped (DISCARD PLANS): each is made again when next used, foreign-key checks included.
create or replace function discard_plans_every(p_counter text, p_every integer) returns void
language plpgsql as $$
declare
    calls integer := coalesce(nullif(current_setting(p_counter, true), ''), '0')::integer + 1;
begin
    perform set_config(p_counter, (calls % p_every)::text, false);
    if calls % p_every = 0 then
        discard plans;
    end if;
end $$;

-- One notification per inserting statement, only when something became available. A caller
-- committing many small transactions at once (inmailq serve) sets `queue.notify` to 'later'
-- in its transaction and calls queue_notify after the commit instead: PostgreSQL serializes
-- the commits of notifying transactions, WAL flush included, so they could not share a flush.
create or replace function jobs_notify_available() returns trigger
language plpgsql as $$
begin
    if current_setting('queue.notify', true) is distinct from 'later'
       and exists (select 1 from inserted where state = 'available') then
        perform queue_notify('');
    end if;
    return null;
end $$;

create or replace trigger jobs_notify_available
    after insert on jobs
    referencing new table as inserted
    for each statement execute function jobs_notify_available();

-- Every job, unfinished or finished, for inspection.
create or replace view all_jobs as
    select id, kind, args, state, priority, run_at, attempt, max_attempts, errors, lease_owner, lease_expires_at,
           unique_key, partition_key, created_at, attempted_at, null::timestamptz as finished_at
    from jobs
    union all
    select id, kind, args, state, priority, run_at, attempt, max_attempts, errors, null, null,
           unique_key, partition_key, created_at, attempted_at, finished_at
    from job_history;

-- Enqueues jobs, one per array position. A shorter array (or '{}') gives nulls, which mean the
-- defaults: args {}, run now, priority 0, 20 attempts, no unique or partition key.
-- Returns, in input order, each new job's id, or null where an unfinished job already holds
-- that unique key (that enqueue did nothing). The one way jobs are created.
create or replace function queue_enqueue(
    p_kinds text[], p_args jsonb[], p_run_at timestamptz[], p_priorities smallint[], p_max_attempts integer[],
    p_unique_keys text[], p_partition_keys text[]
) returns table (job_id bigint)
language plpgsql as $$
begin
    -- plpgsql rather than sql: its plan is kept for the session, where a sql function's body
    -- would be planned again on every call (what small batches, such as webhooks, pay for).
    return query
    -- Ids are drawn first so each input row can be matched to its insert (or to nothing, when
    -- its unique key was taken); a skipped id is a harmless gap.
    with input as (
        select t.*, coalesce(t.requested_run_at, clock_now()) as effective_run_at,
               nextval(pg_get_serial_sequence('jobs', 'id')) as new_id
        from unnest(p_kinds, p_args, p_priorities, p_run_at, p_max_attempts, p_unique_keys, p_partition_keys)
             with ordinality
             as t(kind, args, priority, requested_run_at, max_attempts, unique_key, partition_key, position)
    ), inserted as (
        insert into jobs (id, kind, args, priority, run_at, max_attempts, unique_key, partition_key, state)
        overriding system value
        select new_id, kind, coalesce(args, '{}'), coalesce(priority, 0), effective_run_at, coalesce(max_attempts, 20),
               unique_key, partition_key,
               case when effective_run_at > clock_now() then 'scheduled' else 'available' end::job_state
        from input
        order by position
        on conflict (unique_key) where unique_key is not null do nothing
        returning id
    )
    select inserted.id
    from input left join inserted on inserted.id = input.new_id
    order by input.position;
end $$;

-- Moves a partition's available jobs of one kind whose args contain p_args_filter to
-- scheduled at p_until: they wait there instead of being claimed again and again. Rows
-- another session holds are skipped (a claim that has them meets the same refusal itself,
-- and waiting for them could deadlock with it). Returns how many it moved.
create or replace function queue_defer(p_partition text, p_kind text, p_args_filter jsonb, p_until timestamptz)
returns integer
language sql as $$
    with moved as (
        update jobs set state = 'scheduled', run_at = p_until
        where id in (
            select id from jobs
            where partition_key = p_partition and state = 'available' and kind = p_kind and args @> p_args_filter
            for update skip locked
        )
        returning 1
    )
    select count(*)::integer from moved
$$;

-- Makes a partition's scheduled jobs whose args contain p_args_filter and whose run_at falls
-- within p_within from now available at once, and wakes idle workers (p_reason is the
-- notification's payload). Jobs scheduled further out (a follow-up due in three days) keep
-- their time. Returns how many it woke.
create or replace function queue_wake(p_partition text, p_args_filter jsonb, p_within interval, p_reason text)
returns integer
language plpgsql as $$
declare
    woken integer;
begin
    update jobs set state = 'available', run_at = clock_now()
    where partition_key = p_partition and state = 'scheduled' and run_at <= clock_now() + p_within
      and args @> p_args_filter;
    get diagnostics woken = row_count;
    if woken > 0 then
        perform queue_notify(p_reason);
    end if;
    return woken;
end $$;

-- The unfinished job holding a unique key, if any (inlined into the caller's query, so a
-- lateral join per row uses jobs_unique_key_idx).
create or replace function queue_job(p_unique_key text)
returns table (id bigint, kind text, args jsonb, state job_state, run_at timestamptz)
language sql stable as $$
    select id, kind, args, state, run_at from jobs where unique_key = p_unique_key
$$;

-- For a dashboard of one tenant's work, two views of the jobs of some partitions. Each reads
-- the partitions as a hashed semi-join (`= any(p_partitions)` would compare each job with every
-- partition), and job_history by its finished_at BRIN index.
drop function if exists queue_jobs_of(text[], timestamptz);  -- every job, by the caller counted

-- How many jobs of each kind and state: every unfinished one and those finished since
-- p_finished_since; with the earliest run_at of each (for an available job: how long it waited).
create or replace function queue_job_counts_of(p_partitions text[], p_finished_since timestamptz)
returns table (kind text, state job_state, jobs bigint, earliest_run_at timestamptz)
language sql stable as $$
    select kind, state, count(*), min(run_at) from all_jobs
    where partition_key in (select unnest(p_partitions)) and (finished_at is null or finished_at >= p_finished_since)
    group by kind, state
$$;

-- The jobs that have changed since p_since: unfinished ones attempted since (a failed attempt
-- leaves its error), and those finished since.
create or replace function queue_recent_jobs_of(p_partitions text[], p_since timestamptz)
returns setof all_jobs
language sql stable as $$
    select * from all_jobs
    where partition_key in (select unnest(p_partitions))
      and (attempted_at >= p_since and finished_at is null or finished_at >= p_since)
$$;

-- One job by id, unfinished or finished (job_history found by its id BRIN index).
create or replace function queue_job_with_id(p_id bigint)
returns setof all_jobs
language sql stable as $$
    select * from all_jobs where id = p_id
$$;

-- A partition's unfinished jobs whose args contain p_args_filter (inlined like queue_job).
create or replace function queue_jobs_in(p_partition text, p_args_filter jsonb)
returns table (id bigint, kind text, args jsonb, state job_state, run_at timestamptz)
language sql stable as $$
    select id, kind, args, state, run_at from jobs
    where partition_key = p_partition and args @> p_args_filter
$$;

-- True when job p_job is still running under the lease p_token (drawn by the claim that leased
-- it); it then stays so until the caller's transaction ends: the row is locked FOR SHARE, so the
-- rescuer skips it and a finish waits. A run whose lease expired and was rescued or claimed
-- again gets false: whatever it learnt must not change shared state any more.
create or replace function queue_holds_lease(p_job bigint, p_token bigint) returns boolean
language plpgsql as $$
begin
    perform 1 from jobs where id = p_job and lease_token = p_token and state = 'running' for share;
    return found;
end $$;

-- Raises (SQLSTATE 55000, naming a job) unless every job holds its lease (queue_holds_lease):
-- for a statement that must not run for a stale job. The jobs are share-locked in id order.
create or replace function queue_require_leases(p_jobs bigint[], p_tokens bigint[]) returns void
language plpgsql as $$
declare
    stale record;
begin
    select l.id, l.token into stale
    from (select * from unnest(p_jobs, p_tokens) as l(id, token) order by l.id) l
    where not queue_holds_lease(l.id, l.token)
    limit 1;
    if found then
        raise exception 'job % no longer holds lease % (it expired and the job was rescued); this run changes nothing more',
            stale.id, stale.token using errcode = '55000';
    end if;
end $$;

-- Completes jobs in the caller's transaction, each still running under its lease (p_tokens):
-- for a handler whose own writes and its jobs' completion must commit together or not at all
-- (the worker then writes no outcome for them). Raises (SQLSTATE 55000, naming a job), changing
-- nothing, when one of them no longer holds its lease. The rows are deleted where they still
-- hold their leases (no lock taken first: a row lock before the delete was one more WAL record
-- per job) and moved to job_history as the worker's finish moves a completed job
-- (JobQueue.archive is the other writer of job_history: keep the two alike).
create or replace function queue_complete(p_jobs bigint[], p_tokens bigint[]) returns void
language plpgsql as $$
declare
    completed bigint[];
    stale record;
begin
    -- Planned on each call, for the jobs table as it is now: the outcome writer's statement,
    -- once prepared for the session, got a generic plan blind to the arrays' sizes that scanned
    -- jobs whole ($1 p_jobs, $2 p_tokens).
    execute $q$
    with completed as (
        delete from jobs j using unnest($1, $2) as l(id, token)
        where l.id = j.id and j.id = any($1) and j.lease_token = l.token and j.state = 'running'
        returning j.*
    ),
    archived as (
        insert into job_history (id, kind, args, state, priority, run_at, attempt, max_attempts, errors,
                                 unique_key, partition_key, created_at, attempted_at, finished_at)
        select id, kind, args, 'completed', priority, run_at, attempt, max_attempts, errors,
               unique_key, partition_key, created_at, attempted_at, clock_timestamp()
        from completed
        returning id
    )
    select coalesce(array_agg(id), '{}') from archived
    $q$ into completed using p_jobs, p_tokens;
    if cardinality(completed) < cardinality(p_jobs) then
        select l.id, l.token into stale
        from unnest(p_jobs, p_tokens) as l(id, token)
        where not l.id = any(completed)
        order by l.id
        limit 1;
        raise exception 'job % no longer holds lease % (it expired and the job was rescued); this run changes nothing more',
            stale.id, stale.token using errcode = '55000';
    end if;
end $$;

-- queue_require_leases for one job.
create or replace function queue_require_lease(p_job bigint, p_token bigint) returns void
language sql as $$ select queue_require_leases(array[p_job], array[p_token]) $$;

-- Elects p_worker maintenance leader, or renews its term, for p_ttl (real time). Returns true
-- when p_worker leads until the new expiry: it was the leader, or the leader's term had run out
-- (a dead or stopped leader); false while another worker's term runs.
create or replace function queue_elect(p_worker text, p_ttl interval) returns boolean
language sql as $$
    with elected as (
        insert into queue_leader as l (worker_id, elected_at, expires_at)
        values (p_worker, clock_timestamp(), clock_timestamp() + p_ttl)
        on conflict (singleton) do update
        set worker_id = excluded.worker_id,
            elected_at = case when l.worker_id = excluded.worker_id then l.elected_at else excluded.elected_at end,
            expires_at = excluded.expires_at
        where l.worker_id = excluded.worker_id or l.expires_at < clock_timestamp()
        returning 1
    )
    select exists (select 1 from elected)
$$;

-- Gives up leadership (a worker shutting down), so another worker takes over at once.
create or replace function queue_resign(p_worker text) returns void
language sql as $$ delete from queue_leader where worker_id = p_worker $$;

-- The queue's depth for metrics: unfinished jobs per kind and state; for each kind, how long
-- its oldest available job has been due (business time) and how long its oldest running job
-- has run (real time: a job far past its lease is stuck); seconds, null when there is none.
-- One scan of the unfinished jobs; the elected worker alone runs it, every few seconds.
drop function if exists queue_depth();
create function queue_depth()
returns table (kind text, state job_state, jobs bigint, oldest_available_s float8, oldest_running_s float8)
language sql stable as $$
    -- clock_now() outside the aggregates: read once per group (a join with it, grouped by it,
    -- read the clock's table once per job: 1.4 of 2.6 s with a million jobs scheduled).
    select j.kind, j.state, count(*),
           extract(epoch from clock_now() - min(j.run_at) filter (where j.state = 'available'))::float8,
           extract(epoch from clock_timestamp() - min(j.attempted_at) filter (where j.state = 'running'))::float8
    from jobs j
    group by j.kind, j.state
$$;
