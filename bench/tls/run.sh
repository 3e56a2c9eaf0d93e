#!/usr/bin/env bash
# What TLS costs the decision path: the real `payrules serve` on loopback with the example
# rules on durable SQLite, driven by wrk (keep-alive connections), in one run:
#   1. plain HTTP/1.1 (the baseline);
#   2. TLS 1.3 with an ECDSA P-256 certificate, HTTP/1.1 (wrk offers no HTTP/2);
#   3. the same, one new TLS connection per request (`Connection: close`): the handshake's
#      cost, what clients that do not keep connections pay.
#
#   bench/tls/run.sh [SECONDS] [CONNECTIONS]
#
# Needs a release build, wrk (apt-get install wrk) and openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-32}
source bench/preamble.sh
source bench/serve.sh
new_key submitter

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/server.key" -out "$work/server.pem" 2>/dev/null
chmod 600 "$work/server.key"
tls=$(printf '[tls]\ncertificate = "%s"\nprivate_key = "%s"\n' "$work/server.pem" "$work/server.key")

run() { # name [MORE]
  serve examples/rules "$1" "" "${2:-}"
  PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency \
    -s bench/load/submit.lua "$url" >"$work/$1.wrk"
  echo "== $1"
  grep -E "Requests/sec|50%|99%|not 201|Socket errors" "$work/$1.wrk" || true
  kill -TERM "$pid"; wait "$pid" || true
}

run plain
run tls "$tls"
PAYRULES_LOAD_CLOSE=1 run tls-new-connection-each "$tls"
PAYRULES_LOAD_CLOSE=1 run plain-new-connection-each
