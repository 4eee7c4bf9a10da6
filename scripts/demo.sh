#!/usr/bin/env bash
# The demo behind `make demo`: start the embedded database, bring its schema up to date,
# and show where it stands.
set -euo pipefail
bin=${1:-.build/debug/inmailq}
unset DATABASE_URL
echo "== starting the embedded PostgreSQL cluster (${INMAILQ_HOME:-./.inmailq})"
"$bin" db start
echo "== applying migrations"
"$bin" migrate
"$bin" migrate --status
echo "== cluster status"
"$bin" db status
