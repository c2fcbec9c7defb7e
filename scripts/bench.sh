#!/usr/bin/env bash
# The benchmarks of issue 6 in one command: builds the release binaries, then runs
# `dirbridge-bench`, which starts the directories with the testkit (10,000 users in Samba AD,
# 100,000 in OpenLDAP; datasets cached under target/testkit-cache/), the cloud on SQLite and on
# PostgreSQL, and the agent, all as their own processes: full sync, delta, API listing, SSPR
# resets with writeback beside ldapmodify/ldappasswd, pass-through sign-in beside ldapwhoami,
# SSPR start load. Prints a table (markdown) and writes JSON. About 12 minutes on the 2-core
# reference machine; see docs/benchmarks.md.
#
#   scripts/bench.sh                                  # everything, JSON to target/bench/latest.json
#   scripts/bench.sh --out /tmp/b.json --openldap-users 10000 --ad-users 0 --databases sqlite
#   scripts/bench.sh --only writeback,sign-in,sspr-start --out /tmp/b.json   # a few minutes
#   scripts/bench.sh --help                           # every option
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh >/dev/null
cargo build --release -q -p dirbridge -p dirbridge-testkit -p dirbridge-bench
args=("$@")
if [[ " ${args[*]:-} " != *" --out "* && " ${args[*]:-} " != *" --help "* && " ${args[*]:-} " != *" -h "* ]]; then
  args+=(--out target/bench/latest.json)
fi
exec target/release/dirbridge-bench --bin-dir target/release "${args[@]}"
