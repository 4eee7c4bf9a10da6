#!/usr/bin/env bash
# `make demo`: the main job on the embedded database. An agency with three clients runs InMail
# campaigns from six sender accounts through three simulated weeks: worker processes deliver over
# HTTP through the gateway courier to the gateway double (a local server speaking the LinkedIn
# gateway's API, with a few faults), members answer in their chats and the gateway's webhooks bring
# the answers in through `inmailq serve`, follow-ups go into the chats, credits are spent, refunded
# and renewed by cron, and the report says what happened. It ends by printing the operators' console
# address and a login, and leaves `inmailq serve` running until Ctrl-C.
# Re-runnable: it uses a fresh database (inmailq_demo) of the local cluster each time.
set -euo pipefail
scratch=$(mktemp -d "${TMPDIR:-/tmp}/inmailq-demo.XXXXXX")   # this run's own files (CSV, worker logs)
bin=$(realpath "${1:-.build/debug/inmailq}")
days=${DEMO_DAYS:-21}
cd "$(dirname "$0")/.."
unset DATABASE_URL PGHOST PGDATABASE PGUSER PGPORT PGSERVICE
step() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }

step "Starting the embedded PostgreSQL cluster (${INMAILQ_HOME:-./.inmailq})"
"$bin" db start
base=$("$bin" db url)
psql "$base" -qX -c 'drop database if exists inmailq_demo with (force)' -c 'create database inmailq_demo'
url=${base/\/inmailq\?//inmailq_demo?}
q() { psql "$url" -qXAt -v ON_ERROR_STOP=1 "$@"; }
admin() { local script=$1; shift; psql "$url" -qXAt -v ON_ERROR_STOP=1 "$@" -f "sql/admin/$script.sql"; }
iq() { "$bin" "$@" --database-url "$url" --log-level warning; }
"$bin" migrate --sandbox --database-url "$url" --log-level warning
say "schema: $(q -c "select count(*) from schema_migrations") files applied (sql/queue, accounts, outreach, sandbox)"

step "The gateway double: a local stand-in for the LinkedIn gateway's HTTP API (Unipile API v1)"
INMAILQ_GATEWAY_API_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export INMAILQ_GATEWAY_API_KEY
"$bin" gateway-double --listen 127.0.0.1:0 --credits 0 >"$scratch/double.log" 2>&1 &
double_pid=$!
pids=()
serve_pid=
trap 'kill "${pids[@]}" "$double_pid" $serve_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  INMAILQ_GATEWAY_URL=$(sed -n 's/^gateway double listening on //p' "$scratch/double.log")
  [ -n "$INMAILQ_GATEWAY_URL" ] && break
  sleep 0.1
done
export INMAILQ_GATEWAY_URL
gw=$INMAILQ_GATEWAY_URL
say "listening on $gw; workers find it in INMAILQ_GATEWAY_URL and INMAILQ_GATEWAY_API_KEY (a random key)"
double() { curl -fsS -X "$1" "$gw/_double/$2" ${3:+-d "$3"}; }

step "inmailq serve: the gateway's webhooks (members' answers, account status) into the database"
INMAILQ_WEBHOOK_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export INMAILQ_WEBHOOK_SECRET
"$bin" serve --database-url "$url" --listen "127.0.0.1:${DEMO_PORT:-0}" --log-level warning >"$scratch/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do
  serve_url=$(sed -n 's/^inmailq serve listening on //p' "$scratch/serve.log")
  [ -n "$serve_url" ] && break
  sleep 0.1
done
say "listening on $serve_url: $(curl -fsS "$serve_url/readyz")"
"$bin" gateway register-webhook --url "$serve_url/webhooks/gateway" | sed 's/^/   /'
say "the gateway sends every new message of the accounts' chats there (their own too, never taken for answers)"
say "with the secret header set at registration (INMAILQ_WEBHOOK_SECRET); serve answers 200 after its commit."
# LinkedIn's canned answers as this agency's members write them (the three auto-replies of R2 are known).
admin set_reply_phrase -v phrase="Thanks for reaching out - I'm open to hearing more." -v kind=accepted_default >/dev/null
admin set_reply_phrase -v phrase="No thanks, I'm not looking right now." -v kind=declined >/dev/null
say "canned answers taught (sql/admin/set_reply_phrase.sql): $(q -c "select string_agg(format('\"%s\" = %s', phrase, kind), ', ' order by kind) from reply_phrases")"
delivered() {  # until the gateway has delivered every webhook it sent
  for _ in $(seq 1 300); do
    [ "$(double GET webhooks | grep -o '"delivered":false' | wc -l)" = 0 ] && return
    sleep 0.1
  done
}

step "An agency, three client workspaces, six LinkedIn sender accounts"
today=$(q -c "select (clock_now() at time zone 'UTC')::date")
anchor=$(q -c "select (date '$today' - interval '1 month' + interval '10 days')::date")  # next cycle in 10 days
agency=$(admin create_agency -v name='Northwind Outreach')
declare -A account workspace
while IFS='|' read -r key client name plan tz; do
  [ -n "${workspace[$client]:-}" ] || workspace[$client]=$(admin create_workspace -v agency="$agency" -v name="$client")
  account[$key]=$(admin create_sender_account -v workspace="${workspace[$client]}" -v name="$name" -v plan="$plan" -v anchor="$anchor" -v tz="$tz")
  say "$(printf '%-13s account %s  %-28s %-21s %s' "$client" "${account[$key]}" "$name" "$plan" "$tz")"
done <<'EOF'
acme_nav|Acme Robotics|Dana (Sales Navigator)|sales_navigator|America/New_York
acme_biz|Acme Robotics|Eli (Premium Business)|premium_business|America/Chicago
blue_career|Blue Harbor|Fay (Career, near its cap)|premium_career|Europe/Paris
blue_core|Blue Harbor|Gus (Sales Navigator Core)|sales_navigator_core|Europe/London
cedar_biz|Cedar Health|Hal (Business, card expired)|premium_business|Asia/Tokyo
cedar_recruit|Cedar Health|Ivy (Recruiter Lite)|recruiter_lite|Australia/Sydney
EOF
# Each account bound to its gateway account; then open around the clock with no spacing between
# sends, so a simulated day passes in a second. (Real accounts keep their working hours and 2-8
# minutes between sends; binding raises a shorter spacing to the gateway's 15 seconds.)
for key in "${!account[@]}"; do
  admin connect_gateway_account -v account="${account[$key]}" -v gateway_account="li-$key" >/dev/null
done
say "bound to gateway accounts li-acme_nav ... li-cedar_recruit (sql/admin/connect_gateway_account.sql)"
for id in "${account[@]}"; do
  admin set_sending_schedule -v account="$id" -v days='{1,2,3,4,5,6,7}' -v start=00:00 -v end=24:00 \
    -v min_spacing=0 -v max_spacing=0 >/dev/null
done
say "every account: 10 InMails a day at most (S6), a reserve of 1 credit (S7); billing cycles start on day 10"

step "Credits: this cycle's allotment (A2, A3), a purchase (A8), an expired card (A7)"
say "cron: $(iq renewals schedule)"
iq worker --kinds credits.renew --exit-when-done
admin purchase_credits -v account="${account[blue_career]}" -v credits=8 >/dev/null
admin card_expired -v account="${account[cedar_biz]}" >/dev/null
say "Fay (Career) bought 8 credits: 13 of her cap of 15, so the next renewal can add only what fits (A5)."
say "Hal's card expired: his account cannot send until it is updated; its work waits (A7)."
q -c "select format('   account %s: %s credits of %s, %s', a.id, credit_balance(a.id), p.credit_cap, a.status)
      from sender_accounts a join plans p on p.code = a.plan_code order by a.id"
# LinkedIn renews, sells and refunds credits on its side too; the double is told LinkedIn's count
# (the ledger's: spendable plus held) whenever that happens here, per product of the plan.
# With "renewal", LinkedIn's renewal comes first: the allotment, as far as the cap allows (A5).
linkedin_counts() {
  q -c "select a.gateway_account_id, p.gateway_api, credit_balance(a.id) + credit_held(a.id)
          + case when '${1:-}' = 'renewal' then greatest(0, least(p.monthly_allotment, p.credit_cap - credit_balance(a.id) - credit_held(a.id))) else 0 end
        from sender_accounts a join plans p on p.code = a.plan_code" |
    while IFS='|' read -r gateway_account api credits; do
      double PUT "accounts/$gateway_account" "{\"$( [ "$api" = classic ] && echo premium || echo "$api")\": $credits}" >/dev/null
    done
}
linkedin_counts

step "A seed campaign, and one campaign per client created from it (C1)"
seed=$(iq campaigns create --workspace "${workspace[Acme Robotics]}" --name "Seed: hiring managers")
iq campaigns step --campaign "$seed" --position 0 --subject "{{first_name|Hello}}, a question about hiring at {{company|your company}}" \
  --body "Hi {{first_name|there}}, I help teams like {{company|yours}} hire {{role|engineers}} faster. Open to a short call next week?"
iq campaigns step --campaign "$seed" --position 1 --delay-days 3 --body "Thanks for accepting, {{first_name|there}}! Here is a two-minute overview: https://example.com/overview"
iq campaigns step --campaign "$seed" --position 2 --delay-days 4 --body "{{first_name|Hi}}, would Tuesday or Thursday suit you for 15 minutes?"
iq campaigns step --campaign "$seed" --position 3 --delay-days 5 --body "Last note from me, {{first_name|there}}: happy to help whenever {{company|your team}} is hiring."
say "seed campaign $seed: an InMail and follow-ups 3, 4 and 5 days apart (C3); it stays a draft"
declare -A campaign
for client in "Acme Robotics" "Blue Harbor" "Cedar Health"; do
  campaign[$client]=$(iq campaigns create --workspace "${workspace[$client]}" --name "Q4 hiring managers" --seed "$seed")
done
iq campaigns add-sender --campaign "${campaign[Acme Robotics]}" "${account[acme_nav]}" "${account[acme_biz]}"
iq campaigns add-sender --campaign "${campaign[Blue Harbor]}" "${account[blue_career]}" "${account[blue_core]}"
iq campaigns add-sender --campaign "${campaign[Cedar Health]}" "${account[cedar_biz]}" "${account[cedar_recruit]}"
for client in "Acme Robotics" "Blue Harbor" "Cedar Health"; do
  say "$client: campaign ${campaign[$client]}, steps copied from the seed, two senders in its pool"
done

step "Contacts three ways (C2): a CSV file, pasted profile links, a search URL"
csv="$scratch/acme.csv"
{
  printf '\xef\xbb\xbfLinkedIn URL,First Name,Last Name,Company,Job Title,Open Profile,Opted Out,Connection Degree,Role\r\n'
  awk 'BEGIN {
    split("Ana Ben Chen Dara Eko Femi Gita Hugo Iris Jon", first, " ");
    split("Ito Khan Lopez Meyer Novak Okafor Park Quinn", last, " ");
    split("Globex|Initech|Umbrella, Inc|Hooli|Stark Industries|Wayne Enterprises|Acme Corp", company, "|");
    for (n = 1; n <= 120; n++)
      printf "https://www.linkedin.com/in/acme-lead-%d/,%s,%s,\"%s\",Head of Talent,%s,%s,%d,%s\r\n", n,
        (n % 9 == 0 ? "" : first[1 + n % 10]), last[1 + n % 8], company[1 + n % 7],
        (n % 6 == 0 ? "yes" : "no"), (n % 25 == 0 ? "yes" : "no"), (n % 15 == 0 ? 1 : 2),
        (n % 3 == 0 ? "data engineers" : "");
  }'
  printf 'https://www.linkedin.com/company/acme-robotics,Not,A Person,Acme,,,,,\r\n'
  printf 'linkedin.com/in/ACME-LEAD-7?trk=csv,Ana,Again,Dup,,,,,\r\n'
  printf 'https://www.linkedin.com/in/acme-lead-500,Bad,Degree,Globex,,,,5,\r\n'
} > "$csv"
say "Acme Robotics: inmailq contacts import --csv (123 rows: a company page, a duplicate, a bad degree among them)"
{ iq contacts import --campaign "${campaign[Acme Robotics]}" --csv "$csv" || [ $? = 2 ]; } | sed 's/^/      /'   # 2: some rows rejected
say "Blue Harbor: inmailq contacts add --profiles - (links as people paste them; names unknown, so templates use their fallbacks)"
seq 1 120 | awk '{ split("https://www.linkedin.com/in/blue-lead-%d/|uk.linkedin.com/in/blue-lead-%d|https://m.linkedin.com/in/blue-lead-%d?trk=x|www.linkedin.com/in/blue-lead-%d#about", f, "|");
                   printf f[1 + $1 % 4] (($1 % 3 == 0) ? ", " : "\n"), $1 }' \
  | { iq contacts add --campaign "${campaign[Blue Harbor]}" --profiles - || [ $? = 2 ]; } | sed 's/^/      /'
say "Cedar Health: inmailq contacts search --url (a Sales Navigator search; a worker pages through the sandbox's results)"
say "  $(iq contacts search --campaign "${campaign[Cedar Health]}" --max 120 \
        --url 'https://www.linkedin.com/sales/search/people?query=(keywords:hiring%20manager,geo:Tokyo)')"
iq worker --kinds contacts.search --exit-when-done
q -c "select format('      %s pages, %s people listed, %s added', pages, found, added) from contact_searches"
q -c "select format('   %s contacts: %s open profiles (free InMail, S1), %s opted out (skipped, S2), %s 1st-degree (a regular message, S3)',
        count(*), count(*) filter (where open_profile), count(*) filter (where opted_out),
        count(*) filter (where connection_degree = 1)) from contacts"

step "Activating: every template is checked against the contacts' fields and the S5 limits"
for client in "Acme Robotics" "Blue Harbor" "Cedar Health"; do
  if out=$("$bin" campaigns activate "${campaign[$client]}" --database-url "$url" --log-level warning 2>&1); then
    say "$client: $out"
  else
    say "$client: refused: ${out#Error: }"
    say "  -> only Acme's CSV had a Role column: this client's InMail is rewritten without {{role}}, then activated"
    iq campaigns step --campaign "${campaign[$client]}" --position 0 --subject "{{first_name|Hello}}, a question about hiring at {{company|your company}}" \
      --body "Hi {{first_name|there}}, I help teams like {{company|yours}} hire faster. Open to a short call next week?"
    say "$client: $(iq campaigns activate "${campaign[$client]}")"
  fi
done

step "Three worker processes, delivering over HTTP through the gateway courier"
# What LinkedIn knows of the members: open profiles take InMail free, 1st-degree connections
# take regular messages.
q -c "select substr(member_key, strpos(member_key, ':') + 1), open_profile::text, coalesce(connection_degree = 1, false)::text
      from contacts where open_profile or connection_degree = 1" |
  while IFS='|' read -r member open first; do
    double PUT "members/$member" "{\"open_profile\": $open, \"first_degree\": $first}" >/dev/null
  done
double PUT faults '{"rates": {"too_many_requests": 0.02, "server_error": 0.02, "drop_after_send": 0.02}}' >/dev/null
say "The double answers 2% of requests 429 (the account waits), 2% 500 (retried), and drops 2% of"
say "answers after sending (the retry finds the message at the gateway instead of sending it again)."
say "Members answer about 1 InMail in 2 the next day, in the chat; the answers arrive as webhooks."
say "The elected worker compares each account's credits with LinkedIn's count every second here"
say "(--gateway-balance-interval; 10 minutes by default) and books any difference as a 'reconcile' entry."
log="$scratch/workers.log"
: >"$log"
for i in 1 2 3; do
  "$bin" worker --database-url "$url" --courier gateway --gateway-balance-interval 1 --concurrency 4 --log-level warning \
    --log-format json 2>>"$log" &
  pids+=($!)
done
quiet() {  # until nothing is available, running or due: the workers did all they can for now
  for _ in $(seq 1 600); do
    [ "$(q -c "select count(*) from jobs where state in ('available','running')
               or (state in ('scheduled','retryable') and run_at <= clock_now())")" = 0 ] && return
    sleep 0.1
  done
}

step "$days simulated days, one summary a week (the totals are the report's numbers below)"
# What happened between two business times: first messages and follow-ups sent, and InMails
# answered (by the time of their first answer), with the credits they earned back (R1).
week_line() {  # label from [to]
  q -c "select format('   %s: %s InMails (%s free, S1), %s messages to 1st-degree connections (S3), %s follow-ups; %s InMails answered (%s credits back, R1)',
          '$1', count(*) filter (where step = 0 and channel = 'inmail' and sent_in),
          count(*) filter (where step = 0 and channel = 'inmail' and not uses_credit and sent_in),
          count(*) filter (where step = 0 and channel = 'message' and sent_in),
          count(*) filter (where step > 0 and sent_in),
          count(*) filter (where step = 0 and responded and answered_in),
          count(*) filter (where credited_back and answered_in))
        from (select o.*, o.sent_at >= '$2' and o.sent_at < '${3:-infinity}' as sent_in,
                     o.responded_at >= '$2' and o.responded_at < '${3:-infinity}' as answered_in
              from message_outcomes o where o.state = 'sent') o"
}
standing() {
  q -c "select format('      now: %s contacts waiting (%s of them for credits, S8), %s in sequence, %s done (answered, declined, finished, skipped or failed)',
          count(*) filter (where status = 'waiting'),
          count(*) filter (where status = 'waiting' and reason like 'waiting for credits%'),
          count(*) filter (where status in ('sent', 'accepted')),
          count(*) filter (where status in ('declined', 'replied', 'finished', 'skipped', 'failed'))) from contact_progress"
}
say "(InMails answered count each answered InMail once, as the report's \"responses\" do)"
billing_day=10
begin=$(q -c "select clock_now()")
week_start=$begin
for day in $(seq 1 "$days"); do
  quiet
  if [ "$day" = 1 ]; then
    q -c "select format('   day 1: %s contacts of Hal''s wait: %s', count(*), min(reason)) from contact_progress
          where sender_account_id = ${account[cedar_biz]} and status = 'waiting'"
  fi
  if [ "$day" = 2 ]; then
    admin card_updated -v account="${account[cedar_biz]}" >/dev/null
    say "day 2: Hal's card was updated: account ${account[cedar_biz]} is active again and its waiting contacts go out (A7)"
  fi
  "$bin" clock advance 1d --database-url "$url" >/dev/null
  # The members who answer yesterday's InMails write in their chats at the gateway; its webhooks
  # bring the answers to inmailq serve, and the workers' inbox.process jobs apply them.
  q -c "select m.chat_id, (array['Thanks for reaching out - I''m open to hearing more.', 'Thanks for reaching out - I''m open to hearing more.',
                                 'Interested', 'No thanks, I''m not looking right now.', 'Happy to talk next week.',
                                 'Not interested'])[1 + m.id % 6]
        from messages m
        where m.state = 'sent' and m.step = 0 and m.channel = 'inmail' and m.responded_at is null
          and m.sent_at > clock_now() - interval '2 days' and m.id % 10 < 5" |
    while IFS='|' read -r chat text; do
      double POST "chats/$chat/reply" "{\"text\": \"$text\"}" >/dev/null
    done
  delivered
  quiet
  linkedin_counts  # answered InMails earn their credit back on LinkedIn too (R1)
  if [ "$day" = $((billing_day - 1)) ]; then
    # Fay is away for two days: her account is paused (her contacts wait, nothing is lost), so
    # the credits she buys now are still there when her cycle renews.
    admin pause_account -v account="${account[blue_career]}" >/dev/null
    fay=$(q -c "select credit_balance(${account[blue_career]}) + credit_held(${account[blue_career]})")
    topup=$((14 - fay))
    if [ "$topup" -gt 0 ]; then
      admin purchase_credits -v account="${account[blue_career]}" -v credits="$topup" >/dev/null
    fi
    say "day $day: Fay is away: her account is paused (sql/admin/pause_account.sql); she holds $fay (spendable and reserved) and buys $((topup > 0 ? topup : 0)): $(q -c "select credit_balance(${account[blue_career]})") spendable of her cap of 15 (A8)"
    linkedin_counts renewal
    say "day $billing_day: a new billing cycle starts; the daily cron runs: $(iq renewals schedule)"
    quiet
    q -c "select format('      account %s: %s%s', r.account_id,
            case when r.granted < p.monthly_allotment
                 then format('+%s credit%s only: allotment %s, but %s held of a cap of %s, so only what fits (A5)',
                             r.granted, case when r.granted = 1 then '' else 's' end, p.monthly_allotment,
                             p.credit_cap - r.granted, p.credit_cap)
                 else format('+%s credits (allotment %s, cap %s)', r.granted, p.monthly_allotment, p.credit_cap) end,
            case when r.expired > 0 then format(', %s expired (A4)', r.expired) else '' end)
          from renewal_cycles r join sender_accounts a on a.id = r.account_id join plans p on p.code = a.plan_code
          where r.cycle_start = (select max(cycle_start) from renewal_cycles) order by r.account_id"
  fi
  if [ "$day" = $((billing_day + 1)) ]; then
    admin resume_account -v account="${account[blue_career]}" >/dev/null
    say "day $day: Fay is back: her account is resumed and her waiting contacts go out"
  fi
  if [ $((day % 7)) = 0 ] || [ "$day" = "$days" ]; then
    if [ "$day" = "$days" ]; then
      # Retries still waiting for their backoff (a lost answer on the last day) settle before
      # the last summary, so it holds everything the report counts.
      "$bin" clock advance 2h --database-url "$url" >/dev/null
      quiet; delivered; quiet
      week_line "week $(( (day + 6) / 7 )) (days $(( (day - 1) / 7 * 7 + 1 ))-$day)" "$week_start"
    else
      week_end=$(q -c "select clock_now()")
      week_line "week $((day / 7)) (days $((day - 6))-$day)" "$week_start" "$week_end"
      week_start=$week_end
    fi
    standing
  fi
done
week_line "all $days days" "$begin"
kill -TERM "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
say "workers stopped (SIGTERM: running work finishes, then exit 0); their JSON logs (warnings up): $log"
q -c "select format('   webhooks received: %s (%s the accounts'' own messages, %s answers applied, %s kept for operators)',
        count(*), count(*) filter (where outcome like '%own message%'),
        count(*) filter (where state = 'processed' and outcome not like '%own message%'),
        count(*) filter (where state in ('unmatched', 'unknown_event'))) from gateway_inbox"

step "The report (inmailq report; sql/admin/report.sql prints the same views)"
"$bin" report --database-url "$url"

step "The People view: a few contacts and where each stands (sql/admin/people.sql)"
q -c "select format('   %-7s %-28s %-9s %-6s %s', 'contact', 'member', 'status', 'sender', 'reason') "
q -c "select format('   %-7s %-28s %-9s %-6s %s', contact_id, member_key, status, coalesce(sender_account_id::text, '-'), reason)
      from (select *, row_number() over (partition by status order by contact_id) as n from contact_progress) p
      where n <= 2 order by status, contact_id"

step "What the database guarantees held"
q -c "select format('   most InMails any account sent in one of its local days: %s (limit 10, S6)', coalesce(max(n), 0))
      from (select count(*) as n from reservations where state = 'spent' and channel = 'inmail' group by account_id, local_day) d"
q -c "select format('   accounts whose credit ledger does not match their grants: %s', count(*))
      from sender_accounts a
      where (select coalesce(sum(amount), 0) from credit_ledger where account_id = a.id)
            <> (select coalesce(sum(remaining), 0) from credit_grants where account_id = a.id)"
q -c "select format('   members with two messages for the same step: %s', count(*))
      from (select member_key, step from messages group by 1, 2 having count(*) > 1) d"
double GET messages >"$scratch/received.json"
say "messages the gateway accepted: $(grep -o '"is_sender":true' "$scratch/received.json" | wc -l); recorded as sent: $(q -c "select count(*) from messages where state = 'sent'")"
say "answers lost after sending, then found at the gateway and not sent again: $(grep -o '"answered":false' "$scratch/received.json" | wc -l)"
requests=$(double GET requests)
q -c "select format('   gateway answers: %s', string_agg(format('%s x%s', key, value), ', ' order by key))
      from json_each_text(\$j\$$requests\$j\$) where key like 'POST /api/%'"

step "Fay's credits, entry by entry kind (sql/admin/account_statement.sql lists every entry)"
q -c "select format('   %-8s %3s entries, %4s credits', entry, count(*), sum(amount)) from credit_ledger
      where account_id = ${account[blue_career]} group by entry order by min(id)"
q -c "select format('   balance now: %s', credit_balance(${account[blue_career]}))"

step "The operators' console (inmailq serve, /console): the agency's own read-only pages"
console_password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
INMAILQ_CONSOLE_PASSWORD=$console_password iq console add-login --agency "$agency" --login northwind >/dev/null
say "console: $serve_url/console   login: northwind   password: $console_password"
say "(\`inmailq console add-login --agency ID --login NAME\` makes more logins, one agency each)"
say "serve keeps running until Ctrl-C; the database stays up until \`inmailq db stop\`."
trap 'kill -TERM "$serve_pid" "$double_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; exit 0' INT TERM
wait "$serve_pid"
