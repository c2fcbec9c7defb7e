#!/usr/bin/env bash
# Installs the Debian packages the demo, the tests and the benchmarks need, when they are missing,
# then checks by function that what the code calls is really there (a package can be installed
# and still lack a part: samba-ad-dc without its Recommends has no AD schema files).
# The list is scripts/requirements.tsv; nothing is installed that is not named there.
# Services are not started by the packages: tests and the demo start their own throwaway servers.
#
#   bash scripts/deps.sh            install what is missing, then check (as root)
#   bash scripts/deps.sh --check    only check; exit 1 naming the first missing piece
set -euo pipefail
cd "$(dirname "$0")/.."
table="${DIRBRIDGE_REQUIREMENTS:-scripts/requirements.tsv}"
check_only=0
[ "${1:-}" = --check ] && check_only=1

rows() { grep -v -e '^#' -e '^[[:space:]]*$' "$table"; }

# One row: kind, what, package. Succeeds when the machine has it.
have() {
  case "$1" in
    program) command -v "$2" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$2" >/dev/null 2>&1 ;;
    path) [ -x "$2" ] ;;
    file) [ -f "$2" ] ;;
    python) /usr/bin/python3 -c "import $2" >/dev/null 2>&1 ;;
    user) getent passwd "$2" >/dev/null 2>&1 ;;
    *) echo "error: $table: unknown kind '$1'" >&2; return 2 ;;
  esac
}

if [ "$check_only" = 0 ]; then
  mapfile -t packages < <(rows | cut -f3 | grep -v '^(' | sort -u)
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "Installing missing Debian packages: ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
      echo "error: run as root (or install these packages first): ${missing[*]}" >&2
      exit 1
    fi
    # Keep package scripts from starting system-wide services that would take the fixed LDAP ports.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Every package is named explicitly, so Recommends are not needed (and not wanted).
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  fi
fi

# The page checks of the browser tests (axe-core, html-validate) from the npm registry, pinned by
# tools/web-check/package-lock.json; reinstalled when the lock file changes.
if [ "$check_only" = 0 ] && command -v npm >/dev/null 2>&1; then
  lock=tools/web-check/package-lock.json
  if ! cmp -s "$lock" tools/web-check/node_modules/.lock-copy 2>/dev/null; then
    echo "Installing the web page checks (npm ci in tools/web-check)"
    npm ci --prefix tools/web-check --no-audit --no-fund --loglevel=error >/dev/null
    cp "$lock" tools/web-check/node_modules/.lock-copy
  fi
fi

# schemathesis (the API contract test) from PyPI into its own virtual environment, pinned with
# every dependency by tools/schemathesis/requirements.txt; reinstalled when that file changes.
if [ "$check_only" = 0 ]; then
  venv=tools/schemathesis/.venv
  pins=tools/schemathesis/requirements.txt
  if ! cmp -s "$pins" "$venv/.requirements-copy" 2>/dev/null; then
    echo "Installing schemathesis (pip, into $venv)"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$pins"
    cp "$pins" "$venv/.requirements-copy"
  fi
fi

# Check by function: every row, one line naming the first missing piece and its package.
while IFS=$'\t' read -r kind what package used_by; do
  if ! have "$kind" "$what"; then
    echo "error: missing $kind '$what' (package $package; used by $used_by): run 'bash scripts/deps.sh' as root, or 'apt-get install $package'" >&2
    exit 1
  fi
done < <(rows)

[ "$check_only" = 1 ] && exit 0

# A distribution slapd or samba started by a package would hold port 389 on every address.
for svc in slapd samba-ad-dc smbd nmbd winbind; do
  if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done
if ! command -v cargo-nextest >/dev/null && ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest is missing: installing it from crates.io"
  cargo install --locked cargo-nextest
fi
