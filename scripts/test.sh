#!/usr/bin/env bash
# The whole test suite, as CI runs it: packages, formatting, lints, then every test against real
# servers (PostgreSQL, Samba AD DC, OpenLDAP) that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast "$@"
