#!/usr/bin/env bash
# The test command: installs redis-server if needed, builds, runs every test (each fixture starts and stops its own
# redis-server on a free port), and ends with the line "N passed, N failed" taken from the test results.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/ensure-redis.sh || { echo "could not install redis-server"; echo "0 passed, 1 failed"; exit 1; }

# The deploy-file lint test needs yamllint (Debian package); install it up front, not from inside a test.
command -v yamllint >/dev/null 2>&1 || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq yamllint >/dev/null 2>&1 || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq yamllint >/dev/null 2>&1; } || echo "could not install yamllint" >&2; }

# The admin console test drives a real browser: Debian's chromium (headless, over the DevTools protocol).
command -v chromium >/dev/null 2>&1 || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; } || echo "could not install chromium" >&2; }

results="TestResults/run-$$"
rm -rf "$results"
dotnet build Orleans.Ingest.sln -c Release -nologo -v quiet || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
dotnet test Orleans.Ingest.sln -c Release --no-build -nologo \
  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" \
  --results-directory "$results" "$@"
status=$?

passed=0; failed=0
for trx in "$results"/*.trx "$results"/**/*.trx; do
  [ -f "$trx" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  f=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
exit "$status"
