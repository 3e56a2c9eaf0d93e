#!/usr/bin/env bash
# The cost of a shadow rule set to live traffic: the real `payrules serve` on loopback
# with a copy of the example rules, driven by wrk three times, each SECONDS long:
# without a shadow set, with the same rules installed as the shadow set (a `shadow/`
# subdirectory, so every payment is decided twice), and without again. Prints each
# run's throughput and latency, and what the shadow decided and skipped.
#
#   bench/shadow/run.sh [SECONDS] [CONNECTIONS]
#
# Needs a release build, wrk and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-16}
source bench/preamble.sh
cp -r examples/rules "$work/rules"
source bench/serve.sh
new_key submitter operator
serve "$work/rules" shadow
shadow() { curl -s -o "$work/shadow.json" -w '%{http_code}' -H "Authorization: Bearer $key" "$url/v1/rules/shadow"; }
load() {
  echo "== $1"
  PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
    | grep -E "Requests/sec|50%|99%|not 201"
}

load "no shadow set"
cp -r examples/rules "$work/rules/shadow"
for _ in $(seq 200); do [ "$(shadow)" = 200 ] && break; sleep 0.05; done
[ "$(shadow)" = 200 ] || { echo "the shadow set was not installed" >&2; cat "$work/shadow.err" >&2; exit 1; }
load "the example rules also as the shadow set"
shadow >/dev/null; echo "shadow: $(cat "$work/shadow.json")"
rm -rf "$work/rules/shadow"
for _ in $(seq 200); do [ "$(shadow)" = 404 ] && break; sleep 0.05; done
load "no shadow set again"
