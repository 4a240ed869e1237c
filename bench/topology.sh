#!/usr/bin/env bash
# Many gateways and silos, changing under load (issue 13 item 3; docs/PERFORMANCE.md "Topology under load").
# Builds Release, starts a private Redis (one node, or --redis-cluster: 3 masters), 3 silos and 2 gateways with
# SUPPORT_EXOTEL on, then runs the driver (Ingest.Bench topology): it checks that a SUPPORT_EXOTEL flip through one
# gateway's admin API is obeyed by both (Exotel upgrade refused on both, then admitted on both), spreads N real-time
# Exotel calls over the two gateways and runs them for S seconds. Meanwhile this script adds a 4th silo, SIGTERMs one
# and kills another with -9, at times measured from the first frame. At the end the driver checks from Redis that every
# frame landed exactly once and in order, each call has one start and one stop, no socket closed before its stop, and
# prints calls per silo at each point (GET /v1/admin/calls). Everything it starts is stopped on exit.
#
#   bench/topology.sh                                   # 500 calls, 60 s: add s4 at 10 s, SIGTERM s1 at 25 s, kill -9 s2 at 40 s
#   bench/topology.sh --calls 50 --seconds 20           # a small run (events at 1/6, 5/12, 2/3 of the run)
#   bench/topology.sh --redis-cluster                   # the same on a 3-master Redis Cluster
#
# Options: --calls N --seconds S --cadence-ms MS --observe N (calls whose every frame is timed)
#   --add-at S --term-at S --kill-at S   event times in seconds from the first frame (--kill-at none: no kill -9, a
#                                        graceful membership change only)
#   --redis-cluster --no-build --label NAME
# Exit status: 0 when everything checked out, 1 when the driver found a problem (listed in its report).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
label=""
build=1
calls=500 seconds=60
add_at="" term_at="" kill_at=""
redis_cluster_opt=0
driver_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --calls) calls="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --cadence-ms|--observe) driver_args+=("$1" "$2"); shift 2 ;;
    --add-at) add_at="$2"; shift 2 ;;
    --term-at) term_at="$2"; shift 2 ;;
    --kill-at) kill_at="$2"; shift 2 ;;
    --redis-cluster) redis_cluster_opt=1; shift ;;
    --no-build) build=0; shift ;;
    --label) label="-$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
add_at=${add_at:-$(( seconds * 10 / 60 ))}
term_at=${term_at:-$(( seconds * 25 / 60 ))}
kill_at=${kill_at:-$(( seconds * 40 / 60 ))}

run="$root/.run/topology-$stamp"
results="$root/bench/results"
mkdir -p "$run" "$results"
tools/ensure-redis.sh
source bench/lib.sh
redis_cluster=$redis_cluster_opt
if [[ $build -eq 1 ]]; then build_release; fi

start_redis "$run"
redis_kind="one Redis node"
[[ $redis_cluster -eq 1 ]] && redis_kind="Redis Cluster of ${#redis_ports[@]} masters"
[[ $redis_cluster -eq 1 ]] && label="-cluster$label"
echo "redis: $redis_kind ($REDIS_URL)"

export EXOTEL_BASIC_AUTH_USER=bench EXOTEL_BASIC_AUTH_PASS="bench-secret-$RANDOM$RANDOM"
export JWT_SECRET="bench-topology-jwt-secret-$RANDOM$RANDOM-0123456789abcdef"
export SUPPORT_EXOTEL=true CLUSTER_ID="topo-$stamp" SERVICE_ID="topo-$stamp" SILO_ADVERTISED_IP=127.0.0.1
export MAX_CONNECTIONS_PER_IP=20000 MAX_CONNECTIONS=20000
export Logging__LogLevel__Default=Warning
silo_dll=${BENCH_SILO_DLL:-Silo/bin/Release/net10.0/Ingest.Silo.dll}
gateway_dll=${BENCH_GATEWAY_DLL:-Gateway/bin/Release/net10.0/Ingest.Gateway.dll}

declare -A silo_pid silo_port silo_http
plan_silo() { silo_port[$1]=$(free_port); silo_http[$1]=$(free_port); }
start_silo() { # name
  SILO_PORT=${silo_port[$1]} GATEWAY_PORT=$(free_port) SILO_HTTP_PORT=${silo_http[$1]} dotnet "$silo_dll" >"$run/silo-$1.log" 2>&1 &
  silo_pid[$1]=$!; pids+=("$!")
}
for s in s1 s2 s3 s4; do plan_silo "$s"; done
for s in s1 s2 s3; do start_silo "$s"; done
for s in s1 s2 s3; do wait_http "${silo_http[$s]}" /readyz "silo $s" "$run/silo-$s.log"; done

declare -A gateway_pid gateway_port
for g in a b; do
  gateway_port[$g]=$(free_port)
  PORT=${gateway_port[$g]} dotnet "$gateway_dll" >"$run/gateway-$g.log" 2>&1 &
  gateway_pid[$g]=$!; pids+=("$!")
done
for g in a b; do wait_http "${gateway_port[$g]}" /readyz "gateway $g" "$run/gateway-$g.log"; done
echo "silos s1 s2 s3 (pids ${silo_pid[s1]} ${silo_pid[s2]} ${silo_pid[s3]}), gateways a b (ports ${gateway_port[a]} ${gateway_port[b]}) ready"

events="$run/events" ready="$run/ready"
: >"$events"
now_ms() { date +%s%3N; }
event() { echo "$(now_ms) $*" >>"$events"; echo "  $(date -u +%T) $*"; }
sleep_until() { # seconds from the first frame
  local due=$(( t0 + $1 * 1000 )) now; now=$(now_ms)
  (( due > now )) && sleep "$(awk -v ms=$(( due - now )) 'BEGIN { printf "%.3f", ms / 1000 }')"
  return 0
}

out="$results/$stamp$label-topology.json"
bench=(dotnet bench/Ingest.Bench/bin/Release/net10.0/Ingest.Bench.dll)
"${bench[@]}" topology \
  --urls "ws://127.0.0.1:${gateway_port[a]}/v1/ingest,ws://127.0.0.1:${gateway_port[b]}/v1/ingest" \
  --admin "http://127.0.0.1:${gateway_port[a]},http://127.0.0.1:${gateway_port[b]}" \
  --jwt-secret "$JWT_SECRET" --user "$EXOTEL_BASIC_AUTH_USER" --pass "$EXOTEL_BASIC_AUTH_PASS" --redis "$REDIS_URL" \
  --redis-kind "$redis_kind" \
  --pids "gateway-a=${gateway_pid[a]},gateway-b=${gateway_pid[b]},s1=${silo_pid[s1]},s2=${silo_pid[s2]},s3=${silo_pid[s3]},redis=$redis_pid" \
  --silos "s1=${silo_port[s1]},s2=${silo_port[s2]},s3=${silo_port[s3]},s4=${silo_port[s4]}" \
  --events "$events" --ready-file "$ready" --calls "$calls" --seconds "$seconds" --out "$out" "${driver_args[@]}" \
  > >(tee "$run/driver.txt") 2>&1 &
driver_pid=$!; pids+=("$driver_pid")

for _ in $(seq 1800); do [[ -s "$ready" ]] && break; kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.1; done
[[ -s "$ready" ]] || { echo "driver did not start its calls; see $run/driver.txt" >&2; exit 1; }
t0=$(cat "$ready")

sleep_until "$add_at"
start_silo s4
event add s4 "${silo_pid[s4]}" "${silo_port[s4]}"
( wait_http "${silo_http[s4]}" /readyz "silo s4" "$run/silo-s4.log" && event ready s4 ) &

sleep_until "$term_at"
event sigterm s1 "${silo_pid[s1]}"
kill -TERM "${silo_pid[s1]}"
( while kill -0 "${silo_pid[s1]}" 2>/dev/null; do sleep 0.1; done; event exited s1 ) &

if [[ "$kill_at" != none ]]; then
  sleep_until "$kill_at"
  event kill s2 "${silo_pid[s2]}"
  kill -KILL "${silo_pid[s2]}"
  wait "${silo_pid[s2]}" 2>/dev/null || true   # reaped here, so bash does not report the kill as a failure
fi

rc=0
wait "$driver_pid" || rc=$?
md="${out%.json}.md"
echo
echo "== $(nproc) cores, $(uname -sr), $redis_kind; shared machine =="
echo "results: $out $md"
echo "process logs and the event log: $run"
# Warnings and errors of the servers, counted by level, category and the start of the message (numbers and ids blurred).
for f in "$run"/silo-*.log "$run"/gateway-*.log; do
  grep -h -o -E '"LogLevel":"(Warning|Error|Critical)","Category":"[^"]*","Message":"[^"]{0,90}' "$f" 2>/dev/null \
    | sed -E 's/"(LogLevel|Category|Message)"://g; s/[0-9a-f]{8,}|[0-9]+/N/g; s/^/'"$(basename "$f" .log)"' /' || true
done | sort | uniq -c | sort -rn | head -25 >"$run/notable-log-lines.txt"
[[ -s "$run/notable-log-lines.txt" ]] && { echo "notable log lines (counted):"; cat "$run/notable-log-lines.txt"; }
exit "$rc"
