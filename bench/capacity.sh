#!/usr/bin/env bash
# The capacity model (docs/CAPACITY.md) from a bench results file: nodes, shards, bandwidth, memory and ceilings for
# 10,000 and 100,000 calls at 8 and 16 kHz. Computes only; starts nothing.
#
#   bench/capacity.sh                                     # the newest run in bench/results/*-orleans.json (+ its relay file)
#   bench/capacity.sh --results bench/results/X-orleans.json --relay bench/results/X-relay.json
#   bench/capacity.sh --node-cores 8 --call-seconds 300   # other assumptions: bench/capacity.sh --help
#   bench/capacity.sh > /tmp/capacity.md                  # then paste into docs/CAPACITY.md
#
# Without --results it takes the newest orleans file with a real-time scenario, the relay file of the same run, and,
# when that file has no idle scenario, the newest orleans file that has one (the first line printed names them).
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
if [[ " ${args[*]} " != *" --results "* ]]; then args=(--results-dir bench/results "${args[@]}"); fi
dotnet build bench/Ingest.Bench/Ingest.Bench.csproj -c Release -nologo -v quiet >/dev/null
exec dotnet bench/Ingest.Bench/bin/Release/net10.0/Ingest.Bench.dll capacity "${args[@]}"
