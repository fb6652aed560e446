#!/usr/bin/env bash
# Installs the Debian packages the project's tests, demo and interop runs need (idempotent).
# Swift itself and the Swift packages come with the machine; nothing else is downloaded.
set -euo pipefail
packages=(
  golang-go golang-github-hashicorp-yamux-dev  # the reference yamux, for interop
  netcat-openbsd openssl                       # real peers: nc, openssl s_client / s_server
  protobuf-compiler                            # only to regenerate the committed protobuf code
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
