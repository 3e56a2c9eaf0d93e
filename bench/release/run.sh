#!/usr/bin/env bash
# What releasing rules costs live traffic: the real `payrules serve` on loopback with a
# copy of the example rules, driven by wrk (a new debtor account per payment), for
# SECONDS each: without a canary, with a canary deciding 50 % of the accounts (the
# example rules with another review threshold, from a `canary/` subdirectory), and
# without again; then ten rollbacks under load, alternating between two kept versions.
# Prints each run's throughput and latency, the canary's report, and each rollback's
# answer (load time, components compiled) with the failed requests around them.
#
#   bench/release/run.sh [SECONDS] [CONNECTIONS]
#
# Needs a release build, wrk, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-16}
source bench/preamble.sh
cp -r examples/rules "$work/rules"
source bench/serve.sh
new_key submitter operator
serve "$work/rules" release
api() { curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }
load() {
  echo "== $1"
  PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
    | grep -E "Requests/sec|50%|99%|not 201"
}
status() { api -o /dev/null -w '%{http_code}' "$url/v1/rules/canary"; }

load "no canary"
cp -r examples/rules "$work/rules/canary"
sed -i 's/review-at = 600/review-at = 500/' "$work/rules/canary/pipeline.toml"
printf 'percent = 50\n[abort]\ndecisions_min = 100000000\n' >"$work/rules/canary/canary.toml"
for _ in $(seq 200); do [ "$(status)" = 200 ] && break; sleep 0.05; done
[ "$(status)" = 200 ] || { echo "the canary did not start" >&2; cat "$work/release.err" >&2; exit 1; }
load "a canary deciding 50 % of the accounts"
api "$url/v1/rules/canary" | python3 -c '
import json, sys
c = json.load(sys.stdin)
for side in ("live", "canary"):
    f = c[side]
    print("%s: %d decided, p50 %d µs, p99 %d µs in rules"
          % (side, f["decisions"], f["rules_p50_us"], f["rules_p99_us"]))'
api -X DELETE -o /dev/null "$url/v1/rules/canary"
rm -rf "$work/rules/canary"
load "no canary again"

echo "== ten rollbacks under load"
sed -i 's/review-at = 600/review-at = 550/' "$work/rules/pipeline.toml"
for _ in $(seq 200); do
  [ "$(api "$url/v1/rules" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["kept_versions"]))')" -ge 2 ] && break
  sleep 0.05
done
PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
  >"$work/wrk-rollback" &
wrk_pid=$!
sleep 1
for n in $(seq 10); do
  if [ $((n % 2)) = 1 ]; then
    api -X POST "$url/v1/rules/rollback" -d '{}'
  else
    api -X DELETE "$url/v1/rules/rollback"
  fi
  echo
  sleep 0.5
done
wait "$wrk_pid"
grep -E "Requests/sec|50%|99%|not 201" "$work/wrk-rollback"
kill -TERM "$pid"; wait "$pid" || true
