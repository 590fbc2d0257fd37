# Shared by the benchmark scripts, sourced as `. scripts/bench-lib.sh EXAMPLE…` from the repository
# root: builds the release binary and examples/EXAMPLE.rs (each one named), sets $bin, $bench (the
# first example), $examples_dir, $port, $database,
# $redis_db and a scratch $dir, prints the machine and date; offers a fresh store and broker per
# run and a background EventFlow that is waited for (killed at exit).

port="${BENCH_PORT:-18100}"
database="${BENCH_DATABASE:-eventflow_bench}"
redis_db="${BENCH_REDIS_DB:-15}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eventflow-target}"
export LOG_LEVEL=warn API_HOST=127.0.0.1
bin="$CARGO_TARGET_DIR/release/eventflow"
examples_dir="$CARGO_TARGET_DIR/release/examples"
bench="$examples_dir/$1"
example_args=()
for example in "$@"; do example_args+=(--example "$example"); done
cargo build --release --quiet --bin eventflow "${example_args[@]}"
dir="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"

# Points DATABASE_URL and REDIS_URL at a fresh store and broker of backend $1 named $2.
fresh_backend() {
    if [ "$1" = embedded ]; then
        export DATABASE_URL="sqlite://$dir/$2.db" REDIS_URL=
    else
        psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database" \
            -c "CREATE DATABASE $database"
        redis-cli -n "$redis_db" FLUSHDB >/dev/null
        export DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$database"
        export REDIS_URL="redis://127.0.0.1:6379/$redis_db"
        "$bin" db upgrade >/dev/null
    fi
}

# Starts `eventflow $*` on $port in the background and waits until it answers.
start() {
    API_PORT="$port" "$bin" "$@" &
    pids+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && return; sleep 0.1; done
    echo "eventflow did not start" >&2
    exit 1
}
