#!/usr/bin/env bash
# Installs what building and testing need, when it is missing: a C compiler (some crates build C),
# Rust with rustfmt and clippy (through rustup), Debian's redis-server package (redis-server,
# redis-cli, redis-benchmark), and Debian's chromium and chromium-driver (headless Chromium driven
# over WebDriver by the dashboard's browser tests, tests/common/browser.rs). Installs only with root
# or password-less sudo; otherwise says what to install. Does nothing when everything is there, so
# every make target can call it.
set -euo pipefail

export PATH="$HOME/.cargo/bin:$PATH"

SUDO=""
can_install() {
  if [ "$(id -u)" = 0 ]; then SUDO=""; return 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; return 0; fi
  return 1
}

APT_UPDATED=""
apt_install() {
  if ! can_install; then
    echo "error: $* missing and this user cannot install packages: sudo apt-get install $*" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! command -v cc >/dev/null 2>&1; then
  echo "setup: no C compiler: installing Debian's build-essential" >&2
  apt_install build-essential
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is not installed: installing it with rustup (https://rustup.rs)" >&2
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --component rustfmt,clippy >/dev/null
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 \
  || ! command -v redis-benchmark >/dev/null 2>&1; then
  echo "setup: redis-server is not installed: installing Debian's redis-server package" >&2
  apt_install redis-server
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "setup: chromium or chromedriver is not installed: installing Debian's chromium and chromium-driver" >&2
  apt_install chromium chromium-driver
fi
