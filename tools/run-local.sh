#!/usr/bin/env bash
# The run command: installs redis-server if needed, builds, starts Redis + one silo + the gateway on this machine,
# prints the WebSocket URL, and stops everything on Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run="${RUN_DIR:-$root/.run}"   # RUN_DIR: where Redis data and logs go (tests use a temporary one)
mkdir -p "$run"

tools/ensure-redis.sh

: "${REDIS_PORT:=6380}"
: "${PORT:=8080}"
: "${SILO_PORT:=11111}"
: "${GATEWAY_PORT:=30000}"
# SILO_HTTP_PORT: unset, the silo derives it from SILO_PORT (8081 for 11111).
: "${DRAIN_GRACE_SECONDS:=5}"   # locally, Ctrl+C should not wait 20 s for calls
export REDIS_URL="${REDIS_URL:-127.0.0.1:$REDIS_PORT}"
export CLUSTER_ID="${CLUSTER_ID:-rtaa-ingest}" SERVICE_ID="${SERVICE_ID:-rtaa-ingest}"
export SUPPORT_EXOTEL="${SUPPORT_EXOTEL:-true}"
export EXOTEL_BASIC_AUTH_USER="${EXOTEL_BASIC_AUTH_USER:-exotel}"
export EXOTEL_BASIC_AUTH_PASS="${EXOTEL_BASIC_AUTH_PASS:-local-exotel-secret}"
export JWT_SECRET="${JWT_SECRET:-local-development-secret-at-least-32-bytes}"
export SILO_ADVERTISED_IP="${SILO_ADVERTISED_IP:-127.0.0.1}"
# CONTRACT §2: a local run listens on loopback only (its secrets are public defaults); LISTEN_ADDRESS=0.0.0.0 opens it.
export LISTEN_ADDRESS="${LISTEN_ADDRESS:-127.0.0.1}"
export PORT SILO_PORT GATEWAY_PORT DRAIN_GRACE_SECONDS
[[ -n "${SILO_HTTP_PORT:-}" ]] && export SILO_HTTP_PORT

# Every child runs in its own session (setsid), so a terminal's Ctrl+C reaches only this script, which then stops
# them in order: the gateway drains, the silo leaves the cluster (it needs Redis for that), Redis goes last.
redis_pid="" silo_pid="" gateway_pid=""

# stop PID NAME SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL; never leaves the process behind.
stop() {
  local pid=$1 name=$2 seconds=$3
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((t = 0; t < seconds * 10; t++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  say "$name did not stop within ${seconds} s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Messages while stopping must not stop the stopping: when the output is a pipe whose reader died with the same
# Ctrl+C (run-local.sh | tee log), a plain echo would end this script by SIGPIPE (or by set -e) and orphan the children.
say() { { printf '%s\n' "$*"; } 2>/dev/null || true; }

cleanup() {
  # A second Ctrl+C while stopping is ignored: stopping is already bounded (under 30 s in all).
  trap '' INT TERM HUP PIPE
  set +e
  say ""; say "stopping..."
  stop "$gateway_pid" gateway $((DRAIN_GRACE_SECONDS + 8))
  stop "$silo_pid" silo 12
  stop "$redis_pid" redis 3
  say "stopped"
}
trap cleanup EXIT
# First thing on Ctrl+C: ignore further ones, so a second press cannot interrupt the cleanup and orphan a child.
trap 'trap "" INT TERM HUP; exit 130' INT TERM HUP

if [[ "$REDIS_URL" == "127.0.0.1:$REDIS_PORT" ]] && ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$run" --appendonly yes --save "" >"$run/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

configuration="${CONFIGURATION:-Release}"
# RUN_LOCAL_SKIP_BUILD=1: use what is built (the Ctrl+C test runs this script while its own build is loaded).
if [[ "${RUN_LOCAL_SKIP_BUILD:-}" != 1 ]]; then
  echo "building..."
  dotnet build Orleans.Ingest.sln -c "$configuration" -nologo -v quiet
fi
# Each role gets only its secrets: a silo checks no Exotel credential and no native token. Its dashboard, when on,
# takes the admin key alone (locally, unless ADMIN_JWT_SECRET is set, the key the gateway checks admin tokens with).
silo_admin_key=()
if [[ "${ORLEANS_DASHBOARD:-false}" == true && -z "${ADMIN_JWT_SECRET:-}" ]]; then
  silo_admin_key=("ADMIN_JWT_SECRET=$JWT_SECRET")
fi
env -u EXOTEL_BASIC_AUTH_USER -u EXOTEL_BASIC_AUTH_PASS -u JWT_SECRET "${silo_admin_key[@]}" \
  setsid dotnet "Silo/bin/$configuration/net10.0/Ingest.Silo.dll" >"$run/silo.log" 2>&1 &
silo_pid=$!
setsid dotnet "Gateway/bin/$configuration/net10.0/Ingest.Gateway.dll" >"$run/gateway.log" 2>&1 &
gateway_pid=$!

# No curl on a bare Debian: ask /readyz over bash's /dev/tcp.
ready() {
  { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
  printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  local status; status=$(head -n 1 <&3); exec 3>&-
  [[ "$status" == *" 200 "* ]]
}
for _ in $(seq 120); do ready && break; sleep 0.5; done
ready || { echo "gateway not ready; see $run/gateway.log and $run/silo.log"; exit 1; }

cat <<MSG

Orleans.Ingest is running.
  WebSocket (Exotel):  ws://$EXOTEL_BASIC_AUTH_USER:$EXOTEL_BASIC_AUTH_PASS@127.0.0.1:$PORT/v1/ingest
  health / metrics:    http://127.0.0.1:$PORT/readyz   http://127.0.0.1:$PORT/metrics
  Redis:               redis-cli -u redis://$REDIS_URL XRANGE ingest:calls - +
  simulated call:      dotnet run --project tools/ingestctl -- simulate --url ws://127.0.0.1:$PORT/v1/ingest --user $EXOTEL_BASIC_AUTH_USER --pass $EXOTEL_BASIC_AUTH_PASS
  admin token:         dotnet run --project tools/ingestctl -- token --role admin   (with this JWT_SECRET exported; README: the walk-through)
  logs:                $run/gateway.log  $run/silo.log
Press Ctrl+C to stop.
MSG
# Returns when a child exits (then the EXIT trap stops the rest) or at once on Ctrl+C (the INT trap).
wait -n "$silo_pid" "$gateway_pid" || true
