# Sourced first by the bench scripts (from the repository's top): the release binary and
# wrk are there, a scratch directory `work` removed at exit with every process started.
bin=target/release/payrules
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
