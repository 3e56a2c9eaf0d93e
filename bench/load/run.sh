#!/usr/bin/env bash
# Load test: the real `payrules serve` on loopback, durable SQLite, driven by wrk.
#
#   bench/load/run.sh [SECONDS] [CONNECTIONS]
#
# Needs a release build (`cargo build --release`) and wrk (`apt-get install wrk`).
# Runs three layers, each on a fresh store, so the cost of each shows:
#   1. GET /healthz: HTTP alone (the floor);
#   2. POST /v1/payments with no rules: HTTP, validation, idempotency, durable commit;
#   3. POST /v1/payments with the example rules: everything;
#   4. the same with each example rule's manifest saying `isolation = "warm"`.
# After each POST run it stops the service and checks with `payrules audit verify` that
# the store holds a decision for every 201 (and that the audit chain is intact).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-32}
source bench/preamble.sh
source bench/serve.sh
new_key submitter
mkdir -p "$work/no-rules"
cp examples/rules/pipeline.toml "$work/no-rules/"
cp -r examples/rules "$work/warm"
for manifest in "$work"/warm/*.toml; do
  case "$manifest" in *.vectors.toml|*/pipeline.toml) continue ;; esac
  sed -i '1i isolation = "warm"' "$manifest"
done

stop_and_verify() { # name answered
  kill -TERM "$pid"; wait "$pid" || true
  verdict=$("$bin" audit verify --store "$work/$1.db")
  echo "$verdict"
  entries=$(echo "$verdict" | sed -n 's/.*intact, \([0-9]*\) entries.*/\1/p')
  # One entry per stored decision, plus the service's own `rules.loaded`; requests still
  # in flight when wrk stopped were answered after it counted, so there may be more.
  if [ -z "$entries" ] || [ "$entries" -lt $(( $2 + 1 )) ]; then
    echo "FAIL: wrk counted $2 answers but the store holds $(( ${entries:-1} - 1 )) decisions" >&2
    exit 1
  fi
  echo "every one of the $2 answers counted is in the store"
}

echo "== 1. GET /healthz (HTTP floor)"
serve examples/rules healthz
wrk -t1 -c"$connections" -d"${seconds}s" --latency "$url/healthz" | grep -E "Requests/sec|50%|99%|Non-2xx"
kill -TERM "$pid"; wait "$pid" || true

for layer in no-rules examples warm; do
  rules=examples/rules; [ "$layer" = no-rules ] && rules="$work/no-rules"
  [ "$layer" = warm ] && rules="$work/warm"
  echo "== POST /v1/payments, $layer ($rules), durable SQLite"
  serve "$rules" "$layer"
  PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
    >"$work/$layer.wrk"
  grep -E "requests in|Requests/sec|50%|75%|90%|99%|not 201|Socket errors" "$work/$layer.wrk"
  answered=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/$layer.wrk")
  stop_and_verify "$layer" "$answered"
done
