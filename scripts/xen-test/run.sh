#!/bin/sh
# Runs in dom0, from the host's share: each suite writes its output and exit
# status into results/, with how long it took.
cd /mnt/host
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu
mkdir -p results
run() {
  name=$1; shift
  start=$(date +%s)
  "$@" > "results/$name.txt" 2>&1
  echo $? > "results/$name.status"
  echo $(( $(date +%s) - start )) > "results/$name.seconds"
  echo "xen-test: $name exited $(cat results/$name.status) after $(cat results/$name.seconds) s"
}
run rust ./real_xen --ignored --test-threads=1 --nocapture
run smoke ./node/node --no-warnings smoke.mjs
# Starts without xenstored (checks what opening gives then), and starts it (xenstored.sh).
run xenstore ./node/node --no-warnings xenstore.mjs
