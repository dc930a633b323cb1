#!/usr/bin/env bash
# Installs what Vigil needs on a fresh Debian machine: system packages and a Python venv.
# Idempotent: only missing pieces are installed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${VIGIL_VENV:-$repo/.venv}"

packages=(postgresql prometheus prometheus-alertmanager kcat poppler-utils openjdk-17-jre-headless maven python3-venv chromium npm libjemalloc2)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# A JDK or Maven installed outside Debian counts.
if command -v java >/dev/null; then missing=("${missing[@]/openjdk-17-jre-headless}"); fi
if command -v mvn >/dev/null; then missing=("${missing[@]/maven}"); fi
if python3 -m venv --help >/dev/null 2>&1; then missing=("${missing[@]/python3-venv}"); fi
# Node.js and npm installed outside Debian count (they carry the browser tests' axe-core).
if command -v npm >/dev/null; then missing=("${missing[@]/npm}"); fi
read -r -a missing <<<"${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "[bootstrap] installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ] || [ "$repo/sdk/pyproject.toml" -nt "$stamp" ]; then
  echo "[bootstrap] installing Python packages into $venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "$repo[dev]" -e "$repo/sdk[kafka]"
  touch "$stamp"
fi

# axe-core for the console's browser tests (tests/browser/), at the version its lock file pins.
if [ ! -f "$repo/tests/browser/node_modules/axe-core/axe.min.js" ]; then
  echo "[bootstrap] installing axe-core for the browser tests"
  npm ci --prefix "$repo/tests/browser" --no-audit --no-fund --loglevel=error >/dev/null
fi
