#!/usr/bin/env bash
# Calls vs latency vs CPU: bench/run.sh once per call count (real time, twice each: cold processes, then warm; then the
# Orleans hop alone, scenario hop), relay and system in the same run, then one table from all of them. Everything it starts is stopped by run.sh.
#
#   bench/curve.sh                       # 500 1000 1500 2000 calls, 30 s each (~15 min)
#   bench/curve.sh --points "250 500" --seconds 20
#   bench/curve.sh --redis-cluster       # every point against a 3-master Redis Cluster (run.sh --redis-cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
points="500 1000 1500 2000"
cluster=()
seconds=30
while [[ $# -gt 0 ]]; do
  case "$1" in
    --points) points="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --redis-cluster) cluster=(--redis-cluster); shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
build=()
for calls in $points; do
  bench/run.sh "${build[@]}" "${cluster[@]}" --calls "$calls" --seconds "$seconds" --scenarios realtime,realtime,hop --label "curve$stamp-$calls"
  build=(--no-build)
done

echo
echo "== curve: $(nproc) cores, $(uname -sr) =="
dotnet bench/Ingest.Bench/bin/Release/net10.0/Ingest.Bench.dll curve bench/results/*"-curve$stamp-"*-{relay,orleans}.json \
  | tee "bench/results/$stamp-curve.md"
