#!/usr/bin/env bash
# Starts a 3-node, 2-region Garret cluster on this machine (eu: 1 node, us: 2),
# each node with its own config, data dir and ports under $DEMO_DIR.
# The first node bootstraps; the others join it by gossip. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/garretd}
DEMO_DIR=${DEMO_DIR:-$(mktemp -d /tmp/garret-demo.XXXXXX)}
SECRET=$("$BIN" gen-secret)
JWT=$(head -c 64 /dev/urandom | base64 -w0)

write_config() { # name region http-port gossip-port join
  cat > "$DEMO_DIR/$1.toml" <<TOML
listen = "127.0.0.1:$3"
data-dir = "$DEMO_DIR/$1"
[jwt.signing]
token-hs256-secret-base64 = "$JWT"
[cluster]
node-name = "$1"
region = "$2"
secret = "$SECRET"
gossip-listen = "127.0.0.1:$4"
join = [$5]
TOML
}
write_config eu-1 eu 8081 7946 ""
write_config us-1 us 8082 7947 '"127.0.0.1:7946"'
write_config us-2 us 8083 7948 '"127.0.0.1:7946"'

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for n in eu-1 us-1 us-2; do
  "$BIN" -f "$DEMO_DIR/$n.toml" 2> "$DEMO_DIR/$n.log" & pids+=($!)
  sleep 1
done
TOKEN=$("$BIN" make-token -f "$DEMO_DIR/eu-1.toml" --sub demo --validity '1 day' \
  --pull '*' --push '*' --create-cache '*' --configure-cache '*' --delete '*' --cluster-admin)
echo "$TOKEN" > "$DEMO_DIR/token"
cat <<MSG
Garret demo cluster (logs and configs in $DEMO_DIR):
  eu-1  http://127.0.0.1:8081/   (bootstrapped)
  us-1  http://127.0.0.1:8082/   (joined 127.0.0.1:7946)
  us-2  http://127.0.0.1:8083/   (joined 127.0.0.1:7946)
Token (all permissions): $DEMO_DIR/token
Try: create a cache on us-2, read it from eu-1:
  curl -X POST -H "Authorization: Bearer \$(cat $DEMO_DIR/token)" http://127.0.0.1:8083/_api/v1/cache-config/demo \\
    -d '{"keypair":"Generate","is_public":true,"store_dir":"/nix/store","priority":41,"upstream_cache_key_names":[]}'
  curl http://127.0.0.1:8081/demo/nix-cache-info
Ctrl-C stops the cluster.
MSG
wait
