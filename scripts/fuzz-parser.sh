#!/usr/bin/env bash
# Fuzzes the event parser with libFuzzer (coverage-guided) for SECONDS (default 300), starting
# from fuzz/corpus/parse_event; a crash leaves its input in fuzz/artifacts/parse_event. Needs the
# nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz when missing.
# The same target runs on stable, without coverage guidance, in `cargo test --test parser_fuzz`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# A working copy of the corpus, so that what libFuzzer adds stays out of the repository.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp corpus/parse_event/* "$work/"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/eventflow-fuzz-target}"
cargo +nightly fuzz run parse_event "$work" -- -max_total_time="$seconds" -max_len=4096
