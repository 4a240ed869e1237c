# Shared helpers of the bench scripts (run.sh, topology.sh, outage-memory.sh); sourced, not run.
# Expects the caller to have cd'd to the repository root and to have set $run (its run directory).

# Loopback ports nobody listens on (other engineers run their own stacks on this box).
free_port() {
  local port
  for _ in $(seq 200); do
    # Below Linux's ephemeral range (32768-60999): a port planned now and bound seconds later (a silo added mid-run)
    # is not taken meanwhile by an outgoing connection.
    port=$(( 20000 + RANDOM % 12000 ))
    if ! ss -ltnH "sport = :$port" | grep -q .; then echo "$port"; return 0; fi
  done
  echo "no free port found" >&2; return 1
}

# Processes started by the script, stopped newest first on exit (driver, gateways, silos, then Redis: a silo stopping
# without its Redis is slow).
pids=()
stop_pid() {
  local pid=$1
  kill -CONT "$pid" 2>/dev/null || true   # a SIGSTOPped process would never act on SIGTERM
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for (( i=${#pids[@]}-1; i>=0; i-- )); do stop_pid "${pids[i]}"; done
}
trap cleanup EXIT INT TERM

http_ok() { # port path
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$2" >&3
  local status; status=$(head -n 1 <&3); exec 3>&-
  [[ "$status" == *" 200 "* ]]
}
wait_http() { # port path what log
  for _ in $(seq 120); do http_ok "$1" "$2" && return 0; sleep 0.5; done
  echo "$3 not ready; see $4" >&2; exit 1
}

build_release() { # the solution and the bench projects, as every bench script runs them
  echo "building Release..."
  dotnet build Orleans.Ingest.sln -c Release -nologo -v quiet
  dotnet build bench/Ingest.Relay/Ingest.Relay.csproj -c Release -nologo -v quiet
  dotnet build bench/Ingest.Bench/Ingest.Bench.csproj -c Release -nologo -v quiet
}

# Redis: one node (redis_cluster=0) or a 3-master cluster on one box (redis_cluster=1). Sets REDIS_URL (the node list
# for a cluster), redis_ports (one per node), redis_pids and redis_pid (pids joined with '+', as the driver's --pids
# takes a process made of several: its CPU and RSS are summed).
redis_cluster=0
redis_ports=() redis_pids=()
start_redis_node() { # port dir log [extra redis-server args]
  local port=$1 dir=$2 log=$3; shift 3
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no "$@" >>"$log" 2>&1 &
  local pid=$!; pids+=("$pid")
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && { started_redis_pid=$pid; return 0; }; sleep 0.1; done
  echo "redis on $port did not start; see $log" >&2; exit 1
}
start_redis() { # dir
  local dir=$1 port i
  redis_ports=() redis_pids=()
  if [[ $redis_cluster -eq 0 ]]; then
    port=$(free_port)
    start_redis_node "$port" "$dir" "$dir/redis.log"
    redis_ports=("$port"); redis_pids=("$started_redis_pid")
  else
    for i in 1 2 3; do
      port=$(free_port)
      start_redis_node "$port" "$dir/redis-$i" "$dir/redis-$i.log" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000
      redis_ports+=("$port"); redis_pids+=("$started_redis_pid")
    done
    local nodes=() p
    for p in "${redis_ports[@]}"; do nodes+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/redis-cluster-create.log" 2>&1 \
      || { echo "redis-cli --cluster create failed; see $dir/redis-cluster-create.log" >&2; exit 1; }
    local ok=0
    for _ in $(seq 100); do
      ok=1
      for p in "${redis_ports[@]}"; do
        redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || { ok=0; break; }
      done
      [[ $ok -eq 1 ]] && break
      sleep 0.2
    done
    [[ $ok -eq 1 ]] || { echo "redis cluster not ok; see $dir" >&2; exit 1; }
  fi
  REDIS_URL=$(printf '127.0.0.1:%s,' "${redis_ports[@]}"); REDIS_URL=${REDIS_URL%,}
  redis_pid=$(IFS=+; echo "${redis_pids[*]}")
  export REDIS_URL
}
redis_each() { # redis-cli arguments, run on every node
  local p
  for p in "${redis_ports[@]}"; do redis-cli -p "$p" "$@"; done
}
# INFO commandstats summed over the nodes, in INFO's own format (usec_per_call recomputed from the sums).
redis_commandstats() {
  redis_each info commandstats | tr -d '\r' | awk -F'[:,=]' '
    /^cmdstat_/ { calls[$1] += $3; usec[$1] += $5 }
    END { for (c in calls) printf "%s:calls=%d,usec=%d,usec_per_call=%.2f\n", c, calls[c], usec[c], calls[c] ? usec[c] / calls[c] : 0 }' | sort
}

# An HS256 JWT: mint_jwt SECRET ROLE SECONDS (the same shape tools/ingestctl token mints).
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
mint_jwt() {
  local now body; now=$(date +%s)
  body="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '{"sub":"bench","role":"%s","iat":%d,"nbf":%d,"exp":%d}' "$2" "$now" $((now - 5)) $((now + $3)) | b64url)"
  printf '%s.%s' "$body" "$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$1" -binary | b64url)"
}
