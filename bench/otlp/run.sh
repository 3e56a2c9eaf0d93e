#!/usr/bin/env bash
# What exporting spans over OTLP costs: the real `payrules serve` with the example rules on
# durable SQLite, driven by wrk (unique keys, as bench/load), with no exporter and with
# `[telemetry] otlp_endpoint` pointed at a collector stand-in on loopback (a Python HTTP
# server that reads each export and answers 200) — every trace, and one in ten
# (`sample_ratio = 0.1`) — alternating, in one run.
#
#   bench/otlp/run.sh [SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-32}
rounds=${3:-2}
source bench/preamble.sh
source bench/serve.sh
new_key submitter

python3 - "$work/collector.port" <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
open(sys.argv[1], "w").write(str(server.server_address[1]))
server.serve_forever()
PY
for _ in $(seq 50); do [ -s "$work/collector.port" ] && break; sleep 0.1; done
endpoint="http://127.0.0.1:$(cat "$work/collector.port")/v1/traces"

for round in $(seq "$rounds"); do
  for mode in off otlp otlp-10pc; do
    more=""
    [ "$mode" = otlp ] && more=$'[telemetry]\notlp_endpoint = "'"$endpoint"'"'
    [ "$mode" = otlp-10pc ] && more=$'[telemetry]\nsample_ratio = 0.1\notlp_endpoint = "'"$endpoint"'"'
    serve examples/rules "$mode-$round" "path = \"$work/$mode-$round.db\"" "$more"
    PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
      >"$work/$mode.wrk"
    printf '%-9s round %s: %s/s, p50 %s, p99 %s\n' "$mode" "$round" \
      "$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$work/$mode.wrk")" \
      "$(sed -n 's/^ *50% *\(.*\)/\1/p' "$work/$mode.wrk")" \
      "$(sed -n 's/^ *99% *\(.*\)/\1/p' "$work/$mode.wrk")"
    kill -TERM "$pid"; wait "$pid" || true
  done
done
