#!/usr/bin/env bash
# One-command set-up: system packages (when root), npm packages, the build (dist/), then the
# end-to-end demo on the compiled CLI.
# Usage: bash scripts/setup.sh [--no-demo]
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(softhsm2 opensc nginx gnutls-bin libengine-pkcs11-openssl libnss3-tools openssl curl postgresql)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (run as root or install them): ${missing[*]}" >&2
    exit 1
  fi
fi
# nginx and postgresql from Debian start system services on install; hsmkit runs its own instances only.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx postgresql >/dev/null 2>&1 || true; fi

echo "setup: installing npm packages"
# npm install, not npm ci: this registry's lock files omit other platforms' optional packages
# (biome's binaries), which npm ci then reports as out of sync.
npm install --no-audit --no-fund --loglevel=error
# npm install runs the package's prepare script, which builds dist/; build here if it did not.
if [ ! -f dist/cli/main.js ]; then
  echo "setup: building dist/"
  npm run build --silent
fi

if [ "${1:-}" != "--no-demo" ]; then
  echo "setup: running the end-to-end demo"
  node --no-warnings --import tsx scripts/demo.ts
fi
