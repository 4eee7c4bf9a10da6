#!/usr/bin/env bash
# `make demo`: the embedded database, sender accounts on three plans, and workers racing for their
# daily limits and credits through a simulated week with a renewal. Re-runnable: it uses a fresh
# database (inmailq_demo) of the local cluster each time.
set -euo pipefail
bin=$(realpath "${1:-.build/debug/inmailq}")
cd "$(dirname "$0")/.."
unset DATABASE_URL PGHOST PGDATABASE PGUSER PGPORT PGSERVICE
step() { printf '\n== %s\n' "$*"; }

step "Starting the embedded PostgreSQL cluster (${INMAILQ_HOME:-./.inmailq})"
"$bin" db start
base=$("$bin" db url)
psql "$base" -qX -c 'drop database if exists inmailq_demo with (force)' -c 'create database inmailq_demo'
url=${base/\/inmailq\?//inmailq_demo?}
q() { psql "$url" -qXAt -v ON_ERROR_STOP=1 "$@"; }
admin() { local script=$1; shift; psql "$url" -qXAt -v ON_ERROR_STOP=1 "$@" -f "sql/admin/$script.sql"; }

step "Applying migrations"
"$bin" migrate --database-url "$url"

step "An agency with three client workspaces and one sender account each"
today=$(q -c "select (clock_now() at time zone 'UTC')::date")
anchor=$(q -c "select (date '$today' - interval '1 month' + interval '3 days')::date")  # renews in 3 days
agency=$(admin create_agency -v name='Northwind Outreach')
declare -A account
for spec in "Acme Robotics|Sales Navigator sender|sales_navigator|America/New_York" \
            "Blue Harbor|Career sender, near its cap|premium_career|Europe/Paris" \
            "Cedar Health|Business sender, card expired|premium_business|Asia/Tokyo"; do
  IFS='|' read -r client name plan tz <<<"$spec"
  ws=$(admin create_workspace -v agency="$agency" -v name="$client")
  account[$plan]=$(admin create_sender_account -v workspace="$ws" -v name="$name" -v plan="$plan" -v anchor="$anchor" -v tz="$tz")
  printf '  %-14s account %s: %s (%s, %s)\n' "$client" "${account[$plan]}" "$name" "$plan" "$tz"
done
# Open around the clock, no spacing, so a simulated day passes in a second or two.
q -c "update sender_accounts set working_days = '{1,2,3,4,5,6,7}', working_start = '00:00', working_end = '24:00',
             min_spacing = '0', max_spacing = '0'"
"$bin" renewals schedule --database-url "$url" --log-level warning
"$bin" worker --database-url "$url" --kinds credits.renew --exit-when-done --log-level warning
admin purchase_credits -v account="${account[premium_career]}" -v credits=8 >/dev/null
admin card_expired -v account="${account[premium_business]}" >/dev/null
echo "  Career account bought 8 extra credits (A8); the Business account's card expired (A7)."
q -c "select format('  account %s: %s credits (cap %s), %s', a.id, credit_balance(a.id), p.credit_cap, a.status)
      from sender_accounts a join plans p on p.code = a.plan_code order by a.id"

step "25 send rehearsals per account (credits.drill: reserve at claim, then spend; 1 in 3 to open profiles, free)"
q -c "insert into jobs (kind, args, partition_key)
      select 'credits.drill',
             jsonb_build_object('account_id', a.id, 'delivery_key', 'demo:' || a.id || ':' || n,
                                'channel', 'inmail', 'uses_credit', n % 3 <> 0),
             a.id::text
      from sender_accounts a, generate_series(1, 25) as n"
echo "  $(q -c "select count(*) from jobs") jobs enqueued"

step "Three worker processes share the work through the database"
pids=()
for i in 1 2 3; do
  "$bin" worker --database-url "$url" --concurrency 4 --log-level warning &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
quiet() {  # until nothing is available, running or due
  for _ in $(seq 1 300); do
    [ "$(q -c "select count(*) from jobs where state in ('available','running')
               or (state in ('scheduled','retryable') and run_at <= clock_now())")" = 0 ] && return
    sleep 0.2
  done
}
for day in 1 2 3 4 5 6; do
  if [ $day = 4 ]; then
    echo "  billing day: cron runs \`inmailq renewals schedule\` ($("$bin" renewals schedule --database-url "$url" --log-level warning))"
  fi
  quiet
  q -c "select format('  day %s: sent %s InMails today (%s free), %s jobs waiting; balances: %s',
          $day, count(*) filter (where r.reserved_at >= clock_now() - interval '1 day'),
          count(*) filter (where r.reserved_at >= clock_now() - interval '1 day' and r.grant_id is null),
          (select count(*) from jobs where kind = 'credits.drill'),
          (select string_agg(a.id || '=' || credit_balance(a.id), ' ' order by a.id) from sender_accounts a))
        from reservations r where r.state = 'spent'"
  if [ $day = 2 ]; then
    admin card_updated -v account="${account[premium_business]}" >/dev/null
    echo "  the Business account's card was updated: its waiting jobs run again"
  fi
  "$bin" clock advance 1d --database-url "$url" >/dev/null
done
quiet
kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; trap - EXIT

step "Where each account stands"
q -c "select format('  account %s (%s): %s InMails sent, %s with credits; balance %s of cap %s; status %s',
        a.id, p.name, count(r.*) filter (where r.state = 'spent'),
        count(r.*) filter (where r.state = 'spent' and r.grant_id is not null),
        credit_balance(a.id), p.credit_cap, a.status)
      from sender_accounts a join plans p on p.code = a.plan_code left join reservations r on r.account_id = a.id
      group by a.id, p.name, p.credit_cap order by a.id"
q -c "select format('  most InMails any account sent in one of its local days: %s (limit 10, S6)', coalesce(max(n), 0))
      from (select count(*) as n from reservations where state = 'spent' group by account_id, local_day) d"
step "Credit statement of the Career account (sql/admin/account_statement.sql)"
psql "$url" -qX -v account="${account[premium_career]}" -f sql/admin/account_statement.sql
