#!/usr/bin/env bash
# Memory through a Redis outage (issue 10 item 5; CONTRACT §7 "memory is bounded in bytes"; docs/PERFORMANCE.md).
# Builds Release, and for each variant starts a private Redis, one silo and one gateway, drives two native calls
# sending 256,000-byte binary frames flat out, takes Redis away for 30 s in the middle, stops the calls, and reports
# peak RSS of gateway and silo plus, per call, frames sent / published / in gap entries, order and duplicates.
# Everything it starts is stopped on exit; each variant runs on fresh processes.
#
#   bench/outage-memory.sh                               # both variants: sigstop, then shutdown (~2 x 1.5 min)
#   bench/outage-memory.sh --variants sigstop --outage 30 --pre 5 --post 10
#
# Variants: sigstop  = kill -STOP redis-server, kill -CONT after the outage (connected but not answering)
#           shutdown = SHUTDOWN SAVE, then a new redis-server on the same port and data dir (disconnected)
# Own options: --variants sigstop,shutdown  --no-build  --label NAME
#   --container-heap   give gateway and silo the GC heap limit .NET derives inside the k8s containers (75 % of the
#                      deploy/k8s memory limits: 576 MiB of 768 Mi, 768 MiB of 1 Gi) via DOTNET_GCHeapHardLimit
# Driver options: --calls N --frame-bytes N --pre S --outage S --post S --drain S
# Environment: settings of the servers (MAX_CALL_BUFFER_BYTES, INGEST_BUFFER_BYTES, ...) are passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
label=""
variants="sigstop,shutdown"
build=1
pre=5 outage=30 post=10
driver_args=()
gateway_env=() silo_env=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --variants) variants="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --container-heap) gateway_env+=(DOTNET_GCHeapHardLimit=0x24000000); silo_env+=(DOTNET_GCHeapHardLimit=0x30000000); shift ;;
    --label) label="-$2"; shift 2 ;;
    --pre) pre="$2"; shift 2 ;;
    --outage) outage="$2"; shift 2 ;;
    --post) post="$2"; shift 2 ;;
    --calls|--frame-bytes|--drain) driver_args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

run="$root/.run/outage-$stamp"
results="$root/bench/results"
mkdir -p "$run" "$results"
tools/ensure-redis.sh

if [[ $build -eq 1 ]]; then
  echo "building Release..."
  dotnet build Silo/Silo.csproj -c Release -nologo -v quiet
  dotnet build Gateway/Gateway.csproj -c Release -nologo -v quiet
  dotnet build bench/Ingest.Bench/Ingest.Bench.csproj -c Release -nologo -v quiet
fi

source bench/lib.sh

outage_redis() { # port dir log: a single node, which the variants stop and start again on the same port
  start_redis_node "$@"
  redis_pid=$started_redis_pid
}

export EXOTEL_BASIC_AUTH_USER=bench EXOTEL_BASIC_AUTH_PASS="bench-secret-$RANDOM$RANDOM"
export JWT_SECRET="bench-outage-jwt-secret-$RANDOM$RANDOM-0123456789abcdef"
export Logging__LogLevel__Default=Warning
bench=(dotnet bench/Ingest.Bench/bin/Release/net10.0/Ingest.Bench.dll)
files=()

IFS=',' read -r -a variant_list <<<"$variants"
for variant in "${variant_list[@]}"; do
  [[ "$variant" == sigstop || "$variant" == shutdown ]] || { echo "unknown variant $variant" >&2; exit 2; }
  dir="$run/$variant"; mkdir -p "$dir"
  redis_port=$(free_port)
  outage_redis "$redis_port" "$dir" "$dir/redis.log"
  export REDIS_URL="127.0.0.1:$redis_port"
  export SILO_PORT=$(free_port) GATEWAY_PORT=$(free_port) SILO_HTTP_PORT=$(free_port) SILO_ADVERTISED_IP=127.0.0.1
  export SUPPORT_EXOTEL=true CLUSTER_ID="outage-$stamp-$variant" SERVICE_ID="outage-$stamp-$variant"
  port=$(free_port)
  env "${silo_env[@]}" dotnet "${BENCH_SILO_DLL:-Silo/bin/Release/net10.0/Ingest.Silo.dll}" >"$dir/silo.log" 2>&1 &
  silo_pid=$!; pids+=("$silo_pid")
  env "${gateway_env[@]}" PORT=$port dotnet "${BENCH_GATEWAY_DLL:-Gateway/bin/Release/net10.0/Ingest.Gateway.dll}" >"$dir/gateway.log" 2>&1 &
  gateway_pid=$!; pids+=("$gateway_pid")
  wait_http "$port" /readyz gateway "$dir/gateway.log"

  export BENCH_OUTAGE_NOTE="gateway env: ${gateway_env[*]:-none}; silo env: ${silo_env[*]:-none}"
  out="$results/$stamp$label-outage-$variant.json"
  ready="$dir/ready"
  "${bench[@]}" outage --variant "$variant" --url "ws://127.0.0.1:$port/v1/ingest" --redis "$REDIS_URL" \
    --jwt-secret "$JWT_SECRET" --pids "gateway=$gateway_pid,silo=$silo_pid" --ready-file "$ready" \
    --pre "$pre" --outage "$outage" --post "$post" --out "$out" "${driver_args[@]}" > >(tee "$dir/driver.txt") &
  driver_pid=$!; pids+=("$driver_pid")
  for _ in $(seq 600); do [[ -f "$ready" ]] && break; sleep 0.1; done
  [[ -f "$ready" ]] || { echo "driver did not start its calls; see $dir" >&2; exit 1; }
  sleep "$pre"
  echo "  $(date -u +%T) redis away ($variant) for $outage s"
  if [[ "$variant" == sigstop ]]; then
    kill -STOP "$redis_pid"
    sleep "$outage"
    kill -CONT "$redis_pid"
  else
    redis-cli -p "$redis_port" shutdown save >/dev/null 2>&1 || true
    for _ in $(seq 100); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    sleep "$outage"
    outage_redis "$redis_port" "$dir" "$dir/redis.log"
  fi
  echo "  $(date -u +%T) redis back"
  wait "$driver_pid"
  files+=("$out")
  stop_pid "$gateway_pid"; stop_pid "$silo_pid"; stop_pid "$redis_pid"
  grep -E -h "buffer full|overflow|Unhandled|OutOfMemory|fail" "$dir/gateway.log" "$dir/silo.log" | cut -c1-300 | sort | uniq -c | sort -rn | head -20 >"$dir/notable-log-lines.txt" || true
done

echo
echo "== $(nproc) cores, $(uname -sr); settings: MAX_CALL_BUFFER_BYTES=${MAX_CALL_BUFFER_BYTES:-default 8 MiB} MAX_GATEWAY_BUFFER_BYTES=${MAX_GATEWAY_BUFFER_BYTES:-default 192 MiB} INGEST_BUFFER_BYTES=${INGEST_BUFFER_BYTES:-default 16 MiB} INGEST_SILO_BUFFER_BYTES=${INGEST_SILO_BUFFER_BYTES:-default 384 MiB}; gateway env: ${gateway_env[*]:-none}; silo env: ${silo_env[*]:-none} =="
echo "results: ${files[*]}"
echo "process logs and notable log lines: $run"
