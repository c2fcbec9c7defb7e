#!/usr/bin/env bash
# Debian packages the testkit's real directories need (Debian 12 / bookworm):
#   samba, samba-ad-dc   the `samba` AD DC binary and its ldb modules
#   samba-common-bin     samba-tool (provisioning)
#   python3-samba        Samba's Python bindings (the offline dataset loader)
#   slapd                OpenLDAP slapd, slapadd, back_mdb/ppolicy/syncprov modules, schema
#   ldap-utils           ldapsearch/ldapmodify, only for debugging by hand
# Debian starts a system slapd on 0.0.0.0:389 when the package is installed on a machine with
# an init system; the fixtures need 127.x.y.z:389/636 free, so it is stopped here.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  samba samba-ad-dc samba-common-bin python3-samba slapd ldap-utils
if command -v service >/dev/null && service slapd status >/dev/null 2>&1; then
  service slapd stop || true
fi
