#!/usr/bin/env bash
# The Debian packages the test suites need: `npm run setup:system` (as root)
# installs the missing ones; `npm test` only checks (its pretest) and names
# what is missing, and the tests that need a missing package are skipped
# (unless XDB_REQUIRE_SYSTEM_PACKAGES=1, as CI sets: then they fail).
#   (npm test)              libxen-dev: Xen 4.17's headers, libxenctrl and
#                           libxenstore, for the struct layout test and the
#                           open-without-Xen tests; chromium, to check that
#                           the storm report renders (CHROMIUM names another
#                           browser binary).
#   xen (npm run test:xen)  QEMU, cpio and kmod, to boot Xen under QEMU.
# Usage: system-packages.sh [check] [xen]
set -euo pipefail

check=false
[ "${1:-}" = check ] && { check=true; shift; }
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

if $check; then
  echo "xen-domain-build: missing Debian packages: ${missing[*]}; the tests that need them are skipped" >&2
  echo "  install them with: sudo npm run setup:system" >&2
  [ -z "${XDB_REQUIRE_SYSTEM_PACKAGES:-}" ] || exit 1
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
  echo "xen-domain-build: the tests need these Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "xen-domain-build: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
