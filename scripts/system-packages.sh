#!/usr/bin/env bash
# The Debian packages the test suites need, installed when missing.
#   (no argument; npm test) libxen-dev: Xen 4.17's headers and libxenctrl, for
#                           the struct layout test and the open-without-Xen tests;
#                           chromium, to check that the storm report renders
#                           (CHROMIUM names another browser binary).
#   xen (npm run test:xen)  QEMU, cpio and kmod, to boot Xen under QEMU.
set -euo pipefail

missing=()
if [ "${1:-}" = xen ]; then
  command -v qemu-system-x86_64 > /dev/null || missing+=(qemu-system-x86)
  command -v cpio > /dev/null || missing+=(cpio)
  command -v depmod > /dev/null || missing+=(kmod)
  command -v apt-get > /dev/null || { echo "xen-domain-build: test:xen needs Debian's apt-get" >&2; exit 1; }
else
  [ -e /usr/include/xenctrl.h ] || missing+=(libxen-dev)
  command -v "${CHROMIUM:-chromium}" > /dev/null || missing+=(chromium)
fi
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
