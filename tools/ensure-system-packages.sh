#!/usr/bin/env bash
# Brings the Debian packages the tests need (tools/system-packages.txt) onto this machine before
# the tests run: installs the missing ones when run as root, as the agent does for Jupyter, and
# otherwise stops at once, naming the exact command to run. `pnpm test` and .ci/run both call it.
set -euo pipefail
list="$(dirname "$0")/system-packages.txt"

missing=()
while read -r pkg tool; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  elif [[ "$tool" != "-" ]] && ! command -v "$tool" >/dev/null 2>&1; then
    echo "system packages: $pkg is installed but its command '$tool' is not on PATH" >&2
    exit 1
  fi
done <"$list"

((${#missing[@]} == 0)) && exit 0

command="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" != 0 ]]; then
  echo "system packages: the tests need Debian packages that are missing: ${missing[*]}" >&2
  echo "run as root:  apt-get update && $command" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system packages: missing ${missing[*]}, and this machine has no apt-get to install them" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive $command -qq >/dev/null
