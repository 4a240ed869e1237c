#!/usr/bin/env bash
# The run command: installs redis-server if needed, builds, starts Redis + one silo + the gateway on this machine,
# prints the WebSocket URL, and stops everything on Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run="$root/.run"
mkdir -p "$run"

tools/ensure-redis.sh

: "${REDIS_PORT:=6380}"
: "${PORT:=8080}"
: "${SILO_PORT:=11111}"
: "${GATEWAY_PORT:=30000}"
: "${SILO_HTTP_PORT:=8081}"
export REDIS_URL="${REDIS_URL:-127.0.0.1:$REDIS_PORT}"
export CLUSTER_ID="${CLUSTER_ID:-rtaa-ingest}" SERVICE_ID="${SERVICE_ID:-rtaa-ingest}"
export SUPPORT_EXOTEL="${SUPPORT_EXOTEL:-true}"
export EXOTEL_BASIC_AUTH_USER="${EXOTEL_BASIC_AUTH_USER:-exotel}"
export EXOTEL_BASIC_AUTH_PASS="${EXOTEL_BASIC_AUTH_PASS:-local-exotel-secret}"
export JWT_SECRET="${JWT_SECRET:-local-development-secret-at-least-32-bytes}"
export SILO_ADVERTISED_IP="${SILO_ADVERTISED_IP:-127.0.0.1}"
export PORT SILO_PORT GATEWAY_PORT SILO_HTTP_PORT

pids=()
cleanup() {
  echo; echo "stopping..."
  # Reverse start order: gateway drains, then the silo leaves the cluster (it needs Redis for that), then Redis.
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  echo "stopped"
}
trap cleanup EXIT
trap "exit 130" INT TERM

if [[ "$REDIS_URL" == "127.0.0.1:$REDIS_PORT" ]] && ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$run" --appendonly yes --save "" >"$run/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "building..."
dotnet build Orleans.Ingest.sln -c Release -nologo -v quiet
dotnet Silo/bin/Release/net10.0/Ingest.Silo.dll >"$run/silo.log" 2>&1 &
pids+=($!)
dotnet Gateway/bin/Release/net10.0/Ingest.Gateway.dll >"$run/gateway.log" 2>&1 &
pids+=($!)

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
  simulated call:      dotnet run --project tools/ExotelSim -- --url ws://127.0.0.1:$PORT/v1/ingest --user $EXOTEL_BASIC_AUTH_USER --pass $EXOTEL_BASIC_AUTH_PASS
  logs:                $run/gateway.log  $run/silo.log
Press Ctrl+C to stop.
MSG
wait
