#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests need, when they are missing.
# Services are not started by the packages: tests and the demo start their own throwaway servers.
set -euo pipefail
packages=(
  postgresql-15            # store tests on PostgreSQL (testkit starts its own cluster)
  samba samba-ad-dc winbind krb5-user ldap-utils   # Samba AD DC for the on-prem tests and the demo
  slapd                    # OpenLDAP
  python3-aiosmtpd         # SMTP server for the password reset mail tests (testkit::smtp)
  ca-certificates curl
)
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
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
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
