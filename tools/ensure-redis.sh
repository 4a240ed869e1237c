#!/usr/bin/env bash
# Installs Debian's redis-server when it is missing (tests and the local run start their own instances).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
echo "redis-server not found: installing it with apt-get" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
# The package starts a system instance on 6379; our scripts start their own, so leave it be.
command -v redis-server >/dev/null
