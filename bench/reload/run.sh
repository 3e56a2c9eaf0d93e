#!/usr/bin/env bash
# Hot reload under load: the real `payrules serve` on loopback with a copy of the example
# rules, driven by wrk, while bench/reload/measure.py lands new versions of a rule.
#
#   bench/reload/run.sh [SECONDS] [CONNECTIONS] [RULE]
#
# RULE is the rule whose new versions land: `limits` when absent; `rail-router` for one
# that prepares (two compiles and its preparation per version).
# Needs a release build and wrk. Prints (1) the submission latency in steady state,
# (2) the same while a new version lands every ~0.3 s, and (3) the time from each
# version landing to the first payment decided with it; first without other load.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-16}
rule=${3:-limits}
source bench/preamble.sh
cp -r examples/rules "$work/rules"
source bench/serve.sh
new_key submitter operator
serve "$work/rules" reload

echo "== landing to deciding, no other load"
python3 bench/reload/measure.py "$url" "$key" "$work/rules" 10 "$rule"

echo "== steady state: POST /v1/payments, example rules, $connections connections"
PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
  | grep -E "Requests/sec|50%|99%|not 201"

echo "== the same while new versions of a rule land"
PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
  >"$work/wrk-swap" &
wrk_pid=$!
sleep 1
python3 bench/reload/measure.py "$url" "$key" "$work/rules" 20 "$rule" >"$work/reload"
wait "$wrk_pid"
grep -E "Requests/sec|50%|99%|not 201" "$work/wrk-swap"
echo "== landing to deciding"
cat "$work/reload"
kill -TERM "$pid"; wait "$pid" || true
