#!/usr/bin/env bash
# Installs the Debian packages quorum needs to build, test, fuzz and demo.
# Does nothing when they are all present. The only downloads are apt-get's.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config   # build
  libcmocka-dev                                  # unit tests
  libuv1-dev libssl-dev                          # event loop, HMAC for the peer handshake
  clang libclang-rt-14-dev                       # libFuzzer targets
  clang-format clang-tidy                        # scripts/tidy.sh
  redis-tools                                    # redis-cli for integration tests and the demo
  python3                                        # small helpers in test scripts
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "deps: missing packages (${missing[*]}) and not root; run as root or install sudo" >&2
    exit 1
  fi
fi

echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
