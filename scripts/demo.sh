#!/usr/bin/env bash
# The demo: the seed walkthrough's cloud half on this machine. A throwaway tenant on embedded
# SQLite, a premium trial, sample users with usage locations, licences assigned, the password
# reset policy on. Prints the URL and the sample users, then serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build -q -p dirbridge
B="$PWD/target/debug/dirbridge"
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
trap 'kill $SERVER 2>/dev/null || true' EXIT
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
"$B" policy set --enabled-for all >/dev/null
"$B" licenses list
"$B" users list

cat <<INFO

dirbridge demo is running.
  Cloud API:      $URL/api/v1   (OpenAPI: $URL/openapi.json, health: $URL/healthz)
  Admin:          $ADMIN   password in $DEMO/admin-password
  Sample users:   ada@, grace@, nils@, ingrid@contoso.dirbridge.internal   password in $DEMO/user-password
  CLI:            DIRBRIDGE_CONFIG_DIR=$DEMO/cli $B users list
The self-service portal, sync from Samba AD and password writeback arrive with the next issues.
Press Ctrl-C to stop.
INFO
wait $SERVER
