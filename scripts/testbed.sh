#!/usr/bin/env bash
# Installs and starts Slipway's real test parts, idempotently:
#   - dockerd (Debian docker.io), with --ip-forward=false --ip-masq=false
#   - the Distribution registry (Debian docker-registry) on 127.0.0.1:${SLIPWAY_TEST_REGISTRY_PORT:-5000}
#   - the base image slipway-busybox:latest, imported from busybox-static (nothing is pulled)
#   - PostgreSQL (Debian postgresql) with a role `slipway`, for the store's fleet backend
#   - Azurite (the Azure Blob emulator, npm azurite@3.35.0, which runs on Node 20) on
#     127.0.0.1:${SLIPWAY_TEST_AZURITE_PORT:-10000}, for the blob store of fleet tests
#   - arm64 emulation (qemu-user-static through binfmt_misc, fix-binary flag) and the
#     per-architecture base images slipway-busybox:amd64 and slipway-busybox:arm64
#   - the real Azure CLI (azure-cli from PyPI) in a cached virtual environment
#   - Chromium and chromedriver (Debian chromium, chromium-driver), for the dashboard's
#     browser tests
# Prints the environment the tests read (eval "$(scripts/testbed.sh)").
set -euo pipefail

STATE=${SLIPWAY_TESTBED_DIR:-/tmp/slipway-testbed}
REG_PORT=${SLIPWAY_TEST_REGISTRY_PORT:-5000}
BASE_IMAGE=slipway-busybox:latest
mkdir -p "$STATE"
log() { echo "testbed: $*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null || need_pkgs+=(docker.io)
command -v docker-registry >/dev/null || need_pkgs+=(docker-registry)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static || need_pkgs+=(busybox-static)
command -v git >/dev/null || need_pkgs+=(git)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v pg_ctlcluster >/dev/null || need_pkgs+=(postgresql)
command -v qemu-aarch64-static >/dev/null || need_pkgs+=(qemu-user-static)
command -v npm >/dev/null || need_pkgs+=(nodejs npm)
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v chromedriver >/dev/null || need_pkgs+=(chromium-driver)
[ -f /usr/include/openssl/ssl.h ] || need_pkgs+=(libssl-dev pkg-config)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then log "need root to install ${need_pkgs[*]}"; exit 1; fi
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_pkgs[@]}" file >&2
fi

if ! docker version >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd --ip-forward=false --ip-masq=false >"$STATE/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version >/dev/null 2>&1 || { log "dockerd did not start; see $STATE/dockerd.log"; tail -20 "$STATE/dockerd.log" >&2; exit 1; }
fi

if ! curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null 2>&1; then
  log "starting the registry on 127.0.0.1:$REG_PORT"
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REG_PORT
CONF
  nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
  for _ in $(seq 1 40); do curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
  curl -fsS "http://127.0.0.1:$REG_PORT/v2/" >/dev/null || { log "registry did not start"; cat "$STATE/registry.log" >&2; exit 1; }
fi

# A root file system in $1 holding the busybox binary $2 and its applet links (listed by
# this machine's busybox: the arm64 one is the same version), a root user and /tmp.
make_rootfs() {
  local root=$1 busybox=$2
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/workspace"
  cp "$busybox" "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  chmod 1777 "$root/tmp"
}

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "importing $BASE_IMAGE from busybox-static"
  root=$(mktemp -d)
  make_rootfs "$root" /bin/busybox
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
fi

# Azurite, pinned: its newest releases need Node 22. Telemetry off (it would reach out).
AZ_PORT=${SLIPWAY_TEST_AZURITE_PORT:-10000}
if ! command -v azurite-blob >/dev/null; then
  log "installing azurite 3.35.0 from the npm registry"
  npm install -g --silent --no-fund --no-audit azurite@3.35.0 >&2
fi
if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AZ_PORT/devstoreaccount1?comp=list")" = 000 ]; then
  log "starting Azurite on 127.0.0.1:$AZ_PORT"
  mkdir -p "$STATE/azurite"
  nohup azurite-blob --blobHost 127.0.0.1 --blobPort "$AZ_PORT" --location "$STATE/azurite" \
    --skipApiVersionCheck --disableTelemetry --silent >"$STATE/azurite.log" 2>&1 &
  for _ in $(seq 1 40); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AZ_PORT/devstoreaccount1?comp=list")" != 000 ] && break
    sleep 0.25
  done
fi
python3 "$(dirname "$0")/azurite-container.py" "http://127.0.0.1:$AZ_PORT/devstoreaccount1" slipway

# Emulation: binfmt_misc mounted and the aarch64 handler registered with the
# fix-binary flag (F), so containers of the engine run arm64 binaries through qemu.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || log "cannot mount binfmt_misc"
fi
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register || log "cannot register qemu-aarch64"
fi

# Per-architecture base images, for multi-platform builds (`FROM slipway-busybox:$TARGETARCH`).
docker image inspect slipway-busybox:amd64 >/dev/null 2>&1 || docker tag "$BASE_IMAGE" slipway-busybox:amd64
if ! docker image inspect slipway-busybox:arm64 >/dev/null 2>&1; then
  log "making slipway-busybox:arm64 from Debian's arm64 busybox-static"
  work=$(mktemp -d)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq >&2
  fi
  (cd "$work" && apt-get download -qq busybox-static:arm64 >&2)
  dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$work/deb"
  root="$work/root"
  make_rootfs "$root" "$work/deb/bin/busybox"
  python3 "$(dirname "$0")/arm64-image.py" "$root" slipway-busybox:arm64 arm64 "$work/image.tar"
  docker load -q -i "$work/image.tar" >/dev/null
  rm -rf "$work"
fi

# An image with the docker CLI, for tests of `docker …` inside steps (the engine proxy).
# The CLI is copied from this machine with the libraries it links, so nothing is pulled.
CLI_IMAGE=slipway-docker-cli:latest
if ! docker image inspect "$CLI_IMAGE" >/dev/null 2>&1; then
  log "building $CLI_IMAGE"
  cli=$(command -v docker)
  root=$(mktemp -d)
  mkdir -p "$root/bin"
  cp -L "$cli" "$root/bin/docker"
  for lib in $(ldd "$cli" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  printf 'FROM %s\nCOPY . /\n' "$BASE_IMAGE" >"$root/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$CLI_IMAGE" "$root" >/dev/null 2>&1 || { log "could not build $CLI_IMAGE"; exit 1; }
  rm -rf "$root"
fi

# PostgreSQL, started without systemd; tests make their own databases under role slipway.
pg_ver=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1}')
if [ -z "$pg_ver" ]; then
  pg_ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
  pg_createcluster "$pg_ver" main >&2
fi
pg_port=$(pg_lsclusters -h | awk -v v="$pg_ver" '$1==v && $2=="main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$pg_ver" '$1==v && $2=="main" {print $4}' | grep -q online; then
  log "starting PostgreSQL $pg_ver on port $pg_port"
  pg_ctlcluster "$pg_ver" main start >&2
fi
pg() { su postgres -c "psql -p $pg_port -qtAc \"$1\"" ; }
pg "SELECT 1 FROM pg_roles WHERE rolname='slipway'" | grep -q 1 || pg "CREATE ROLE slipway LOGIN SUPERUSER PASSWORD 'slipway'" >&2
for db in $(pg "SELECT datname FROM pg_database WHERE datname LIKE 'slipway_test_%'"); do pg "DROP DATABASE $db" >&2 || true; done

# The real Azure CLI (azure-cli from PyPI) in a cached virtual environment, for the
# tests that drive Slipway with `az` (about 2 minutes and 730 MB the first time).
AZ_VENV=${SLIPWAY_TEST_AZ_VENV:-$HOME/.cache/slipway/az-venv}
if [ ! -x "$AZ_VENV/bin/az" ]; then
  log "installing azure-cli into $AZ_VENV (about 2 minutes)"
  rm -rf "$AZ_VENV"
  { python3 -m venv "$AZ_VENV" && "$AZ_VENV/bin/pip" install -q azure-cli; } >&2 || { log "could not install azure-cli"; exit 1; }
fi

echo "export SLIPWAY_TEST_REGISTRY=127.0.0.1:$REG_PORT"
echo "export SLIPWAY_TEST_BASE_IMAGE=$BASE_IMAGE"
echo "export SLIPWAY_TEST_CLI_IMAGE=$CLI_IMAGE"
echo "export SLIPWAY_TEST_AZURITE=http://127.0.0.1:$AZ_PORT/devstoreaccount1"
echo "export SLIPWAY_TEST_EMULATION=$([ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo arm64)"
echo "export SLIPWAY_TEST_POSTGRES=postgres://slipway:slipway@127.0.0.1:$pg_port/postgres"
echo "export SLIPWAY_TEST_CHROMEDRIVER=$(command -v chromedriver)"
echo "export SLIPWAY_TEST_AZ=$AZ_VENV/bin/az"
