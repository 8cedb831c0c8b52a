#!/usr/bin/env bash
# `make deploy-check`: run the deploy checks (pytest -m deploy, tests/deploy/) with everything
# they need in place. A Docker engine is used if one answers; otherwise, as root, one is started
# for the run (no bridge network, no iptables: every container of the checks uses the host's
# network on 127.0.0.1) and stopped at the end. Missing tools: deploy/check/install-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

cache=${SEGSTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/segstream}
export PATH="$cache/bin:$PATH"
export SEGSTREAM_DEPLOY_CHECK=1
# Ryuk (testcontainers' reaper) is an image that cannot be pulled here; the fixtures clean up.
export TESTCONTAINERS_RYUK_DISABLED=true
# The custom resources' schemas live beside the checkout, not in it (see README, "Deploying").
# A checkout elsewhere (a scratch clone) finds them in the workspace's shared directory.
if [ -z "${SEGSTREAM_K8S_CRD_SCHEMAS:-}" ]; then
  for candidate in "$PWD/../shared/k8s-crd-schemas" /work/shared/k8s-crd-schemas; do
    if [ -d "$candidate" ]; then SEGSTREAM_K8S_CRD_SCHEMAS=$candidate; break; fi
  done
fi
export SEGSTREAM_K8S_CRD_SCHEMAS=${SEGSTREAM_K8S_CRD_SCHEMAS:-$PWD/../shared/k8s-crd-schemas}

missing=()
for tool in docker mmdebstrap prometheus promtool kubeconform kustomize; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
docker compose version >/dev/null 2>&1 || missing+=("docker compose")
if [ ${#missing[@]} -gt 0 ]; then
  echo "deploy-check: missing ${missing[*]}: run deploy/check/install-tools.sh" >&2
  exit 2
fi
if [ ! -d "$SEGSTREAM_K8S_CRD_SCHEMAS" ]; then
  echo "deploy-check: no custom-resource schemas at $SEGSTREAM_K8S_CRD_SCHEMAS" \
       "(set SEGSTREAM_K8S_CRD_SCHEMAS)" >&2
  exit 2
fi

dockerd_pid=""
stop_dockerd() {
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    echo "deploy-check: stopping the Docker engine it started (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid"
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
}
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deploy-check: no Docker engine answers (start one, or run as root to have one started)" >&2
    exit 2
  fi
  log=$(mktemp -t segstream-dockerd.XXXXXX.log)
  echo "deploy-check: starting a Docker engine (log $log)"
  dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    >"$log" 2>&1 &
  dockerd_pid=$!
  trap stop_dockerd EXIT
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  if ! docker info >/dev/null 2>&1; then
    echo "deploy-check: the Docker engine did not start:" >&2; tail -20 "$log" >&2; exit 2
  fi
fi

.venv/bin/pytest -m deploy tests/deploy "$@"
