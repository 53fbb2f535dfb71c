"""Boot a QEMU guest with a virtual Intel VT-d IOMMU and emulated e1000e NICs, run scenarios
inside it against a real Linux vfio-pci, and bring their results back.

The guest runs this machine's own kernel package (/boot/vmlinuz-KVER with /lib/modules/KVER) and
this machine's root file system, shared read-only over virtio-9p, so the guest runs the very
checkout and .venv the host built; an overlay with a tmpfs upper layer lets it change whatever
it likes, and a second, writable share brings the results back. The initramfs is built here:
static busybox, the modules needed to reach the shared root, and tests/vm/init.sh.

    python tests/vm/harness.py [--timeout S] [--out DIR] [SCENARIO.py ...]
    python tests/vm/harness.py --prepare      # install what is missing (root, apt-get)

Every wait is bounded: QEMU is killed when the guest overruns its time.
"""
import argparse
import gzip
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUEST = HERE / "guest"
QEMU = "qemu-system-x86_64"
BUSYBOX = Path("/bin/busybox")
# What the initramfs needs to reach the shared root; modprobe says in which order to load them.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# Debian packages that provide the above; .ci/run and `make test-vm` install them when root.
PACKAGES = ("qemu-system-x86", "linux-image-amd64", "busybox-static")
MEMORY_MIB = 2048
TIMEOUT = 1500              # s; the run under TCG on a busy 2-core machine takes a few minutes

# The guest's NICs (PCI address -> role); the scenarios find them by these addresses. The pair
# sits behind a PCI bridge, whose devices the IOMMU cannot tell apart: one group. (Two
# functions of one root-bus device do not share a group: Linux takes those as isolated.)
NICS = {
    "0000:00:04.0": "kernel-driven, up with an address: the in-use refusal",
    "0000:01:01.0": "behind the bridge with 01:02.0: one IOMMU group, on hub 0",
    "0000:01:02.0": "behind the bridge with 01:01.0",
    "0000:00:06.0": "alone in its group, on hub 0 with the pair",
}


def mac_of(address):
    """The MAC the guest's NIC at ``address`` gets: 52:54:00:BB:SS:FF (bus, slot, function)."""
    bus, slot_fn = address.split(":")[1:]
    slot, fn = slot_fn.split(".")
    return bytes([0x52, 0x54, 0x00, int(bus, 16), int(slot, 16), int(fn)])


def kernels():
    """(release, vmlinuz) of each installed kernel whose modules include vfio-pci, newest first."""
    found = []
    for image in Path("/boot").glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        if any(Path("/lib/modules", release, "kernel/drivers/vfio/pci").glob("vfio-pci.ko*")):
            found.append((release, image))
    return sorted(found, key=lambda r: [int(n) if n.isdigit() else 0
                                        for n in re.split(r"[.-]", r[0])], reverse=True)


def missing():
    """Why this machine cannot run the guest (None: it can)."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian: apt-get install {' '.join(PACKAGES)})"
    if not BUSYBOX.is_file() or not _static(BUSYBOX):
        return f"no static busybox at {BUSYBOX} (Debian: apt-get install busybox-static)"
    found = kernels()
    if not found:
        return "no kernel in /boot with vfio-pci among its modules (Debian: apt-get install linux-image-amd64)"
    release, image = found[0]
    if not os.access(image, os.R_OK):
        return f"{image} is not readable by this user: run as root"
    if not (REPO / ".venv/bin/python").exists():
        return f"{REPO}/.venv is not built: `make build` first"
    return None


def _static(path):
    """ldd fails on a static executable ("not a dynamic executable")."""
    return subprocess.run(["ldd", str(path)], capture_output=True).returncode != 0


# --- the initramfs: a newc cpio archive, written here ------------------------------------------

class Cpio:
    """The newc ("070701") format the kernel unpacks into its initial root file system."""

    def __init__(self):
        self.parts, self.ino = [], 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        self.ino += 1
        head = b"070701" + b"".join(b"%08x" % f for f in fields) + name_b
        self.parts += [head, b"\0" * (-len(head) % 4), data, b"\0" * (-len(data) % 4)]

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def bytes(self):
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def boot_modules(release):
    """The .ko files to insmod, in dependency order, each once."""
    order = []
    for module in BOOT_MODULES:
        out = subprocess.run(["modprobe", "-S", release, "--show-depends", module],
                             capture_output=True, text=True, check=True).stdout
        for path in re.findall(r"^insmod (\S+)", out, re.M):
            if path not in order:
                order.append(path)
    return order


def build_initramfs(release, path):
    archive = Cpio()
    for d in ("bin", "dev", "proc", "sys", "mod", "lower", "upper", "newroot"):
        archive.dir(d)
    archive.chardev("dev/console", 5, 1)
    archive.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    archive.file("init", (HERE / "init.sh").read_bytes(), 0o755)
    names = []
    for i, ko in enumerate(boot_modules(release)):
        data = Path(ko).read_bytes()
        if ko.endswith(".xz"):          # busybox insmod takes plain objects only
            data = lzma.decompress(data)
        elif ko.endswith(".zst"):
            data = subprocess.run(["zstd", "-dc", ko], capture_output=True, check=True).stdout
        elif ko.endswith(".gz"):
            data = gzip.decompress(data)
        name = f"mod/{i:02d}-{Path(ko).name.split('.ko')[0]}.ko"
        archive.file(name, data)
        names.append(name)
    archive.file("modules", ("\n".join(names) + "\n").encode())
    Path(path).write_bytes(archive.bytes())


# --- the guest ---------------------------------------------------------------------------------

def qemu_command(image, initrd, out, args):
    append = " ".join([
        # no_timer_check: on a loaded host the emulated timer can miss the early IRQ test ("timer
        # doesn't work through Interrupt-remapped IO-APIC") and the boot panics.
        "console=ttyS0", "intel_iommu=on", "net.ifnames=0", "panic=-1", "loglevel=4", "printk.devkmsg=on",
        "no_timer_check",
        f"wc.repo={REPO}", f"wc.args={','.join(args)}"])
    cmd = [QEMU, "-accel", "tcg,thread=multi", "-cpu", "max", "-machine", "q35,kernel-irqchip=split",
           "-m", str(MEMORY_MIB), "-smp", "2", "-nographic", "-no-reboot", "-monitor", "none",
           "-device", "intel-iommu,intremap=on,caching-mode=on",
           "-kernel", str(image), "-initrd", str(initrd), "-append", append,
           "-fsdev", "local,id=root,path=/,security_model=passthrough,readonly=on,multidevs=remap",
           "-device", "virtio-9p-pci,fsdev=root,mount_tag=wcroot",
           "-fsdev", f"local,id=out,path={out},security_model=passthrough,multidevs=remap",
           "-device", "virtio-9p-pci,fsdev=out,mount_tag=wcout",
           "-netdev", "user,id=user0", "-netdev", "hubport,id=hub5a,hubid=0",
           "-netdev", "hubport,id=hub5b,hubid=0", "-netdev", "hubport,id=hub6,hubid=0"]
    # shpc=off: no hot-plug controller, so no kernel driver (shpchp) takes the bridge and the
    # pair's group is viable once both NICs are on vfio-pci.
    cmd += ["-device", "pci-bridge,id=bridge,bus=pcie.0,addr=05.0,chassis_nr=1,shpc=off"]
    # romfile= (none): no iPXE boot ROM, whose prompts cost seconds of emulated time each.
    for address, netdev in zip(NICS, ("user0", "hub5a", "hub5b", "hub6")):
        bus, slot = address.split(":")[1:]
        mac = ":".join(f"{b:02x}" for b in mac_of(address))
        where = f"bus=bridge,addr={slot}" if bus == "01" else f"addr={slot}"
        cmd += ["-device", f"e1000e,netdev={netdev},{where},mac={mac},romfile="]
    return cmd


def run(scenarios, out, timeout=TIMEOUT):
    """Boot the guest, run ``scenarios`` (file names under tests/vm/guest) and return a summary:
    {"rc", "seconds", "timed_out", "console", "out"}; the guest leaves junit.xml, dmesg.txt
    and guest.json in ``out``."""
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    release, image = kernels()[0]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file():
            stale.unlink()
    os.chmod(out, 0o777)                # the guest's non-root scenario writes here too
    console = out / "console.log"
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wirecap-vm-") as tmp:
        initrd = Path(tmp, "initramfs.cpio")
        build_initramfs(release, initrd)
        for attempt in range(2):        # a boot that dies before init (see no_timer_check) once more
            with open(console, "wb") as log:
                proc = subprocess.Popen(qemu_command(image, initrd, out, scenarios),
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                timed_out = False
                try:
                    proc.wait(max(1.0, timeout - (time.monotonic() - start)))
                except subprocess.TimeoutExpired:
                    timed_out = True
                    os.killpg(proc.pid, 9)
                    proc.wait(30)
            if timed_out or b"wc-init: running" in console.read_bytes():
                break
    seconds = time.monotonic() - start
    rc_file = out / "rc"
    return {"rc": int(rc_file.read_text()) if rc_file.exists() else None, "seconds": seconds,
            "timed_out": timed_out, "kernel": release, "console": console.read_text(errors="replace"),
            "out": out}


def prepare():
    """Install the packages the guest needs, when missing and this is root on Debian/Ubuntu."""
    reason = missing()
    if reason is None or "apt-get install" not in reason:
        return reason
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{reason}; not installing it: that needs root and apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    for step in ([install], [["apt-get", "update", "-qq"], install]):    # update only if needed
        if all(subprocess.run(c, env=env, stdout=subprocess.DEVNULL, timeout=1800).returncode == 0
               for c in step):
            break
    return missing()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help="files under tests/vm/guest (default: all)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds before QEMU is killed")
    parser.add_argument("--out", default=None, help="results directory (default: a temporary one)")
    parser.add_argument("--prepare", action="store_true",
                        help="install what the guest needs (as root, with apt-get) and exit")
    args = parser.parse_args(argv)
    if args.prepare:
        reason = prepare()
        print(f"VM tests: {'ready' if reason is None else 'will skip: ' + reason}")
        return 0
    reason = missing()
    if reason:
        print(f"cannot run the guest: {reason}", file=sys.stderr)
        return 2
    scenarios = args.scenarios or sorted(p.name for p in GUEST.glob("scenario_*.py"))
    out = Path(args.out or tempfile.mkdtemp(prefix="wirecap-vm-out-"))
    result = run(scenarios, out, args.timeout)
    print(result["console"][-4000:])
    summary = {k: v for k, v in result.items() if k in ("rc", "seconds", "timed_out", "kernel")}
    print(json.dumps(summary | {"out": str(out)}))
    return 0 if result["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
