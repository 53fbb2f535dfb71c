#!/bin/busybox sh
# The guest's first process (tests/vm/harness.py puts it in the initramfs as /init): reach the
# host's root over virtio-9p, lay a tmpfs over it so the guest may change anything, mount the
# results share, run the scenarios there, and power off. Whatever happens, the guest stops.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules); do insmod "/$m" || echo "wc-init: insmod $m failed"; done

arg() { sed -n "s/.*\bwc\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
REPO=$(arg repo)
ARGS=$(arg args | tr , ' ')

# cache=loose: the shared root does not change while the guest runs, and every 9p round trip
# costs dearly under emulation.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 wcroot /lower &&
mount -t tmpfs -o size=512m tmpfs /upper &&
mkdir -p /upper/u /upper/w &&
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot || {
    echo "wc-init: cannot mount the shared root"; poweroff -f; }
mkdir -p /newroot/wc-out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 wcout /newroot/wc-out
for d in proc sys dev; do mount --move /$d /newroot/$d; done
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
# Fresh state where the host's would mislead: /run (bindings, udev), /tmp; /mnt is not ours.
for d in run tmp mnt; do mount -t tmpfs tmpfs /newroot/$d; done
chmod 1777 /newroot/tmp

echo "wc-init: running $ARGS"
chroot /newroot /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    "$REPO/.venv/bin/python" "$REPO/tests/vm/guest/run.py" /wc-out $ARGS
echo $? > /newroot/wc-out/rc
sync
poweroff -f
