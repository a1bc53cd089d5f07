#!/bin/sh
# Starts Debian's xenstored in dom0 and lets xen-init-dom0 write dom0's keys.
set -e
mkdir -p /var/run/xenstored /var/lib/xenstored /var/log/xen /var/lib/xen /var/run/xen
/usr/lib/xen/bin/xenstored --pid-file=/var/run/xenstored.pid
/usr/lib/xen/bin/xen-init-dom0
echo "xenstored $(cat /var/run/xenstored.pid) up"
