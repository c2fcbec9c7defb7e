#!/usr/bin/env bash
# Builds the large test datasets from an empty cache and prints how long each phase took:
# 10,000 users in Samba AD, 100,000 users in OpenLDAP. The figures go to docs/benchmarks.md
# ("Test datasets"). Needs the Debian packages scripts/deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "samba: $(samba -V)   slapd: $(slapd -VV 2>&1 | head -1 | sed 's/.*slapd //; s/ (.*//')"
cargo test -p dirbridge-testkit --test datasets --release -- --ignored --nocapture --test-threads=1 2>&1 \
  | grep -E "dataset users=|^test |test result"
