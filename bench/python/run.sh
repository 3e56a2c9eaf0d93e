#!/usr/bin/env bash
# What a rule costs in Python against the same rule in Rust: `velocity-risk` both ways
# (plugins/velocity-risk-py and the example rule), measured in the same run.
#
#   bench/python/run.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# 1. Per evaluation: `payrules plugin test` on the rule's 10 test vectors, ROUNDS times
#    each, interleaved; the median per case of wall time, instantiation time and fuel.
# 2. Under load: the real `payrules serve` with the example rules, then with the Python
#    velocity-risk in place of the Rust one, then the same with the Python rule's manifest
#    saying `isolation = "warm"`, driven by wrk for SECONDS each.
# Needs a release build, componentize-py (pip install componentize-py==0.25.1) and wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-10}
connections=${3:-16}
source bench/preamble.sh

cp -rL plugins/velocity-risk-py "$work/project"
"$bin" plugin build "$work/project" >/dev/null 2>"$work/build.err" \
  || { cat "$work/build.err" >&2; exit 1; }
mkdir -p "$work/rust" "$work/python"
cp examples/rules/velocity-risk.toml examples/rules/velocity-risk.vectors.toml \
  examples/rules/velocity_risk.wasm "$work/rust/"
cp "$work/project/dist/"* "$work/python/"
ls -l "$work/rust/velocity_risk.wasm" "$work/python/velocity_risk.wasm" | awk '{print $5, $NF}'

echo "== 1. per evaluation: plugin test, $rounds rounds of the 10 vectors each"
for round in $(seq "$rounds"); do
  for language in rust python; do
    "$bin" plugin test "$work/$language" >"$work/$language.$round.txt"
  done
done
python3 - "$work" "$rounds" <<'PY'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
line = re.compile(r"fuel\s+(\d+)\s+(\d+) µs \(instantiation (\d+) µs\)")
def cases(language):
    # Per round, each case's (fuel, µs, instantiation µs); the first case of a round
    # pays for a cold pool slot, so it is reported apart.
    rows = []
    for round in range(1, rounds + 1):
        with open(f"{work}/{language}.{round}.txt") as report:
            rows.append([tuple(map(int, m.groups())) for m in map(line.search, report) if m])
    return rows
def medians(rows, first):
    picked = [row[0] for row in rows] if first else [case for row in rows for case in row[1:]]
    return [statistics.median(column) for column in zip(*picked)]
for label, first in (("warm cases (2-10)", False), ("first case (cold slot)", True)):
    rust, python = medians(cases("rust"), first), medians(cases("python"), first)
    print(f"{label}: median of {rounds} rounds")
    for i, name in enumerate(("fuel", "wall µs", "instantiation µs")):
        print(f"  {name:18} rust {rust[i]:>10.0f}  python {python[i]:>10.0f}  ratio {python[i] / max(rust[i], 1):.0f}x")
PY

echo "== 2. under load: POST /v1/payments, $connections connections, ${seconds}s each"
source bench/serve.sh
new_key submitter
cp -r examples/rules "$work/with-python"
cp "$work/python/"* "$work/with-python/"
cp -r "$work/with-python" "$work/with-python-warm"
sed -i '1i isolation = "warm"' "$work/with-python-warm/velocity-risk.toml"
for rules in examples/rules "$work/with-python" "$work/with-python-warm"; do
  name=$(basename "$rules")
  serve "$rules" "$name"
  echo "-- $rules"
  PAYRULES_KEY=$key wrk -t1 -c"$connections" -d"${seconds}s" --latency -s bench/load/submit.lua "$url" \
    | grep -E "Requests/sec|50%|99%|not 201"
  kill -TERM "$pid"; wait "$pid" || true
done
