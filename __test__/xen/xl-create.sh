#!/bin/sh
# The reference for the builder's speed, run in dom0 by `npm run test:xen`:
# `xl create -p` of the same 256 MiB PV guest (dom0's kernel, the busybox
# initramfs), timed; then the guest is unpaused and must print its marker on
# its console and power off. xl needs xenstored, xen-init-dom0 and
# xenconsoled: run.sh starts them.
set -u
# Hundredths of a second since boot.
now() { cut -d' ' -f1 /proc/uptime | tr -d .; }

cat > /tmp/g1.cfg <<CFG
name = "g1"
type = "pv"
kernel = "/tmp/guest/vmlinuz"
ramdisk = "/tmp/guest/initrd.gz"
memory = 256
vcpus = 1
extra = "console=hvc0 quiet"
CFG
# Three times, the first two destroyed at once: a median to compare with
# buildDomain's (__test__/xen/build.mjs builds three too).
for run in 1 2 3; do
  start=$(now)
  xl create -p /tmp/g1.cfg || { echo "xl create -p failed"; exit 1; }
  echo "xen-test-timing: xl create -p, 256 MiB PV guest: $(( ($(now) - start) * 10 )) ms"
  [ "$run" = 3 ] || xl destroy g1
done
xl debug-keys u
# "Domain N (total" on Xen 4.17, "dN (total" on 4.20.
xl dmesg | grep -A 2 -E "(Domain |\) *d)$(xl domid g1) \(total"
xl unpause g1
log=/var/log/xen/console/guest-g1.log
for _ in $(seq 1 120); do
  grep -q "guest-marker:" "$log" 2> /dev/null && break
  sleep 1
done
if grep "guest-marker:" "$log"; then
  echo "the guest booted and ran its init"
else
  echo "no marker from the guest in 120 s; its console:"
  tail -n 20 "$log"
  exit 1
fi

# PVH through xl too, as the reference for the builder's PVH guest (with
# clearcpuid=rdtscp as there: Xen under TCG cannot emulate RDTSCP for it).
cat > /tmp/g2.cfg <<CFG
name = "g2"
type = "pvh"
kernel = "/tmp/guest/vmlinuz"
ramdisk = "/tmp/guest/initrd.gz"
memory = 256
vcpus = 1
extra = "console=hvc0 clearcpuid=rdtscp"
CFG
start=$(now)
xl create -p /tmp/g2.cfg || { echo "xl create -p of the PVH guest failed"; exit 1; }
echo "xen-test-timing: xl create -p, 256 MiB PVH guest: $(( ($(now) - start) * 10 )) ms"
xl unpause g2
log=/var/log/xen/console/guest-g2.log
for _ in $(seq 1 150); do
  grep -q "guest-marker:" "$log" 2> /dev/null && break
  sleep 1
done
if grep "guest-marker:" "$log"; then
  echo "the PVH guest booted and ran its init"
else
  echo "no marker from the PVH guest in 150 s; its console's last lines:"
  tail -n 5 "$log"
  exit 1
fi
