#!/usr/bin/env bash
# One command: build Release, start a private Redis, measure the baseline relay, then silo + gateway, with the same
# driver and scenarios, and print the comparison. Everything it starts is stopped on exit.
#
#   bench/run.sh                                  # 1000 calls: idle, 20 s real time cold then warm, 64 x 3000 frames flat out (~5 min)
#   bench/run.sh --calls 2000 --seconds 30        # the target point (docs/PERFORMANCE.md)
#   bench/run.sh --cadence-ms 20 --sample-rate 16000 --systems orleans --scenarios realtime
#   bench/run.sh --calls 2000 --scenarios realtime,realtime,hop   # + the Orleans hop alone (orleans only; the relay skips it)
#
#   bench/run.sh --systems orleans --encoding mulaw --scenarios realtime   # μ-law calls (decoded at the gateway)
#
# Options (passed to the driver): --calls N --seconds S --cadence-ms 100|20 --sample-rate 8000|16000 --encoding pcm16|mulaw
#   --max-calls N --max-frames N --observe N --scenarios idle,idle-large,realtime,realtime,max,hop,hop-local,hop-pacing --warmup-calls N --warmup-pause S --warmup-cadence-ms N --warmup-rounds N
# Environment: BENCH_SILO_DLL, BENCH_GATEWAY_DLL run other builds of the servers (e.g. a publish output).
# Own options: --systems relay,orleans   --no-build   --label NAME (results file prefix)
#   --redis-cluster             a 3-master Redis Cluster on free loopback ports instead of one node (REDIS_URL is the
#                               node list; Redis CPU, RSS and commandstats are summed over the nodes)
#   --wait-replicas N           start N replicas of the bench's Redis and run the silo with INGEST_REDIS_WAIT_REPLICAS=N
#                               (each batch waits for them: the cost of the failover-proof setting, docs/OPERATIONS.md)
#   --dashboard off|on|polled   the silo's Orleans Dashboard (ORLEANS_DASHBOARD): off, on but unwatched, or on and polled
#                               every second with an admin token the way an open dashboard page polls it (profiler active)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
label=""
systems="relay,orleans"
build=1
dashboard=off
wait_replicas=0
driver_args=()
redis_cluster_opt=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --systems) systems="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --redis-cluster) redis_cluster_opt=1; shift ;;
    --wait-replicas) wait_replicas="$2"; shift 2 ;;
    --dashboard) dashboard="$2"; shift 2 ;;
    --label) label="-$2"; shift 2 ;;
    --encoding)
      # μ-law payloads decoded at the gateway (CONTRACT §5); the relay publishes payloads as they come, so it is skipped.
      driver_args+=("$1" "$2"); [[ "$2" == mulaw ]] && systems="${systems//relay/}"; shift 2 ;;
    --calls|--seconds|--cadence-ms|--sample-rate|--max-calls|--max-frames|--observe|--scenarios|--warmup-calls|--warmup-pause|--warmup-cadence-ms|--warmup-rounds)
      driver_args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$dashboard" in off|on|polled) ;; *) echo "--dashboard must be off, on or polled" >&2; exit 2 ;; esac

run="$root/.run/bench-$stamp"
results="$root/bench/results"
mkdir -p "$run" "$results"
tools/ensure-redis.sh

source bench/lib.sh
redis_cluster=$redis_cluster_opt
if [[ $build -eq 1 ]]; then build_release; fi

start_redis "$run"
replica_pids=""
if [[ $wait_replicas -gt 0 ]]; then
  [[ $redis_cluster -eq 0 ]] || { echo "--wait-replicas is for the single Redis node, not with --redis-cluster" >&2; exit 2; }
  for ((r = 1; r <= wait_replicas; r++)); do
    replica_port=$(free_port)
    start_redis_node "$replica_port" "$run/replica-$r" "$run/replica-$r.log" --replicaof 127.0.0.1 "${redis_ports[0]}"
    replica_pids+=",replica$r=$started_redis_pid"
    for _ in $(seq 100); do redis-cli -p "$replica_port" info replication 2>/dev/null | grep -q "master_link_status:up" && break; sleep 0.1; done
  done
  export INGEST_REDIS_WAIT_REPLICAS="$wait_replicas"
fi
export EXOTEL_BASIC_AUTH_USER=bench EXOTEL_BASIC_AUTH_PASS="bench-secret-$RANDOM$RANDOM"
export Logging__LogLevel__Default=Warning
bench=(dotnet bench/Ingest.Bench/bin/Release/net10.0/Ingest.Bench.dll)
files=()

# Runs the driver against one system listening on a port; its JSON joins the comparison, Redis's statistics the run dir.
drive() { # system port pids
  local out="$results/$stamp$label-$1.json"
  redis_each config resetstat >/dev/null
  "${bench[@]}" run --system "$1" --url "ws://127.0.0.1:$2/v1/ingest" --user "$EXOTEL_BASIC_AUTH_USER" --pass "$EXOTEL_BASIC_AUTH_PASS" \
    --redis "$REDIS_URL" --pids "$3" --out "$out" "${driver_args[@]}"
  files+=("$out")
  redis_commandstats >"$run/redis-commandstats-$1.txt"
}

if [[ ",$systems," == *",relay,"* ]]; then
  port=$(free_port)
  PORT=$port dotnet bench/Ingest.Relay/bin/Release/net10.0/Ingest.Relay.dll >"$run/relay.log" 2>&1 &
  relay_pid=$!; pids+=("$relay_pid")
  wait_http "$port" /healthz relay "$run/relay.log"
  drive relay "$port" "relay=$relay_pid,redis=$redis_pid$replica_pids"
  stop_pid "$relay_pid"
  redis_each flushall >/dev/null
fi

if [[ ",$systems," == *",orleans,"* ]]; then
  port=$(free_port)
  export SILO_PORT=$(free_port) GATEWAY_PORT=$(free_port) SILO_HTTP_PORT=$(free_port) SILO_ADVERTISED_IP=127.0.0.1
  export SUPPORT_EXOTEL=true CLUSTER_ID="bench-$stamp" SERVICE_ID="bench-$stamp"
  export MAX_CONNECTIONS_PER_IP=20000 MAX_CONNECTIONS=20000
  if [[ $dashboard != off ]]; then
    export ORLEANS_DASHBOARD=true
    export JWT_SECRET="${JWT_SECRET:-bench-dashboard-secret-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}"
  fi
  dotnet "${BENCH_SILO_DLL:-Silo/bin/Release/net10.0/Ingest.Silo.dll}" >"$run/silo.log" 2>&1 &
  silo_pid=$!; pids+=("$silo_pid")
  PORT=$port dotnet "${BENCH_GATEWAY_DLL:-Gateway/bin/Release/net10.0/Ingest.Gateway.dll}" >"$run/gateway.log" 2>&1 &
  gateway_pid=$!; pids+=("$gateway_pid")
  wait_http "$port" /readyz gateway "$run/gateway.log"
  if [[ $dashboard == polled ]]; then
    jwt=$(mint_jwt "$JWT_SECRET" admin 3000)
    ( while sleep 1; do
        for path in DashboardCounters TopGrainMethods ClusterStats; do
          curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $jwt" "http://127.0.0.1:$SILO_HTTP_PORT/dashboard/$path" >>"$run/dashboard-poll.log"
        done
      done ) &
    pids+=("$!")
  fi
  drive orleans "$port" "gateway=$gateway_pid,silo=$silo_pid,redis=$redis_pid$replica_pids"
  stop_pid "$gateway_pid"; stop_pid "$silo_pid"
fi

echo
redis_kind="one Redis node"; [[ $redis_cluster -eq 1 ]] && redis_kind="Redis Cluster of ${#redis_ports[@]} masters (CPU, RSS and commandstats summed)"
echo "== $(nproc) cores, $(uname -sr), $redis_kind; shared machine: figures are noisy, compare within one run =="
"${bench[@]}" compare "${files[@]}" | tee "$results/$stamp$label-table.md"
echo "results: ${files[*]}"
echo "Redis command statistics (calls, CPU usec per call) and process logs: $run"
for f in "$run"/redis-commandstats-*.txt; do
  [[ -f "$f" ]] || continue
  name=${f##*/redis-commandstats-}; name=${name%.txt}
  grep -E "cmdstat_(xadd|eval|evalsha|hgetall|xread):" "$f" | cut -d, -f1-3 | sed "s/^/$name /" || true
done
