#!/usr/bin/env bash
# The test command: installs redis-server if needed, builds, runs every test (each fixture starts and stops its own
# redis-server on a free port), and ends with the line "N passed, N failed" taken from the test results.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/ensure-redis.sh || { echo "could not install redis-server"; echo "0 passed, 1 failed"; exit 1; }

# What the tests need from Debian, installed up front (never from inside a test), quietly, only when missing:
# yamllint (deploy-file lint), sox (ingestctl's WAV tests), chromium (the admin console test, headless).
ensure_package() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null 2>&1 ||
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null 2>&1; } ||
    echo "could not install $2" >&2
}
ensure_package yamllint yamllint
ensure_package sox sox
ensure_package chromium chromium

# One TRX per test project (the default names are unique per run), summed below.
results="TestResults/run-$$"
rm -rf "$results"
dotnet build Orleans.Ingest.sln -c Release -nologo -v quiet || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
# Everything the run prints (test lines, the logs of the processes and hosts the tests start) goes to one file; the
# terminal gets a progress line per 100 tests, each failure with its message, stack and output (first 80 lines), and
# the summary.
log="$results/test-output.log"
mkdir -p "$results"
echo "running the tests; everything they print: $log"
started=$SECONDS
dotnet test Orleans.Ingest.sln -c Release --no-build -nologo \
  --logger "trx" --logger "console;verbosity=normal" \
  --results-directory "$results" "$@" 2>&1 | tee "$log" | awk -v start="$started" -v log_file="$log" '
  function progress() { printf "  %d tests done, %d failed\n", done, bad; fflush() }
  /^  (Passed|Skipped) / { block = 0; done++; if (done % 100 == 0) progress(); next }
  /^  Failed / { block = 1; shown = 0; done++; bad++; print; fflush(); next }
  /^(Test Run |Total tests:|     Passed:|     Failed:|     Skipped:| Total time:)/ { block = 0; print; fflush(); next }
  /^\[xUnit\.net/ || /^\{/ { next }
  block == 1 {
    if (shown < 80) print; else if (shown == 80) print "    ... (the rest in " log_file ")"
    shown++; fflush()
  }'
status=${PIPESTATUS[0]}
echo "the tests took $((SECONDS - started)) s"

passed=0; failed=0
for trx in "$results"/*.trx "$results"/**/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
if [ "$failed" -gt 0 ]; then
  echo "failed:"; grep -E '^  Failed ' "$log" | head -n 30
fi
echo "$passed passed, $failed failed"
exit "$status"
