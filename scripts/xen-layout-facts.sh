#!/usr/bin/env bash
# Regenerates crates/c-probe/facts/xen-4.N.txt from upstream Xen's own
# headers at a release tag: the public headers and tools/include of
# RELEASE-4.N.0, with the xen/foreign headers the build would generate (by
# the tag's own mkheader.py), compiled into crates/c-probe/layout-facts.c.
# Facts about Xen's interface, taken once per release and committed; the
# layout tests compare the Rust definitions with them.
#   scripts/xen-layout-facts.sh XEN_GIT_DIR MINOR    (e.g. ~/xen 19)
set -euo pipefail
repo=$1 minor=$2 tag="RELEASE-4.$minor.0"
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$repo" archive "$tag" xen/include/public tools/include | tar -x -C "$work"
public="$work/xen/include/public"
mkdir -p "$work/inc"
cp -r "$public" "$work/inc/xen"
mkdir -p "$work/inc/xen/sys" "$work/inc/xen/foreign"
cp "$work"/tools/include/xen-sys/Linux/*.h "$work/inc/xen/sys/"
cd "$work/inc/xen/foreign"
for arch in x86_32 x86_64; do
  python3 "$work/tools/include/xen-foreign/mkheader.py" "$arch" "$arch.h" \
    "$public/arch-x86/xen-$arch.h" "$public/arch-x86/xen.h" "$public/xen.h"
  # As the tag's Makefile does after mkheader.py.
  sed -i 's/(__align8__ \(uint64_t\))/(\1)/g' "$arch.h"
done
cc -I "$work/inc" -I "$work/tools/include" -o "$work/layout-facts" "$root/crates/c-probe/layout-facts.c"
out="$root/crates/c-probe/facts/xen-4.$minor.txt"
{
  echo "# Xen 4.$minor on x86_64: layout-facts.c compiled against $tag's headers"
  echo "# (scripts/xen-layout-facts.sh). Facts about Xen's interface; regenerate, do not edit."
  "$work/layout-facts"
} > "$out"
echo "wrote $out"
