#!/usr/bin/env bash
# What events cost the decision path: the real `payrules serve` on loopback with the
# example rules on durable SQLite, driven by wrk, in one run:
#   1. no webhook (the baseline: no event is written);
#   2. a webhook to a receiver that answers at once (every decision writes its event in
#      its transaction; the relay delivers them meanwhile, sharing the cores);
#   3. a webhook to a receiver that is down (events written; every delivery fails and
#      backs off).
# Then, for 2, how long the backlog takes to drain once the load stops.
#
#   bench/webhooks/run.sh [SECONDS] [CONNECTIONS]
#
# Needs a release build, wrk (apt-get install wrk) and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-32}
source bench/preamble.sh
source bench/serve.sh
new_key submitter operator
printf 'bench-webhook-secret-0123456789abcdef\n' >"$work/secret"
chmod 600 "$work/secret"

python3 bench/webhooks/receiver.py "$work/port" "$work/count" &
receiver_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
up_port=$(cat "$work/port")
down_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

webhook() { # port
  printf '[[webhooks]]\nname = "bench"\nurl = "http://127.0.0.1:%s/events"\nsecret_file = "%s"\nattempts_max = 1000\n' \
    "$1" "$work/secret"
}

cpu() { ps -o times= -p "$1" | tr -d ' '; } # seconds of CPU a process used so far

run() { # name [MORE]
  serve examples/rules "$1" "" "${2:-}"
  receiver_cpu=$(cpu "$receiver_pid")
  PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
    >"$work/$1.wrk"
  echo "== $1"
  grep -E "Requests/sec|50%|99%|not 201|Socket errors" "$work/$1.wrk" || true
  echo "   CPU during the run: payrules $(cpu "$pid") s, the receiver $(( $(cpu "$receiver_pid") - receiver_cpu )) s"
}

run baseline
kill -TERM "$pid"; wait "$pid" || true
run receiver-up "$(webhook "$up_port")"
answered=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/receiver-up.wrk")
started=$(date +%s.%N)
for _ in $(seq 1200); do
  pending=$(curl -s -H "Authorization: Bearer $key" "$url/v1/webhooks" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoints"][0]["pending"])')
  [ "$pending" = 0 ] && break
  sleep 0.25
done
drained=$(python3 -c "import time; print(round(time.time() - $started, 1))")
echo "   events: $(cat "$work/count") received for $answered answers; backlog drained ${drained} s after the load stopped (pending now: $pending)"
kill -TERM "$pid"; wait "$pid" || true
run receiver-down "$(webhook "$down_port")"
kill -TERM "$pid"; wait "$pid" || true
