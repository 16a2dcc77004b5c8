#!/usr/bin/env bash
# Set-up on a fresh machine: the Debian packages WebGPU's software adapter needs (Mesa's EGL/GLES
# for Dawn's OpenGL backend) and Chromium (the browser tests: WebGPU and WebGL2 through
# SwiftShader), then the npm dependencies (npm ci also builds dist/ via `prepare`).
# Safe to re-run; skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri chromium)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages (software WebGPU adapter, Chromium): ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: not root and no sudo; install ${missing[*]} by hand (WebGPU in Node, browser tests; cpu and wasm work without them)" >&2
    fi
  fi
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
