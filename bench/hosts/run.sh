#!/usr/bin/env bash
# Several hosts on PostgreSQL against one host on SQLite: the real `payrules serve` on
# loopback with the example rules, driven by wrk, all in one run so the ratios hold on a
# noisy machine.
#
#   PAYRULES_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres \
#     bench/hosts/run.sh [SECONDS] [CONNECTIONS] [shared|split]
#
# PAYRULES_BENCH_POSTGRES names a role that may create databases (its password, if it
# needs one, in PGPASSWORD); each run makes its own databases and drops them. Needs a
# release build, wrk and psql.
#
# `shared` (the default): every host, the database server and wrk share this machine's
# cores; the figures say what one machine does, not what N machines would. `split`: the
# database server's processes (every `postgres` process on this machine, which this user
# must be allowed to re-pin: its owner or root) are pinned to the last core, and the
# hosts and wrk to the others, for every layout, SQLite's too: each host gets the same
# cores as the SQLite host does, and the database its own, as when it runs on a server
# of its own (needs taskset; the pinning is undone at the end).
#
#   1. one host, SQLite (the embedded default): the baseline;
#   2. one host, PostgreSQL;
#   3. two hosts, one PostgreSQL database, each driven by its own wrk with half the
#      connections;
#   4. the same two hosts' work on two databases of the same server: no chain head
#      shared — the most per-host chains joined by checkpoints could give (their
#      checkpoint entries aside), measured without building them.
# For each, the CPU time the hosts and the database server's processes (every `postgres`
# process on this machine: run no other cluster meanwhile) spent during the run, per
# decision answered, from /proc.
# After each, the hosts stop and `payrules audit verify` checks that the chain is intact
# and holds a decision for every 201 counted. During 2 and 3, one psql session samples
# the database's sessions every 20 ms (`pg_stat_activity`): how often a host's writer
# waits for the chain's head row (locked by another transaction), holds it, or neither —
# what the single head costs.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-32}
layout=${3:-shared}
bin=target/release/payrules
admin=${PAYRULES_BENCH_POSTGRES:?set PAYRULES_BENCH_POSTGRES to a PostgreSQL role that may create databases}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
command -v psql >/dev/null || { echo "needs psql: apt-get install postgresql-client" >&2; exit 1; }
work=$(mktemp -d)
databases=()
all_cores="0-$(( $(nproc) - 1 ))"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for db in "${databases[@]}"; do psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done
  if [ "$layout" = split ]; then
    for p in $(pgrep -x postgres || true); do taskset -a -p -c "$all_cores" "$p" >/dev/null || true; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
case "$layout" in
  shared) ;;
  split)
    command -v taskset >/dev/null || { echo "needs taskset: apt-get install util-linux" >&2; exit 1; }
    last=$(( $(nproc) - 1 ))
    [ "$last" -ge 1 ] || { echo "split needs two cores or more" >&2; exit 1; }
    # Backends forked later inherit the postmaster's core.
    for p in $(pgrep -x postgres); do taskset -a -p -c "$last" "$p" >/dev/null; done
    taskset -p -c "0-$(( last - 1 ))" $$ >/dev/null
    echo "== the database server on core $last; the hosts and wrk on cores 0-$(( last - 1 ))"
    ;;
  *) echo "the layout is shared or split, not $layout" >&2; exit 1 ;;
esac
source bench/serve.sh
new_key submitter
"$bin" audit new-key --key-file "$work/audit.key" >/dev/null
"$bin" keys new-master-key --key-file "$work/master.key" >/dev/null

# A host of a PostgreSQL database (bench/serve.sh's `serve`), its own files in $work/NAME.
serve_pg() { # NAME DATABASE
  mkdir -p "$work/$1"
  serve examples/rules "$1" \
    "$(printf 'url = "%s"\nlocal_dir = "%s"\n%s' "${admin%/*}/$2" "$work/$1" \
        "${PGPASSWORD:+password_env = \"PGPASSWORD\"}")" \
    "$(printf '[audit]\nkey_file = "%s"\n[personal_data]\nmaster_key_file = "%s"' \
        "$work/audit.key" "$work/master.key")"
}

# Samples DATABASE's writers (application_name `payrules writer`, one per host) every
# 20 ms until killed -> $work/NAME.waits: per sample, the writers waiting for the head
# row's lock, and those in a transaction past it (holding the head: running their
# statements, or idle in transaction between round trips).
sample_head() { # NAME DATABASE
  psql -qAt "${admin%/*}/$2" >"$work/$1.waits" 2>/dev/null <<'SQL' &
SELECT count(*) FILTER (WHERE wait_event_type = 'Lock' AND query LIKE '%audit_head%'),
       count(*) FILTER (WHERE state <> 'idle'
                        AND NOT (wait_event_type = 'Lock' AND query LIKE '%audit_head%'))
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'payrules writer'
\watch 0.02
SQL
  sampler=$!
}

head_report() { # NAME
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  awk -F'|' -v name="$1" 'NF == 2 {
      n++; if ($1 > 0) waiting++; if ($2 > 0) held++; w += $1
    } END {
      if (n) printf "  [%s] head row: %d samples; a writer waited for it in %.1f%% (mean %.2f waiting), it was held in %.1f%%\n",
        name, n, 100 * waiting / n, w / n, 100 * held / n
    }' "$work/$1.waits"
}

# CPU seconds (user + system) of PIDS, from /proc (processes gone are not counted).
cpu_of() { # PIDS...
  local pid ticks=0 t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
    ticks=$(( ticks + ${t:-0} ))
  done
  echo "$ticks"
}
database_pids() { pgrep -x postgres || true; }
cpu_start() { # HOST_PIDS...
  cpu_hosts=$(cpu_of "$@"); cpu_db=$(cpu_of $(database_pids))
}
cpu_report() { # NAME ANSWERED HOST_PIDS...
  local name=$1 answered=$2; shift 2
  local hosts db hz
  hosts=$(( $(cpu_of "$@") - cpu_hosts )); db=$(( $(cpu_of $(database_pids)) - cpu_db ))
  hz=$(getconf CLK_TCK)
  awk -v n="$name" -v h="$hosts" -v d="$db" -v a="$answered" -v hz="$hz" 'BEGIN {
    printf "  [%s] CPU per decision: hosts %.3f ms, database server %.3f ms\n", n, 1000 * h / hz / a, 1000 * d / hz / a }'
}

drive() { # NAME URL CONNECTIONS -> $work/NAME.wrk
  PAYRULES_KEY=$key PAYRULES_LOAD_PREFIX="$1-" wrk -t1 -c"$3" -d"${seconds}s" --latency \
    -s bench/load/submit.lua "$2" >"$work/$1.wrk"
}

# Two hosts driven at once, half the connections each, their CPU counted from the start.
drive_two() { # NAME_A URL_A PID_A NAME_B URL_B PID_B
  cpu_start "$3" "$6"
  drive "$1" "$2" $(( connections / 2 )) & local wrk_a=$!
  drive "$4" "$5" $(( connections / 2 )) & local wrk_b=$!
  wait "$wrk_a" "$wrk_b"
}

report() { # NAME
  grep -E "requests in|Requests/sec|50%|99%|not 201|Socket errors" "$work/$1.wrk" | sed "s/^/  [$1] /"
}

answered() { sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/$1.wrk"; }

check() { # VERDICT ANSWERED HOSTS
  echo "  $1"
  local entries
  entries=$(echo "$1" | sed -n 's/.*intact, \([0-9]*\) entries.*/\1/p')
  # One entry per decision plus each host's `rules.loaded`.
  if [ -z "$entries" ] || [ "$entries" -lt $(( $2 + $3 )) ]; then
    echo "FAIL: wrk counted $2 answers; the store holds $(( ${entries:-0} - $3 )) decisions" >&2
    exit 1
  fi
}

echo "== 1. one host, SQLite"
serve examples/rules sqlite
cpu_start "$pid"
drive sqlite "$url" "$connections"
report sqlite
cpu_report sqlite "$(answered sqlite)" "$pid"
kill -TERM "$pid"; wait "$pid" || true
check "$("$bin" audit verify --store "$work/sqlite.db")" "$(answered sqlite)" 1

echo "== 2. one host, PostgreSQL"
db="payrules_bench_$$_one"; databases+=("$db")
psql -q "$admin" -c "CREATE DATABASE $db"
serve_pg pg-one "$db"
sample_head pg-one "$db"
cpu_start "$pid"
drive pg-one "$url" "$connections"
head_report pg-one
report pg-one
cpu_report pg-one "$(answered pg-one)" "$pid"
kill -TERM "$pid"; wait "$pid" || true
check "$("$bin" audit verify --config "$work/pg-one.toml")" "$(answered pg-one)" 1

echo "== 3. two hosts, one PostgreSQL database"
db="payrules_bench_$$_two"; databases+=("$db")
psql -q "$admin" -c "CREATE DATABASE $db"
serve_pg pg-a "$db"; pid_a=$pid; url_a=$url
serve_pg pg-b "$db"; pid_b=$pid; url_b=$url
sample_head pg-two "$db"
drive_two pg-a "$url_a" "$pid_a" pg-b "$url_b" "$pid_b"
head_report pg-two
report pg-a
report pg-b
cpu_report pg-two "$(( $(answered pg-a) + $(answered pg-b) ))" "$pid_a" "$pid_b"
kill -TERM "$pid_a" "$pid_b"; wait "$pid_a" || true; wait "$pid_b" || true
both=$(( $(answered pg-a) + $(answered pg-b) ))
check "$("$bin" audit verify --config "$work/pg-a.toml")" "$both" 2
echo "  two hosts together: $(awk '/Requests\/sec/ {s += $2} END {printf "%.0f", s}' "$work/pg-a.wrk" "$work/pg-b.wrk") requests/s"

echo "== 4. two hosts, two databases of one PostgreSQL server (no head shared)"
db_c="payrules_bench_$$_c"; db_d="payrules_bench_$$_d"; databases+=("$db_c" "$db_d")
psql -q "$admin" -c "CREATE DATABASE $db_c"
psql -q "$admin" -c "CREATE DATABASE $db_d"
serve_pg pg-c "$db_c"; pid_c=$pid; url_c=$url
serve_pg pg-d "$db_d"; pid_d=$pid; url_d=$url
drive_two pg-c "$url_c" "$pid_c" pg-d "$url_d" "$pid_d"
report pg-c
report pg-d
cpu_report pg-apart "$(( $(answered pg-c) + $(answered pg-d) ))" "$pid_c" "$pid_d"
kill -TERM "$pid_c" "$pid_d"; wait "$pid_c" || true; wait "$pid_d" || true
check "$("$bin" audit verify --config "$work/pg-c.toml")" "$(answered pg-c)" 1
check "$("$bin" audit verify --config "$work/pg-d.toml")" "$(answered pg-d)" 1
echo "  two hosts apart: $(awk '/Requests\/sec/ {s += $2} END {printf "%.0f", s}' "$work/pg-c.wrk" "$work/pg-d.wrk") requests/s"
