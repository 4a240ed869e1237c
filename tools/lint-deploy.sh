#!/usr/bin/env bash
# Lints the deployment files: yamllint (Debian package) over deploy/, the Kubernetes manifests rendered with
# `kubectl kustomize` when kubectl is installed, and the compose file's required variables present.
# Installs yamllint with apt-get when missing (as tools/ensure-redis.sh does for Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v yamllint >/dev/null 2>&1; then
  echo "yamllint not found: installing it with apt-get" >&2
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq yamllint >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq yamllint >/dev/null; }
fi
yamllint -c deploy/.yamllint.yml deploy/
echo "yamllint: deploy/ clean"

if command -v kubectl >/dev/null 2>&1; then
  rendered=$(kubectl kustomize deploy/k8s)
  for kind in Deployment Service Ingress ConfigMap PodDisruptionBudget NetworkPolicy; do
    grep -q "^kind: $kind$" <<<"$rendered" || { echo "kustomize: no $kind rendered"; exit 1; }
  done
  echo "kubectl kustomize deploy/k8s: $(grep -c '^kind:' <<<"$rendered") objects"
else
  echo "kubectl not installed: Kubernetes manifests not rendered (yamllint only)"
fi

# Secrets are required variables, never literal values in the compose file.
if grep -nE '^\s*[A-Z_]*(PASS|SECRET|PASSWORD): *[^$ {]' deploy/docker-compose.yml; then
  echo "docker-compose.yml: a secret has a literal value"; exit 1
fi
echo "docker-compose.yml: no literal secrets"
