#!/bin/sh
# Runs in dom0, from the host's share: each suite writes its output and exit
# status into results/, with how long it took. xen/ on the share is the
# release's /usr/lib/xen-4.N (test-xen.mjs boots each release in turn).
cd /mnt/host
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu
mkdir -p results
run() {
  name=$1; shift
  # suites.txt: the suites test-xen.mjs was asked for (XEN_TEST_SUITES).
  grep -qx "$name" suites.txt || { echo "xen-test: $name not asked for"; return; }
  start=$(date +%s)
  echo "xen-test: $name started"
  "$@" > "results/$name.txt" 2>&1
  echo $? > "results/$name.status"
  echo $(( $(date +%s) - start )) > "results/$name.seconds"
  echo "xen-test: $name exited $(cat results/$name.status) after $(cat results/$name.seconds) s"
}
run rust ./real_xen --ignored --test-threads=1 --nocapture
run smoke ./node/node --no-warnings smoke.mjs
# Starts without xenstored (checks what opening gives then), and starts it (xenstored.sh).
run xenstore ./node/node --no-warnings xenstore.mjs
# xenstored (unless the xenstore suite started it), dom0's own keys and
# xenconsoled (Xen's, off the share), for the builder's guests and for xl.
export PATH="/mnt/host/xen/bin:$PATH"
mkdir -p /var/run/xenstored /var/lib/xenstored /var/log/xen/console /var/lib/xen /var/run/xen /etc/xen
[ -s /var/run/xenstored.pid ] || { xenstored --pid-file=/var/run/xenstored.pid && xen-init-dom0 > /dev/null; } ||
  echo "xen-test: xenstored did not start"
xenconsoled --log=guest --log-dir=/var/log/xen/console || echo "xen-test: xenconsoled did not start"
# libxl runs its save helper from the release's own directory (xl save, xl restore).
release=$(xl info | awk '/^xen_major/ {major = $3} /^xen_minor/ {minor = $3} END {print major "." minor}')
[ -e "/usr/lib/xen-$release" ] || ln -s /mnt/host/xen "/usr/lib/xen-$release"
# The guest's kernel and ramdisk from dom0's memory, not over 9p: the timings
# compare builders, not the share.
mkdir -p /tmp/guest && cp guest/vmlinuz guest/vmlinux guest/initrd.gz xen/boot/hvmloader /tmp/guest/
run builder env XEN_BUILDER=/mnt/host/xen-domain-builder GUEST_KERNEL=/tmp/guest/vmlinuz \
  GUEST_RAMDISK=/tmp/guest/initrd.gz HVMLOADER=/tmp/guest/hvmloader ./builder_real_xen --ignored --test-threads=1 --nocapture
run xl sh xl-create.sh
# Many guests at once through one BuildHost (both accountings), xl create -p
# in parallel as the reference, and a soak; before the build suite, which
# ends xenstored.
run mass env XEN_BUILDER=/mnt/host/xen-domain-builder GUEST_KERNEL=/tmp/guest/vmlinux ./node/node --no-warnings mass-start.mjs
# Suspend to a file and restore on the other node, a live migration, and
# xl save / xl restore as the reference.
run suspend env XEN_BUILDER=/mnt/host/xen-domain-builder GUEST_KERNEL=/tmp/guest/vmlinux ./node/node --no-warnings suspend.mjs
# The whole Domain.build through the package: createDomain, buildDomain with
# the builder and the real xenstore, unpause, the guest's console.
run build env XEN_BUILDER=/mnt/host/xen-domain-builder ./node/node --no-warnings build.mjs
