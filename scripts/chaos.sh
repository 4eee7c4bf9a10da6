#!/usr/bin/env bash
# `make chaos`: the chaos run. Worker processes deliver real send jobs over HTTP to the gateway
# double (which drops some answers after sending, the request read) and run no-op and sleeping
# jobs, while this script SIGKILLs a worker every few seconds, restarts PostgreSQL in immediate
# mode (a crash), lets one worker stop itself inside its claim transaction, SIGSTOPs the elected
# leader past its lease, and, where the machine allows network namespaces, cuts the link of a
# worker that runs in one. It prints one line of figures and exits 1 on any lost job, duplicate
# delivery (counted at the double), a delivery not recorded as sent, daily-limit or ledger violation, a stall (no job finished
# for more than two lease periods while work was available) or a leader not replaced in time.
#
# Its own throwaway cluster (INMAILQ_HOME in a temp dir), removed at the end (CHAOS_KEEP=1 keeps
# it). Sizes: CHAOS_CONTACTS (6000 sends), CHAOS_NOOPS (5000), CHAOS_WORKERS (4), CHAOS_LEASE
# (10 s), CHAOS_TIMEOUT (900 s).
set -euo pipefail
bin=$(realpath "${1:-.build/debug/inmailq}")
cd "$(dirname "$0")/.."
contacts=${CHAOS_CONTACTS:-6000}
noops=${CHAOS_NOOPS:-5000}
workers=${CHAOS_WORKERS:-4}
lease=${CHAOS_LEASE:-10}
timeout=${CHAOS_TIMEOUT:-900}
accounts=20
daily_limit=200   # S6 per account: the sends need two business days, so the limit is reached
scratch=$(mktemp -d "${TMPDIR:-/tmp}/inmailq-chaos.XXXXXX")
chmod 755 "$scratch"   # the server runs as the postgres user when we are root
export INMAILQ_HOME=$scratch/home
unset DATABASE_URL PGHOST PGDATABASE PGUSER PGPORT PGSERVICE
log() { printf 'chaos: %s\n' "$*" >&2; }

declare -a pids=()      # the worker processes by slot
declare -A stopped=()   # pids stopped on purpose (not killed by the rotation)
double_pid=
netns=
cleanup() {
  for pid in "${pids[@]}" ${netns_pid:-}; do kill -CONT "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; done
  [ -n "$double_pid" ] && kill "$double_pid" 2>/dev/null || true
  [ -n "$netns" ] && { ip netns del "$netns" 2>/dev/null || true; ip link del "vh$$" 2>/dev/null || true; }
  "$bin" db stop >/dev/null 2>&1 || true
  if [ "${CHAOS_KEEP:-}" = 1 ]; then log "kept $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT

log "a private cluster in $scratch"
"$bin" db start >/dev/null
base=$("$bin" db url)
psql "$base" -qX -c 'create database inmailq_chaos'
url=${base/\/inmailq\?//inmailq_chaos?}
q() { psql "$url" -qXAt -v ON_ERROR_STOP=1 "$@"; }
"$bin" migrate --database-url "$url" --log-level warning
port=$(cat "$INMAILQ_HOME/port")
pgdata=$INMAILQ_HOME/pgdata

# A worker host in its own network namespace, reaching PostgreSQL and the double over a veth
# link that can be cut. Skipped (and said so) where namespaces are not allowed.
if ip netns add "iqchaos$$" 2>/dev/null; then
  netns=iqchaos$$
  ip link add "vh$$" type veth peer name "vn$$"
  ip link set "vn$$" netns "$netns"
  ip addr add 10.77.0.1/30 dev "vh$$"
  ip link set "vh$$" up
  ip netns exec "$netns" ip addr add 10.77.0.2/30 dev "vn$$"
  ip netns exec "$netns" ip link set "vn$$" up
  ip netns exec "$netns" ip link set lo up
  q -c "alter system set listen_addresses = '127.0.0.1,10.77.0.1'"
  echo "host all all 10.77.0.0/30 scram-sha-256" >>"$pgdata/pg_hba.conf"
  "$bin" db stop >/dev/null && "$bin" db start >/dev/null
  log "network namespace $netns: a fifth worker reaches the server at 10.77.0.1"
else
  log "network namespaces are not allowed here: the link cut is skipped"
fi

log "$accounts sender accounts (limit $daily_limit InMails a day), $contacts contacts, $noops no-op and sleeping jobs"
q <<SQL
insert into plans (code, name, can_send_inmail, monthly_allotment, credit_cap, can_purchase)
values ('chaos', 'Chaos plan', true, 400, 400, false);
select admin_create_workspace(admin_create_agency('Chaos agency'), 'Chaos client') \gset
insert into sender_accounts (workspace_id, display_name, plan_code, billing_anchor, working_days,
                             working_start, working_end, daily_inmail_limit, min_spacing, max_spacing)
select :admin_create_workspace, 'Chaos sender ' || n, 'chaos', (clock_now() at time zone 'UTC')::date, '{1,2,3,4,5,6,7}',
       '00:00', '24:00', $daily_limit, '0', '0'
from generate_series(1, $accounts) as n;
select count(renew_credits(id, (clock_now() at time zone 'UTC')::date)) from sender_accounts \gset
select count(connect_gateway_account(id, 'chaos-' || id, interval '0')) from sender_accounts \gset
select create_campaign(:admin_create_workspace, 'Chaos campaign') as campaign \gset
insert into campaign_steps (campaign_id, position, subject, body)
values (:campaign, 0, '{{first_name|Hello}}, a question', 'Hi {{first_name|there}}, open to a short call?');
insert into campaign_senders (campaign_id, account_id) select :campaign, id from sender_accounts;
insert into contacts (campaign_id, workspace_id, member_key, profile_url, first_name)
select :campaign, (select workspace_id from campaigns where id = :campaign), 'in:chaos-' || n, 'https://www.linkedin.com/in/chaos-' || n, 'Member ' || n
from generate_series(1, $contacts) as n;
SQL
campaign=$(q -c "select id from campaigns")
"$bin" campaigns activate "$campaign" --database-url "$url" --log-level warning >/dev/null
"$bin" enqueue diag.noop --count $((noops * 3 / 5)) --database-url "$url" --log-level warning >/dev/null
"$bin" enqueue diag.noop --count $((noops / 5)) --delay 20 --database-url "$url" --log-level warning >/dev/null  # due later: the leader promotes them
"$bin" enqueue diag.sleep --args '{"ms": 400}' --count $((noops - noops * 4 / 5)) --database-url "$url" --log-level warning >/dev/null
expected=$(q -c "select count(*) from jobs")

# The gateway double: as many credits per account as the ledger, 3% of answers dropped after
# the message was sent, 2% server errors.
export INMAILQ_GATEWAY_API_KEY=chaos-$$-$RANDOM$RANDOM
listen=127.0.0.1:0; [ -n "$netns" ] && listen=0.0.0.0:0
"$bin" gateway-double --listen "$listen" --credits 400 >"$scratch/double.log" 2>&1 &
double_pid=$!
for _ in $(seq 1 100); do
  gw=$(sed -n 's/^gateway double listening on //p' "$scratch/double.log"); [ -n "$gw" ] && break; sleep 0.1
done
[ -n "$gw" ] || { log "the gateway double did not start: $(cat "$scratch/double.log")"; exit 1; }
gw=${gw/0.0.0.0/127.0.0.1}
export INMAILQ_GATEWAY_URL=$gw
curl -fsS -X PUT "$gw/_double/faults" -d '{"rates": {"drop_after_send": 0.03, "server_error": 0.02}}' >/dev/null

worker_args=(worker --courier gateway --gateway-rps 5000 --lease "$lease" --concurrency 8 --log-level warning --log-format json)
start_worker() {  # slot [environment...]
  local slot=$1; shift
  env "$@" "$bin" "${worker_args[@]}" --database-url "$url" 2>>"$scratch/worker-$slot.log" &
  pids[$slot]=$!
}
for slot in $(seq 0 $((workers - 1))); do
  if [ "$slot" = 0 ]; then start_worker "$slot" INMAILQ_FAULT_STOP_IN_CLAIM=1; else start_worker "$slot"; fi
done
stop_in_claim_pid=${pids[0]}
if [ -n "$netns" ]; then
  password=$(cat "$INMAILQ_HOME/password")
  ip netns exec "$netns" env INMAILQ_GATEWAY_URL="${gw/127.0.0.1/10.77.0.1}" \
    "$bin" "${worker_args[@]}" --database-url "host=10.77.0.1 port=$port dbname=inmailq_chaos user=inmailq password=$password" \
    2>>"$scratch/worker-netns.log" &
  netns_pid=$!
fi

finished() { q -c "select count(*) from all_jobs where state in ('completed', 'discarded', 'cancelled')" 2>/dev/null || echo -1; }
leader() { q -c "select split_part(worker_id, ':', -1) from queue_leader where expires_at > clock_timestamp()" 2>/dev/null || true; }
is_stopped() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }

kills=0 exits=0 pg_restarts=0 leader_stops=0 takeover_s=-1 stopped_in_claim=0 clock_jumps=0 cut=skipped
last_done=0 last_progress=$SECONDS max_stall=0 leader_pid= leader_stopped_at= cut_at=
start=$SECONDS
while :; do
  sleep 1
  t=$((SECONDS - start))
  done_now=$(finished)
  if [ "$done_now" -gt "$last_done" ]; then last_done=$done_now; last_progress=$SECONDS; fi
  waiting=$(q -c "select count(*) from jobs where state = 'available' or (state in ('scheduled', 'retryable') and run_at <= clock_now())" 2>/dev/null || echo 1)
  if [ "$waiting" -gt 0 ] && [ $((SECONDS - last_progress)) -gt "$max_stall" ]; then max_stall=$((SECONDS - last_progress)); fi
  [ "$waiting" = 0 ] && last_progress=$SECONDS   # nothing to do is not a stall
  unfinished=$(q -c "select count(*) from jobs" 2>/dev/null || echo 1)
  [ $((t % 10)) = 0 ] && log "t=${t}s finished $done_now of $expected; waiting $waiting; longest stall ${max_stall}s"
  [ "$unfinished" = 0 ] && [ "$done_now" -ge "$expected" ] && break
  [ "$t" -gt "$timeout" ] && { log "not done after ${timeout}s"; break; }

  # A worker that ended by itself (one started while the server was down cannot connect) is
  # started again; many such ends mean something is wrong.
  for slot in "${!pids[@]}"; do
    if ! kill -0 "${pids[$slot]}" 2>/dev/null; then
      wait "${pids[$slot]}" 2>/dev/null || true; exits=$((exits + 1)); start_worker "$slot"
    fi
  done
  [ "$exits" -gt 50 ] && { log "workers keep exiting: $(tail -n 2 "$scratch"/worker-*.log | tail -n 1)"; break; }
  # The worker that stopped itself inside its claim: seen stopped, woken after 45 s (its session
  # was ended by the server meanwhile, its locks released, its jobs rescued).
  if [ "$stopped_in_claim" = 0 ] && is_stopped "$stop_in_claim_pid"; then
    stopped_in_claim=1; stopped[$stop_in_claim_pid]=$t; log "t=${t}s worker $stop_in_claim_pid stopped inside its claim"
  fi
  if [ -n "${stopped[$stop_in_claim_pid]:-}" ] && [ $((t - stopped[$stop_in_claim_pid])) -ge 45 ]; then
    kill -CONT "$stop_in_claim_pid"; unset "stopped[$stop_in_claim_pid]"; log "t=${t}s worker $stop_in_claim_pid woken"
  fi
  # Every 3 s: SIGKILL a worker (not one stopped on purpose) and start another in its slot.
  if [ $((t % 3)) = 0 ] && [ "$t" -ge 3 ]; then
    slot=$((RANDOM % workers)); pid=${pids[$slot]}
    if [ -z "${stopped[$pid]:-}" ] && [ "$pid" != "$stop_in_claim_pid" -o "$stopped_in_claim" = 1 ] && ! is_stopped "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; kills=$((kills + 1)); start_worker "$slot"
    fi
  fi
  # At 12 s: PostgreSQL crashes (immediate shutdown: no checkpoint, every session cut) and restarts.
  if [ "$t" -ge 12 ] && [ "$pg_restarts" = 0 ]; then
    kill -QUIT "$(head -1 "$pgdata/postmaster.pid")"; sleep 1
    "$bin" db start >/dev/null; pg_restarts=1; log "t=${t}s PostgreSQL restarted after an immediate shutdown"
  fi
  # At 20 s: the elected leader is stopped for three lease periods; another must take over
  # within two.
  if [ "$t" -ge 20 ] && [ "$leader_stops" = 0 ]; then
    leader_pid=$(leader)
    if [ -n "$leader_pid" ] && [ -z "${stopped[$leader_pid]:-}" ] && [ "$leader_pid" != "$stop_in_claim_pid" ]; then
      kill -STOP "$leader_pid"; stopped[$leader_pid]=$t; leader_stopped_at=$SECONDS; leader_stops=1; log "t=${t}s leader $leader_pid stopped"
    fi
  fi
  if [ -n "$leader_stopped_at" ] && [ "$takeover_s" = -1 ]; then
    now_leader=$(leader)
    [ -n "$now_leader" ] && [ "$now_leader" != "$leader_pid" ] && takeover_s=$((SECONDS - leader_stopped_at)) && log "t=${t}s worker $now_leader took over"
  fi
  if [ -n "$leader_stopped_at" ] && [ -n "${stopped[$leader_pid]:-}" ] && [ $((SECONDS - leader_stopped_at)) -ge $((3 * lease)) ]; then
    kill -CONT "$leader_pid"; unset "stopped[$leader_pid]"; log "t=${t}s old leader $leader_pid woken"
  fi
  # At 15 s: the namespace's link goes down for 45 s (past the server's idle-in-transaction
  # timeout and the TCP keepalives), then comes back.
  if [ -n "$netns" ] && [ "$t" -ge 15 ] && [ -z "$cut_at" ]; then
    ip link set "vh$$" down; cut_at=$t; cut=cut; log "t=${t}s link of the namespaced worker cut"
  fi
  if [ -n "$cut_at" ] && [ "$cut" = cut ] && [ $((t - cut_at)) -ge 45 ]; then
    ip link set "vh$$" up; cut=restored; log "t=${t}s link restored"
  fi
  # Sends past an account's daily limit wait for its next day, retries for their backoff: when
  # nothing can run now, business time moves on to the next job's time.
  if [ "$waiting" = 0 ] && [ "$(q -c "select count(*) from jobs where state = 'running'" 2>/dev/null || echo 1)" = 0 ] \
     && [ "$unfinished" -gt 0 ] && [ -z "${stopped[*]}" ]; then
    next=$(q -c "select to_char(date_trunc('second', min(run_at)) at time zone 'UTC' + interval '1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from jobs")
    "$bin" clock advance --to "$next" --database-url "$url" >/dev/null 2>&1 || true   # it may be past by now
    clock_jumps=$((clock_jumps + 1)); log "t=${t}s business time moved to $next"
  fi
done
seconds=$((SECONDS - start))

for pid in "${pids[@]}" ${netns_pid:-}; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}" ${netns_pid:-}; do wait "$pid" 2>/dev/null || true; done

# The verdict, from the database and from what the double received.
curl -fsS "$gw/_double/messages" >"$scratch/messages.json"
lost=$(q -c "select $expected - count(*) filter (where state = 'completed') from all_jobs")
duplicates=$(jq '[.[] | select(.is_sender)] | group_by(.account_id + " " + .attendee_id) | map(select(length > 1)) | length' "$scratch/messages.json")
accepted=$(jq '[.[] | select(.is_sender)] | length' "$scratch/messages.json")
dropped=$(jq '[.[] | select(.is_sender and (.answered | not))] | length' "$scratch/messages.json")
sent=$(q -c "select count(*) from messages where state = 'sent'")
unrecorded=$((accepted - sent))   # delivered at the double but not recorded as sent (or the reverse)
limit_violations=$(q -c "select count(*) from (
    select r.account_id, r.local_day from reservations r join sender_accounts a on a.id = r.account_id
    where r.state = 'spent' and r.channel = 'inmail' group by r.account_id, r.local_day, a.daily_inmail_limit
    having count(*) > a.daily_inmail_limit) d")
ledger_violations=$(q -c "select count(*) from sender_accounts a
    where (select coalesce(sum(amount), 0) from credit_ledger where account_id = a.id)
          <> (select coalesce(sum(remaining), 0) from credit_grants where account_id = a.id)
       or credit_balance(a.id) + credit_held(a.id)
          <> 400 - (select count(*) from reservations r where r.account_id = a.id and r.state = 'spent' and r.grant_id is not null)")
at_double=$(jq -r '[.[] | select(.is_sender and .inmail)] | group_by(.account_id) | map("\(.[0].account_id) \(length)") | .[]' "$scratch/messages.json" | sort)
ours=$(q -F ' ' -c "select a.gateway_account_id, count(*) from reservations r join sender_accounts a on a.id = r.account_id
    where r.state = 'spent' and r.grant_id is not null group by 1" | sort)
[ "$at_double" = "$ours" ] || ledger_violations=$((ledger_violations + 1))

verdict=pass
[ "$lost" = 0 ] && [ "$duplicates" = 0 ] && [ "$unrecorded" = 0 ] && [ "$limit_violations" = 0 ] && [ "$ledger_violations" = 0 ] \
  && [ "$sent" = "$contacts" ] && [ "$max_stall" -le $((2 * lease)) ] \
  && [ "$takeover_s" -ge 0 ] && [ "$takeover_s" -le $((2 * lease)) ] && [ "$stopped_in_claim" = 1 ] || verdict=fail
echo "chaos=$verdict jobs=$expected sends=$sent workers=$workers$([ -n "$netns" ] && echo +1) lease_s=$lease kills=$kills worker_exits=$exits pg_restarts=$pg_restarts" \
     "stopped_in_claim=$stopped_in_claim leader_stops=$leader_stops takeover_s=$takeover_s link_cut=$cut dropped_answers=$dropped" \
     "clock_jumps=$clock_jumps lost=$lost duplicates=$duplicates unrecorded=$unrecorded limit_violations=$limit_violations" \
     "ledger_violations=$ledger_violations max_stall_s=$max_stall seconds=$seconds"
if [ "$verdict" = fail ]; then
  CHAOS_KEEP=1
  log "failed; logs and the cluster are kept in $scratch"
  exit 1
fi
