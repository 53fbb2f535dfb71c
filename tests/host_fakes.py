"""Fake hosts for the vfio_setup tests: a sysfs tree laid out like the kernel's, plus a small
emulation of what the kernel does when its driver files are written (unbind, bind,
drivers_probe, driver_override) and of the commands vfio_setup runs (modprobe, mount, groupadd).
"""
import argparse
import contextlib
import errno
import io
import os
import subprocess
from pathlib import Path

from vfio_setup import cli
from vfio_setup.host import Host
from wirecap.errors import WirecapError

INTEL = "0x8086"
NET_CLASS = "0x020000"


class FakeSys:
    """sys/ with proc/, dev/, etc/ and run/ beside it, under `base`."""

    def __init__(self, base, iommu=True, release="6.1.0-fake", cpu="GenuineIntel", cmdline=""):
        self.base = Path(base)
        self.sys = self.base / "sys"
        self.release = release
        self.driver_ids = {}            # driver -> {(vendor, device)} it matches by ID table
        self.net_drivers = set()        # drivers that create a network interface when bound
        self.interfaces = {}            # address -> interface name it gets from a net driver
        self.probe_fails = set()        # drivers whose probe fails (they stay unbound, as in Linux)
        self.modules = set()            # drivers modprobe can load
        for d in ("bus/pci/devices", "bus/pci/drivers", "devices/pci0000:00", "class/net",
                  "kernel/iommu_groups", "devices/system/node"):
            (self.sys / d).mkdir(parents=True)
        (self.sys / "bus/pci/drivers_probe").write_text("")
        proc = self.base / "proc"
        (proc / "sys/kernel").mkdir(parents=True)
        (proc / "sys/kernel/osrelease").write_text(release + "\n")
        (proc / "cmdline").write_text(cmdline + "\n")
        (proc / "cpuinfo").write_text(f"vendor_id\t: {cpu}\nflags\t\t: fpu vme\n")
        (proc / "mounts").write_text("sysfs /sys sysfs rw 0 0\n")
        (proc / "meminfo").write_text("HugePages_Total:       0\nHugepagesize:       2048 kB\n")
        (self.base / "etc").mkdir()
        (self.base / "etc/group").write_text("root:x:0:\n")
        self.iommu = iommu

    def rel(self, path):
        return os.path.relpath(path, self.sys)

    # --- building the tree -----------------------------------------------------------------

    def add_driver(self, name, ids=(), net=False):
        d = self.sys / "bus/pci/drivers" / name
        d.mkdir()
        for f in ("bind", "unbind", "new_id", "remove_id"):
            (d / f).write_text("")
        self.driver_ids[name] = set(ids)
        if net:
            self.net_drivers.add(name)

    def load_vfio(self, noiommu_param=True):
        self.add_driver("vfio-pci")
        if noiommu_param:
            p = self.sys / "module/vfio/parameters"
            p.mkdir(parents=True, exist_ok=True)
            (p / "enable_unsafe_noiommu_mode").write_text("N\n")

    def add_device(self, address, vendor=INTEL, device="0x10fb", cls=NET_CLASS, driver=None,
                   iface=None, mac="90:e2:ba:00:00:01", operstate="up", group=None, numa="0",
                   nested=None):
        dev = self.sys / "devices/pci0000:00" / address
        dev.mkdir()
        for name, value in (("vendor", vendor), ("device", device), ("class", cls),
                            ("numa_node", numa), ("driver_override", "(null)")):
            (dev / name).write_text(value + "\n")
        v, d = vendor[2:].upper(), device[2:].upper()
        (dev / "modalias").write_text(f"pci:v0000{v}d0000{d}sv00008086sd0000000Cbc02sc00i00\n")
        (self.sys / "bus/pci/devices" / address).symlink_to(f"../../../devices/pci0000:00/{address}")
        if self.iommu:
            group = group if group is not None else str(len(os.listdir(self.sys / "kernel/iommu_groups")))
            g = self.sys / "kernel/iommu_groups" / group / "devices"
            g.mkdir(parents=True, exist_ok=True)
            (g / address).symlink_to(f"../../../../devices/pci0000:00/{address}")
            (dev / "iommu_group").symlink_to(f"../../../kernel/iommu_groups/{group}")
        if iface:
            self.interfaces[address] = (iface, mac, operstate, nested)
        if driver:
            if driver not in self.driver_ids:
                self.add_driver(driver)
            self._link(address, driver)
        return dev

    def add_node(self, node, pools=(("2048", 0, 0), ("1048576", 0, 0))):
        for base in (self.sys / f"devices/system/node/node{node}/hugepages", self.sys / "kernel/mm/hugepages"):
            for size, total, free in pools:
                p = base / f"hugepages-{size}kB"
                p.mkdir(parents=True, exist_ok=True)
                (p / "nr_hugepages").write_text(f"{total}\n")
                (p / "free_hugepages").write_text(f"{free}\n")

    # --- state ------------------------------------------------------------------------------

    def driver(self, address):
        link = self.sys / "bus/pci/devices" / address / "driver"
        return os.path.basename(os.readlink(link)) if link.is_symlink() else None

    def override(self, address):
        return (self.sys / "bus/pci/devices" / address / "driver_override").read_text().strip()

    def has_interface(self, name):
        return (self.sys / "class/net" / name).exists()

    def _link(self, address, driver):
        dev = self.sys / "devices/pci0000:00" / address
        (dev / "driver").symlink_to(f"../../../bus/pci/drivers/{driver}")
        (self.sys / "bus/pci/drivers" / driver / address).symlink_to(f"../../../../devices/pci0000:00/{address}")
        if driver in self.net_drivers and address in self.interfaces:
            name, mac, operstate, nested = self.interfaces[address]
            parent = dev / nested if nested else dev
            net = parent / "net" / name
            net.mkdir(parents=True)
            (net / "address").write_text(mac + "\n")
            (net / "operstate").write_text(operstate + "\n")
            target = os.path.relpath(net, self.sys / "class/net")
            (self.sys / "class/net" / name).symlink_to(target)

    def _unlink(self, address, driver):
        dev = self.sys / "devices/pci0000:00" / address
        (dev / "driver").unlink()
        (self.sys / "bus/pci/drivers" / driver / address).unlink()
        if address in self.interfaces:
            name, _, _, nested = self.interfaces[address]
            (self.sys / "class/net" / name).unlink(missing_ok=True)
            net = (dev / nested if nested else dev) / "net" / name
            if net.exists():
                for f in net.iterdir():
                    f.unlink()
                net.rmdir()

    def _matches(self, address, driver):
        override = self.override(address)
        if override != "(null)":
            return override == driver
        dev = self.sys / "bus/pci/devices" / address
        ids = (dev / "vendor").read_text().strip(), (dev / "device").read_text().strip()
        return ids in self.driver_ids.get(driver, set())

    def _probe(self, address, driver):
        if driver in self.probe_fails:
            return                      # Linux logs the probe error; the write itself succeeds
        self._link(address, driver)
        group = self.sys / "bus/pci/devices" / address / "iommu_group"
        if driver == "vfio-pci" and group.is_symlink():     # vfio makes the group's node
            node = self.base / "dev/vfio" / os.path.basename(os.readlink(group))
            node.parent.mkdir(parents=True, exist_ok=True)
            node.touch(mode=0o600)

    # --- the kernel's side of a sysfs write ------------------------------------------------

    def kernel_write(self, path, text):
        parts = Path(self.rel(path)).parts
        value = text.strip()
        if parts[-1] == "driver_override":
            path.write_text((value or "(null)") + "\n")
        elif parts[:3] == ("bus", "pci", "drivers") and parts[-1] == "unbind":
            if self.driver(value) != parts[3]:
                raise OSError(errno.ENODEV, "No such device", str(path))
            self._unlink(value, parts[3])
        elif parts[:3] == ("bus", "pci", "drivers") and parts[-1] == "bind":
            if self.driver(value) is not None:
                raise OSError(errno.EBUSY, "Device or resource busy", str(path))
            if not self._matches(value, parts[3]):
                raise OSError(errno.ENODEV, "No such device", str(path))
            self._probe(value, parts[3])
        elif parts == ("bus", "pci", "drivers_probe"):
            if self.driver(value) is None:
                for driver in sorted(self.driver_ids):
                    if self._matches(value, driver):
                        self._probe(value, driver)
                        break


class FakeHost(Host):
    """A Host over a FakeSys: writes reach the fake kernel, commands are emulated."""

    def __init__(self, fake, *, fail_on=None, **kwargs):
        kwargs.setdefault("out", self._collect)
        kwargs.setdefault("euid", 0)
        self.output = []
        super().__init__(fake.sys, fake.base, **kwargs)
        self.fakesys = fake
        self.fail_on = fail_on          # (path suffix, errno): that write fails
        self.writes = []                # (path, text) of every sysfs write made, tried or planned
        self.commands = []

    def _collect(self, line):
        self.output.append(line)

    @property
    def text(self):
        return "\n".join(self.output)

    def write(self, path, text):
        self.writes.append((Path(path), text))
        if self.fail_on and str(path).endswith(self.fail_on[0]) and not self.dry_run:
            raise OSError(self.fail_on[1], os.strerror(self.fail_on[1]), str(path))
        super().write(path, text)
        if not self.dry_run:
            self.fakesys.kernel_write(Path(path), text)

    def run(self, argv):
        self.commands.append(list(argv))
        if self.dry_run:
            return super().run(argv)
        fake = self.fakesys
        if argv[0] == "modprobe":
            if argv[1] in fake.modules:
                if argv[1] == "vfio-pci":
                    fake.load_vfio()
                else:
                    fake.add_driver(argv[1])
                return subprocess.CompletedProcess(argv, 0, "", "")
            return subprocess.CompletedProcess(
                argv, 1, "", f"modprobe: FATAL: Module {argv[1]} not found in directory /lib/modules/{fake.release}\n")
        if argv[0] == "mount":
            point, options = argv[-1], argv[argv.index("-o") + 1]
            with open(fake.base / "proc/mounts", "a") as f:
                f.write(f"nodev {point} hugetlbfs rw,relatime,{options} 0 0\n")
        if argv[0] == "groupadd":
            with open(fake.base / "etc/group", "a") as f:
                f.write(f"{argv[-1]}:x:990:\n")
        return subprocess.CompletedProcess(argv, 0, "", "")


def wirecap(*argv):
    """Run `wirecap ARGV...` as wirecap.cli.main does: (exit status, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="wirecap")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = args.func(args) or 0
        except WirecapError as exc:
            print(f"wirecap {args.command}: {exc}", file=err)
            code = 2
    return code, out.getvalue(), err.getvalue()


def sysfs_writes(host):
    """The host's writes as (path relative to sysfs, text), for exact comparisons."""
    return [(os.path.relpath(p, host.sysfs), t) for p, t in host.writes]


def standard(tmp_path, iommu=True, vfio=True):
    """A host with two 82599 ports on ixgbe (wcf2, wcf3) in groups of their own, an X540 on
    ixgbe (wcf4), a virtio NIC (wcf5, nested under virtio0) and a SATA controller."""
    fake = FakeSys(tmp_path, iommu=iommu)
    fake.add_driver("ixgbe", ids={(INTEL, "0x10fb"), (INTEL, "0x1528")}, net=True)
    fake.add_driver("virtio-pci", ids={("0x1af4", "0x1041")}, net=True)
    fake.add_driver("ahci", ids={(INTEL, "0xa102")})
    fake.modules = {"vfio-pci", "ixgbe"}
    if vfio:
        fake.load_vfio()
    fake.add_device("0000:03:00.0", driver="ixgbe", iface="wcf2", mac="90:e2:ba:00:00:02",
                    group="14", operstate="down")
    fake.add_device("0000:03:00.1", driver="ixgbe", iface="wcf3", mac="90:e2:ba:00:00:03",
                    group="15", operstate="down")
    fake.add_device("0000:05:00.0", device="0x1528", driver="ixgbe", iface="wcf4",
                    mac="a0:36:9f:00:00:04", group="16", numa="1", operstate="down")
    fake.add_device("0000:00:03.0", vendor="0x1af4", device="0x1041", driver="virtio-pci",
                    iface="wcf5", mac="52:54:00:00:00:05", group="3", numa="-1", nested="virtio0")
    fake.add_device("0000:00:1f.2", device="0xa102", cls="0x010601", driver="ahci", group="9")
    return fake
