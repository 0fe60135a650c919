#!/usr/bin/env bash
# Checks that nginx is installed; installs it from the distribution's
# packages when it is missing and we are root, or says what to install.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "nginx is missing: installing it with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nginx-light >/dev/null 2>&1 || apt-get install -y -qq nginx >/dev/null
  # Optional: serving precompressed .br files.
  apt-get install -y -qq libnginx-mod-http-brotli-static >/dev/null 2>&1 || true
  # Debian may start the system nginx on port 80; sitefleet runs its own.
  exit 0
fi
echo "nginx is required but not installed. Install it with:" >&2
echo "    sudo apt-get install -y nginx-light    # or: sudo apt-get install -y nginx" >&2
exit 1
