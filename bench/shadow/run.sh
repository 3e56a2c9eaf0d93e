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
bin=target/release/payrules
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r examples/rules "$work/rules"
key=$("$bin" keys new --name load --role submitter --role operator | sed -n 's/^# \(pr_.*\)$/\1/p')
sha=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
cat >"$work/payrules.toml" <<TOML
listen = "127.0.0.1:0"
rules_dir = "$work/rules"
[store]
path = "$work/payrules.db"
[log]
level = "warn"
[[api_keys]]
name = "load"
sha256 = "$sha"
roles = ["submitter", "operator"]
TOML
"$bin" serve --config "$work/payrules.toml" >"$work/out" 2>"$work/err" &
for _ in $(seq 100); do
  url=$(sed -n 's/^payrules listening on //p' "$work/out"); [ -n "$url" ] && break; sleep 0.1
done
[ -n "$url" ] || { cat "$work/err" >&2; exit 1; }
shadow() { curl -s -o "$work/shadow" -w '%{http_code}' -H "Authorization: Bearer $key" "$url/v1/rules/shadow"; }
load() {
  echo "== $1"
  PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
    | grep -E "Requests/sec|50%|99%|not 201"
}

load "no shadow set"
cp -r examples/rules "$work/rules/shadow"
for _ in $(seq 200); do [ "$(shadow)" = 200 ] && break; sleep 0.05; done
[ "$(shadow)" = 200 ] || { echo "the shadow set was not installed" >&2; cat "$work/err" >&2; exit 1; }
load "the example rules also as the shadow set"
shadow >/dev/null; echo "shadow: $(cat "$work/shadow")"
rm -rf "$work/rules/shadow"
for _ in $(seq 200); do [ "$(shadow)" = 404 ] && break; sleep 0.05; done
load "no shadow set again"
