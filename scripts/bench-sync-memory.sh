#!/usr/bin/env bash
# Agent memory across an OpenLDAP full import: the same run at 10,000 and 100,000 users, the agent
# as its own process (`dirbridge agent sync run --full`) against a real `dirbridge cloud serve` on
# SQLite and a real slapd from the testkit. Prints peak RSS (GNU time) and wall time of each, and
# a paged ldapsearch of the same entries for comparison. Release build.
set -euo pipefail
umask 077
cd "$(dirname "$0")/.."
bash scripts/deps.sh >/dev/null
command -v /usr/bin/time >/dev/null || { apt-get install -y -q time >/dev/null; }
cargo build --release -q -p dirbridge -p dirbridge-testkit
B="$PWD/target/release/dirbridge"
TK="$PWD/target/release/testkit"
SIZES="${SIZES:-10000 100000}"
PORT="${PORT:-18190}"
for N in $SIZES; do
  W=$(mktemp -d /tmp/dirbridge-bench.XXXX)
  chmod 700 "$W"
  "$TK" slapd up --users "$N" --json > "$W/slapd.json" 2> "$W/slapd.log" &
  SLAPD=$!
  for _ in $(seq 1 1200); do python3 -c "import json; json.load(open('$W/slapd.json'))" 2>/dev/null && break; sleep 0.1; done
  j() { python3 -c "import json,sys; d=json.load(open('$W/slapd.json')); print(eval(sys.argv[1]))" "$1"; }
  head -c 24 /dev/urandom | base64 | tr -d '/+=' | sed 's/^/Bn-1/' > "$W/admin.pw"
  printf "%s" "$(j 'd["service_account"]["password"]')" > "$W/svc.pw"
  "$B" cloud init --data-dir "$W/cloud" --tenant bench --admin admin --password-file "$W/admin.pw" >/dev/null
  /usr/bin/time -f "%M" -o "$W/cloud.rss" "$B" cloud serve --data-dir "$W/cloud" --listen "127.0.0.1:$PORT" > "$W/cloud.log" 2>&1 &
  CLOUD=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  export DIRBRIDGE_CONFIG_DIR="$W/cli"
  "$B" login --cloud "http://127.0.0.1:$PORT" --user admin@bench.dirbridge.internal --password-file "$W/admin.pw" >/dev/null
  "$B" cloud domains verify --data-dir "$W/cloud" --tenant bench dirbridge.test >/dev/null
  "$B" agents token create --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['token'])" > "$W/token"
  "$B" agent register --data-dir "$W/agent" --cloud "http://127.0.0.1:$PORT" --token-file "$W/token" >/dev/null
  "$B" agent connector add --data-dir "$W/agent" --name ldap --kind openldap --url "$(j 'd["ldaps_url"]')" \
    --ca-file "$(j 'd["ca_file"]')" --bind-dn "$(j 'd["service_account"]["dn"]')" --base-dn "$(j 'd["base_dn"]')" \
    --include-ou "$(j 'd["synced_root"]')" --password-file "$W/svc.pw" >/dev/null
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$W/agent.rss" "$B" agent sync run --data-dir "$W/agent" --full > "$W/agent.out" 2>&1
  end=$(date +%s.%N)
  rstart=$(date +%s.%N)
  LDAPTLS_CACERT="$(j 'd["ca_file"]')" ldapsearch -LLL -x -H "$(j 'd["ldaps_url"]')" -D "$(j 'd["service_account"]["dn"]')" -y "$W/svc.pw" \
    -b "$(j 'd["synced_root"]')" -E pr=1000/noprompt '(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))' > /dev/null
  rend=$(date +%s.%N)
  pkill -INT -P $CLOUD; wait $CLOUD 2>/dev/null || true
  kill $SLAPD; wait $SLAPD 2>/dev/null || true
  printf '%s users: agent full import %.1f s, agent peak RSS %s MB, cloud peak RSS %s MB; paged ldapsearch of the same entries %.1f s (%s)\n' \
    "$N" "$(echo "$end - $start" | bc)" "$(( $(cat "$W/agent.rss") / 1024 ))" "$(( $(cat "$W/cloud.rss") / 1024 ))" "$(echo "$rend - $rstart" | bc)" "$(tail -1 "$W/agent.out")"
  rm -rf "$W"
done
