#!/usr/bin/env bash
# The demo: the seed walkthrough on this machine. A throwaway tenant on embedded SQLite, a premium
# trial, sample users with usage locations, licences assigned, the password reset policy on; a
# throwaway Samba AD DC with the least-privilege service account, the agent registered and synced.
# Prints the URL and the sample users, then serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build -q -p dirbridge -p dirbridge-testkit
B="$PWD/target/debug/dirbridge"
TK="$PWD/target/debug/testkit"
DEMO="$PWD/.demo"
PORT="${DIRBRIDGE_DEMO_PORT:-8080}"
URL="http://127.0.0.1:$PORT"
rm -rf "$DEMO"
mkdir -p "$DEMO"
chmod 700 "$DEMO"
export DIRBRIDGE_CONFIG_DIR="$DEMO/cli"

# The admin password lives in a 0600 file, never on a command line.
umask 077
head -c 18 /dev/urandom | base64 | tr -d '/+=' | sed 's/^/Db-1/' > "$DEMO/admin-password"
head -c 18 /dev/urandom | base64 | tr -d '/+=' | sed 's/^/Us-2/' > "$DEMO/user-password"

"$B" cloud init --data-dir "$DEMO/cloud" --tenant contoso --admin admin --password-file "$DEMO/admin-password"
ADMIN="admin@contoso.dirbridge.internal"
"$B" cloud serve --data-dir "$DEMO/cloud" --listen "127.0.0.1:$PORT" > "$DEMO/cloud.log" 2>&1 &
SERVER=$!
PIDS="$SERVER"
trap 'kill $PIDS 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { echo "the cloud did not start; see $DEMO/cloud.log" >&2; cat "$DEMO/cloud.log" >&2; exit 1; }
  sleep 0.1
done
"$B" login --cloud "$URL" --user "$ADMIN" --password-file "$DEMO/admin-password"

echo "== Premium trial (100 licences, 90 days), as in the seed"
"$B" licenses trial
echo "== Sample users; usage location is set before assignment, as the seed says"
for spec in "ada:Ada Lovelace:GB" "grace:Grace Hopper:US" "nils:Nils Hansen:NO" "ingrid:Ingrid Berg:SE"; do
  IFS=: read -r name display country <<<"$spec"
  "$B" users create --upn "$name@contoso.dirbridge.internal" --display-name "$display" \
    --usage-location "$country" --password-file "$DEMO/user-password" --output json >/dev/null
  "$B" licenses assign --user "$name@contoso.dirbridge.internal" --sku DIRBRIDGE_PREMIUM >/dev/null
done
"$B" users create --upn "nolocation@contoso.dirbridge.internal" --display-name "No Location" --output json >/dev/null
echo "== Assigning a licence to a user without a usage location is refused:"
"$B" licenses assign --user nolocation@contoso.dirbridge.internal --sku DIRBRIDGE_PREMIUM || true
echo "== Enable the password reset policy for everyone"
"$B" policy set --enabled-for all --writeback true >/dev/null

echo "== A throwaway Samba AD DC with sample users and the least-privilege MSOL_ service account"
"$TK" samba up --users 200 --grant-deleted-objects --json > "$DEMO/samba.json" 2> "$DEMO/samba.log" &
PIDS="$PIDS $!"
json() { python3 -c "import json,sys; d=json.load(open('$DEMO/samba.json')); print(eval(sys.argv[1]))" "$1"; }
for _ in $(seq 1 600); do
  python3 -c "import json; json.load(open('$DEMO/samba.json'))" 2>/dev/null && break
  sleep 0.2
done
json 'd["ldaps_url"]' >/dev/null || { echo "Samba did not start; see $DEMO/samba.log" >&2; cat "$DEMO/samba.log" >&2; exit 1; }
json 'd["service_account"]["password"]' > "$DEMO/msol-password"
SAMPLE_LOGIN=$(json 'd["sample_user"]["login"]')
json 'd["sample_user"]["password"]' > "$DEMO/sample-user-password"
echo "== The agent: registered with a one-time token, an AD connector, a full sync"
"$B" cloud domains verify --data-dir "$DEMO/cloud" --tenant contoso dirbridge.test >/dev/null
"$B" agents token create --output json | python3 -c "import json,sys; print(json.load(sys.stdin)['token'])" > "$DEMO/agent-token"
"$B" agent register --data-dir "$DEMO/agent" --cloud "$URL" --token-file "$DEMO/agent-token" --name demo-agent
rm -f "$DEMO/agent-token"
"$B" agent connector add --data-dir "$DEMO/agent" --name corp --kind ad \
  --url "$(json 'd["ldaps_url"]')" --ca-file "$(json 'd["ca_file"]')" \
  --bind-dn "$(json 'd["service_account"]["dn"]')" --base-dn "$(json 'd["base_dn"]')" \
  --include-ou "$(json 'd["synced_root"]')" --password-file "$DEMO/msol-password"
"$B" agent connector test --data-dir "$DEMO/agent"
"$B" agent sync run --data-dir "$DEMO/agent" --full
echo "== Password writeback: the cloud administrator and the directory credential are checked separately, then the service account's rights"
"$B" agent writeback enable --data-dir "$DEMO/agent" --admin "$ADMIN" --password-file "$DEMO/admin-password"
"$B" agent run --data-dir "$DEMO/agent" > "$DEMO/agent.log" 2>&1 &
PIDS="$PIDS $!"
echo "== Pass-through sign-in: the synced user signs in with the on-prem password, checked by the agent"
for _ in $(seq 1 30); do
  if DIRBRIDGE_CONFIG_DIR="$DEMO/cli-user" "$B" login --cloud "$URL" --user "$SAMPLE_LOGIN" \
      --password-file "$DEMO/sample-user-password" 2> "$DEMO/login.err"; then
    break
  fi
  sleep 1   # the agent is still connecting its push socket
done
cat "$DEMO/login.err" >&2
"$B" licenses assign --user "$SAMPLE_LOGIN" --sku DIRBRIDGE_PREMIUM || echo "(the sample user has no usage location: set one with dirbridge users update)"
"$B" licenses list
"$B" users list --source onPremises --limit 10
"$B" sync runs --limit 3

cat <<INFO

dirbridge demo is running.
  Portal:         $URL/   (sign in with any user below; the synced user's password is checked by the agent)
  Cloud API:      $URL/api/v1   (OpenAPI: $URL/openapi.json, health: $URL/healthz)
  Admin:          $ADMIN   password in $DEMO/admin-password
  Admin portal:   $URL/admin   (sign in at $URL/ as the admin; users, licences, policy, on-premises, audit)
  Sample users:   ada@, grace@, nils@, ingrid@contoso.dirbridge.internal   password in $DEMO/user-password
  Synced user:    $SAMPLE_LOGIN   password in $DEMO/sample-user-password (on-prem; signs in
                  through the agent: $B login --user $SAMPLE_LOGIN)
  Samba AD:       $(json 'd["ldaps_url"]')   CA $(json 'd["ca_file"]')
  Agent:          data in $DEMO/agent, delta sync every 15 s (log $DEMO/agent.log)
  CLI:            DIRBRIDGE_CONFIG_DIR=$DEMO/cli $B users list --source onPremises
Change a user in Samba (samba-tool needs -H ldaps://… with the admin in $DEMO/samba.json) and see it
in the cloud within seconds. Password writeback is on: reset the synced user's on-prem password with
  DIRBRIDGE_CONFIG_DIR=$DEMO/cli $B users reset-password $SAMPLE_LOGIN --password-file <file>
or through the self-service API ($URL/api/v1/sspr/start, docs/api.md); events:
  $B agent events --data-dir $DEMO/agent --tracking-id <id>.
Press Ctrl-C to stop.
INFO
wait $SERVER
