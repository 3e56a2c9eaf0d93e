# Sourced by the bench scripts: the real `payrules serve` on loopback, on a config of its
# own. Needs `bin` (the binary) and `work` (a scratch directory) set.
#
#   new_key ROLE...          sets `key` (a new API key with these roles) and `key_roles`
#   serve RULES_DIR NAME [STORE [MORE]]
#                            starts the service on $work/NAME.db, or on the `[store]` lines
#                            STORE (followed by the TOML tables MORE); sets `pid` and `url`

new_key() {
  local args=() role
  for role in "$@"; do args+=(--role "$role"); done
  key=$("$bin" keys new --name bench "${args[@]}" | sed -n 's/^# \(pr_.*\)$/\1/p')
  key_roles=$(printf '"%s", ' "$@"); key_roles="[${key_roles%, }]"
}

serve() {
  local store="${3:-}"
  if [ -z "$store" ]; then store="path = \"$work/$2.db\""; fi
  cat >"$work/$2.toml" <<TOML
listen = "127.0.0.1:0"
rules_dir = "$1"
[store]
$store
${4:-}
[log]
level = "warn"
[[api_keys]]
name = "bench"
sha256 = "$(printf %s "$key" | sha256sum | cut -d' ' -f1)"
roles = $key_roles
TOML
  "$bin" serve --config "$work/$2.toml" >"$work/$2.out" 2>"$work/$2.err" &
  pid=$!
  url=
  # A component compiled for the first time (an 18 MB Python rule: ≈10 s) delays the start.
  for _ in $(seq 600); do
    url=$(sed -n 's/^payrules listening on //p' "$work/$2.out")
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "the service did not start:" >&2; cat "$work/$2.err" >&2; exit 1
}
