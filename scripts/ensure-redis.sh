#!/usr/bin/env bash
# Makes sure redis-server and redis-cli are installed: installs Debian's redis-server package
# when they are missing and this user can (root, or sudo without a password). Sourced or run.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
echo "redis-server is not installed: installing Debian's redis-server package" >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "error: redis-server is missing and this user cannot install packages." >&2
  echo "       Install it with: sudo apt-get install redis-server   (or set REDIS_URL to a running Redis)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq redis-server >/dev/null
# Debian's package may start a system service on 6379; the demo and tests start their own.
command -v redis-server >/dev/null 2>&1 || { echo "error: redis-server still missing after apt-get" >&2; exit 1; }
