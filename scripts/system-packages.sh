#!/usr/bin/env bash
# The Debian packages the test suites need, installed when missing (npm test
# runs this first). libxen-dev: Xen 4.17's headers and libxenctrl, for the
# struct layout test and the open-without-Xen tests.
set -euo pipefail

missing=()
[ -e /usr/include/xenctrl.h ] || missing+=(libxen-dev)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
  echo "xen-domain-build: the tests need these Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "xen-domain-build: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
