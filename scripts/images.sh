#!/usr/bin/env bash
# Builds the sitefleet image where no image registry can be reached, from
# Debian's packages and this machine's Go toolchain:
#
#   sitefleet/base:sid   Debian unstable, debootstrap --variant=minbase
#   sitefleet/go:local   that, with /usr/local/go and this machine's extra
#                        CA certificates (for a proxy that inspects TLS)
#   sitefleet/nginx-test:sid  the base with the node image's nginx, for
#                        the webserver tests against it
#   sitefleet:${TAG}     docker build . with BUILD_IMAGE and BASE_IMAGE set
#                        to those two
#
# On a connected machine `docker build -t sitefleet .` does the same from
# the public golang and debian images. Needs root (debootstrap), docker,
# and Go in /usr/local/go. Usage: scripts/images.sh [TAG] (default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-dev}
WORK=${SITEFLEET_IMAGES_DIR:-/var/tmp/sitefleet-images}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# A mirror snapshot's Release files may have expired: accept them.
APT_OPTIONS="-o Acquire::Check-Valid-Until=false"

if ! docker image inspect sitefleet/base:sid >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y -qq debootstrap >/dev/null
  rm -rf "$WORK/rootfs"
  mkdir -p "$WORK"
  echo "debootstrap: Debian sid into $WORK/rootfs"
  debootstrap --variant=minbase --include=ca-certificates sid "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  # What an image needs no copy of: downloaded packages and lists (an
  # image's build runs apt-get update), documentation, translations.
  rm -rf "$WORK"/rootfs/var/cache/apt/* "$WORK"/rootfs/var/lib/apt/lists/* \
    "$WORK"/rootfs/usr/share/doc/* "$WORK"/rootfs/usr/share/man/* "$WORK"/rootfs/usr/share/locale/* \
    "$WORK"/rootfs/var/log/*.log "$WORK"/rootfs/var/log/apt
  tar -C "$WORK/rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
    - sitefleet/base:sid >/dev/null
  rm -rf "$WORK/rootfs"
fi

if ! docker image inspect sitefleet/go:local >/dev/null 2>&1; then
  ctx="$WORK/go-context"
  rm -rf "$ctx" && mkdir -p "$ctx/ca"
  cp -a /usr/local/go "$ctx/go"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  docker build -q -t sitefleet/go:local -f - "$ctx" >/dev/null <<'DOCKERFILE'
FROM sitefleet/base:sid
COPY go /usr/local/go
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null 2>&1 || true
ENV PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DOCKERFILE
  rm -rf "$ctx"
fi

# nginx as the node image has it, for the webserver tests against it.
if ! docker image inspect sitefleet/nginx-test:sid >/dev/null 2>&1; then
  docker build -q -t sitefleet/nginx-test:sid --build-arg APT_OPTIONS="$APT_OPTIONS" -f - "$WORK" >/dev/null <<'DOCKERFILE'
FROM sitefleet/base:sid
ARG APT_OPTIONS=""
RUN apt-get ${APT_OPTIONS} update \
 && apt-get ${APT_OPTIONS} install -y --no-install-recommends nginx ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
DOCKERFILE
fi

docker build -q -t "sitefleet:$TAG" \
  --build-arg BUILD_IMAGE=sitefleet/go:local --build-arg BASE_IMAGE=sitefleet/base:sid \
  --build-arg APT_OPTIONS="$APT_OPTIONS" --build-arg VERSION="$(git describe --tags --always --dirty 2>/dev/null || echo dev)" . >/dev/null
docker image ls "sitefleet:$TAG" --format 'sitefleet:{{.Tag}} {{.Size}}'
