#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis (PyPI) from its own OpenAPI document: thousands of
# generated requests, valid and not, against `eventflow serve` with an API key. It fails on any
# 5xx, on a status code, content type, header or body the document does not declare, on a
# request the document forbids being accepted, and on a protected operation answering without
# its key. Usage: scripts/fuzz-api.sh [SECONDS]   (pip install schemathesis==4.32.5)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/eventflow-target}"
cargo build --quiet --bin eventflow
port="${FUZZ_PORT:-18400}"
key="fuzz-$(date +%s%N)"
dir="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
(cd "$dir" && API_HOST=127.0.0.1 API_PORT="$port" API_KEYS="$key" LOG_LEVEL=warn \
    DATABASE_URL="sqlite://$dir/eventflow.db" REDIS_URL= \
    exec "$CARGO_TARGET_DIR/debug/eventflow" serve) &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done
NO_COLOR=1 python3 scripts/schemathesis_cli.py --config-file scripts/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $key" \
    --max-time "$seconds" --workers 2
