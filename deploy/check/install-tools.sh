#!/usr/bin/env bash
# What `make deploy-check` needs beyond the project's virtualenv, installed on Debian bookworm
# (idempotent; what is there already is kept):
#   apt:  docker.io (engine and client), mmdebstrap (base images from Debian's packages),
#         prometheus (the server and promtool)
#   Go:   kubeconform and kustomize (go install, pinned below), the Docker Compose v2 plugin
#         (built from its module: Debian bookworm only packages Compose v1)
# Go binaries go to $SEGSTREAM_CACHE_DIR/bin (default ~/.cache/segstream/bin), which
# deploy/check/run.sh puts on PATH. Needs root (or sudo) for apt and the Compose plugin.
set -euo pipefail

KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.1
COMPOSE_VERSION=v2.40.3

cache=${SEGSTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/segstream}
bin=$cache/bin
mkdir -p "$bin"
sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"

apt_install() {  # apt_install [--no-install-recommends] package...
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@" >/dev/null
}
need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v prometheus >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ] || ! command -v mmdebstrap >/dev/null; then
  $sudo_cmd apt-get update -qq
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-tools: apt-get install ${need_apt[*]}"
  # No recommends: Debian's prometheus recommends node-exporter, docker.io recommends tools
  # the checks do not use. Nothing is started: there is no init system here, and on a machine
  # with one the checks start their own Prometheus on a free port anyway.
  apt_install --no-install-recommends "${need_apt[@]}"
fi
if ! command -v mmdebstrap >/dev/null; then
  echo "install-tools: apt-get install mmdebstrap"
  apt_install mmdebstrap  # with its recommends (gpg, mount, ...): it runs apt in a chroot
fi

if ! command -v go >/dev/null; then
  echo "install-tools: Go (1.24 or newer) is needed to build kubeconform, kustomize and" \
       "docker compose; it is not on PATH" >&2
  exit 2
fi

# go install, once per pinned version (a stamp file beside the binary records which).
go_tool() {
  local name=$1 module=$2 version=$3
  if [ "$(cat "$bin/.$name.version" 2>/dev/null)" != "$version" ] || [ ! -x "$bin/$name" ]; then
    echo "install-tools: go install $module@$version"
    GOBIN=$bin go install "$module@$version"
    echo "$version" > "$bin/.$name.version"
  fi
}
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"

# docker compose v2: its go.mod has exclude directives, so `go install pkg@version` refuses
# it; build it inside its own module instead (about two minutes on two cores, then cached).
if ! docker compose version >/dev/null 2>&1; then
  if [ "$(cat "$bin/.docker-compose.version" 2>/dev/null)" != "$COMPOSE_VERSION" ]; then
    echo "install-tools: building docker compose $COMPOSE_VERSION"
    src=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
          | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    work=$(mktemp -d)
    trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
    cp -r "$src/." "$work/" && chmod -R u+w "$work"
    (cd "$work" && go build -trimpath \
       -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
       -o "$bin/docker-compose" ./cmd)
    echo "$COMPOSE_VERSION" > "$bin/.docker-compose.version"
  fi
  $sudo_cmd mkdir -p /usr/local/lib/docker/cli-plugins
  $sudo_cmd ln -sf "$bin/docker-compose" /usr/local/lib/docker/cli-plugins/docker-compose
fi

echo "install-tools: dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,)," \
     "$(docker compose version --short 2>/dev/null || echo 'no compose')," \
     "prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3)," \
     "kubeconform $(cat "$bin/.kubeconform.version"), kustomize $("$bin/kustomize" version)"
