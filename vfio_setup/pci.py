"""PCI scan: the network functions of a host, their drivers, interfaces and IOMMU groups."""
import os
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pyroute2 import IPRoute

from .inuse import Usage, all_routes, interface_usage

INTEL = "8086"
# Physical functions of the 82599 family, from the ixgbe driver's PCI ID table (ixgbe_type.h).
# Left out on purpose: the X540 (1528) and later MACs, and the 82599 virtual function (10ed).
IXGBE_82599 = {
    "10f7": "82599 10 GbE KX4",
    "10f8": "82599 10 GbE combined backplane",
    "10f9": "82599 10 GbE CX4",
    "10fb": "82599ES 10 GbE SFI/SFP+",
    "10fc": "82599 10 GbE XAUI/BX4 LOM",
    "1507": "82599 10 GbE SFP+ (Ethernet module)",
    "1514": "82599 10 GbE KX4 mezzanine",
    "1517": "82599 10 GbE KR",
    "151c": "82599 10 GbE 10GBASE-T LOM",
    "1529": "82599 10 GbE SFP+ FCoE",
    "152a": "82599 10 GbE backplane FCoE",
    "154a": "82599 10 GbE SFP+ (quad port)",
    "154d": "82599 10 GbE SFP+ (SF2)",
    "154f": "82599 10 GbE SFP+ (LCO)",
    "1557": "82599EN 10 GbE SFP+",
    "1558": "82599 10 GbE QSFP+ (quad port)",
}

VFIO_PCI = "vfio-pci"
# Drivers that leave the device's DMA to its owner, so vfio accepts them in a group it hands out
# (they set driver_managed_dma); a device with no driver is fine too.
DMA_SAFE_DRIVERS = {"pci-stub", "pcieport"}

# PCI base classes (first byte of the class code), to say what a group member is.
PCI_CLASSES = {
    0x01: "storage controller", 0x02: "network controller", 0x03: "display controller",
    0x04: "multimedia controller", 0x05: "memory controller", 0x06: "bridge",
    0x07: "communication controller", 0x08: "system peripheral", 0x0c: "serial bus controller",
    0x0d: "wireless controller", 0x12: "processing accelerator",
}

PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def dma_safe(driver):
    return driver is None or driver in DMA_SAFE_DRIVERS or "vfio" in driver


@dataclass
class Interface:
    name: str
    mac: str | None
    link: str | None            # operstate: up, down, unknown, ...
    usage: Usage

    def to_json(self):
        return {"name": self.name, "mac": self.mac, "link": self.link, "usage": self.usage.to_json()}


@dataclass
class Member:
    """Another device in the same IOMMU group."""
    address: str
    driver: str | None
    name: str
    ids: str                    # vendor:device

    def __str__(self):
        driver = f"driver {self.driver}" if self.driver else "no driver"
        return f"{self.address} ({self.name} [{self.ids}], {driver})"

    def to_json(self):
        return {"address": self.address, "driver": self.driver, "name": self.name, "ids": self.ids,
                "dma_safe": dma_safe(self.driver)}


@dataclass
class Device:
    address: str
    vendor: str
    device: str
    name: str
    driver: str | None
    drivers: list                   # other drivers that could take it
    interfaces: list                # Interface
    iommu_group: str | None
    group: list                     # Member: the other devices of the IOMMU group
    numa_node: int | None
    supported: bool                 # an 82599 that wirecap drives
    driver_override: str | None = None

    @property
    def usage_reasons(self):
        reasons = [f"{i.name} {r}" for i in self.interfaces for r in i.usage.reasons]
        if not self.interfaces and self.driver and not dma_safe(self.driver):
            # A driver that owns the device but shows no interface here: a userspace I/O driver
            # (DPDK's igb_uio, uio_pci_generic) or an interface moved into a container's network
            # namespace. Either way something uses it, and we cannot see what.
            reasons.append(f"bound to {self.driver} with no interface in this network namespace "
                           f"(a userspace driver, or an interface moved into a container)")
        return reasons

    @property
    def in_use(self):
        return bool(self.usage_reasons)

    def to_json(self):
        return {
            "address": self.address, "vendor": self.vendor, "device": self.device,
            "name": self.name, "driver": self.driver, "drivers": self.drivers,
            "driver_override": self.driver_override,
            "interfaces": [i.to_json() for i in self.interfaces],
            "iommu_group": self.iommu_group, "group": [m.to_json() for m in self.group],
            "numa_node": self.numa_node, "supported": self.supported,
            "in_use": self.in_use, "in_use_reasons": self.usage_reasons,
        }


def _hex(text):
    return text[2:] if text and text.startswith("0x") else text


def link_name(path):
    """The name a sysfs symlink points at (a driver, an IOMMU group), or None."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def current_driver(host, address):
    return link_name(host.sys("bus/pci/devices", address, "driver"))


def driver_override(host, address):
    value = host.read(host.sys("bus/pci/devices", address, "driver_override"))
    return None if value in (None, "", "(null)") else value


def iommu_groups(host):
    """The IOMMU groups the kernel made; none when the IOMMU is off."""
    try:
        return sorted(os.listdir(host.sys("kernel/iommu_groups")), key=int)
    except FileNotFoundError:
        return []


def noiommu_enabled(host):
    return host.read(host.sys("module/vfio/parameters/enable_unsafe_noiommu_mode")) == "Y"


def kernel_release(host):
    return host.read(host.path("proc/sys/kernel/osrelease")) or os.uname().release


def vfio_pci_state(host):
    """"loaded", "module" (can be loaded with modprobe) or "missing"."""
    if host.sys("bus/pci/drivers", VFIO_PCI).is_dir():
        return "loaded"
    moddir = host.path("lib/modules", kernel_release(host))
    for listing in ("modules.dep", "modules.builtin"):
        text = host.read(moddir / listing, "")
        if re.search(r"(^|/)vfio-pci\.ko", text, re.M):
            return "module"
    return "missing"


class PciIds:
    """Names from the pci.ids database when the host has one (pciutils/hwdata)."""

    def __init__(self, host):
        self.names = {}
        for candidate in ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids"):
            path = host.path(candidate)
            if path.is_file():
                self._load(path)
                break

    def _load(self, path):
        vendor = None
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                if line.startswith("C "):
                    break                       # device classes follow the vendors; not needed
                if not line.startswith("\t"):
                    vendor = line[:4].lower()
                    self.names[vendor] = line[4:].strip()
                elif not line.startswith("\t\t") and vendor:
                    self.names[(vendor, line[1:5].lower())] = line[5:].strip()

    def name(self, vendor, device):
        if (vendor, device) in self.names:
            return f"{self.names.get(vendor, vendor)} {self.names[(vendor, device)]}"
        return None


# A PCI modalias starts pci:vVVVVVVVVdDDDDDDDD (vendor and device, 8 hex digits each).
ALIAS_IDS = re.compile(r"pci:v([0-9A-F]{8})d([0-9A-F]{8})")


class AliasTable:
    """Which kernel modules claim a device, from modules.alias of the running kernel.

    Nearly all of the ~9,000 PCI patterns name a vendor and device outright; those are indexed
    by that pair, so a lookup matches a handful of patterns instead of every one.
    """

    def __init__(self, host):
        self.by_ids = {}            # (vendor, device) -> [(pattern, module)]
        self.others = []            # patterns with a wildcard in the vendor or device
        moddir = host.path("lib/modules", kernel_release(host))
        for listing in ("modules.alias", "modules.builtin.alias"):
            for line in (host.read(moddir / listing, "") or "").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[0] == "alias" and parts[1].startswith("pci:"):
                    ids = ALIAS_IDS.match(parts[1])
                    bucket = self.by_ids.setdefault(ids.groups(), []) if ids else self.others
                    bucket.append((parts[1], parts[2]))

    def modules(self, modalias):
        ids = ALIAS_IDS.match(modalias)
        candidates = self.others + (self.by_ids.get(ids.groups(), []) if ids else [])
        return sorted({module for pattern, module in candidates if fnmatchcase(modalias, pattern)})


def _ids(host, address):
    base = host.sys("bus/pci/devices", address)
    return _hex(host.read(base / "vendor", "")), _hex(host.read(base / "device", ""))


def _describe(host, address, ids):
    """A name for the device: ours for an 82599, pci.ids when present, else its PCI class."""
    vendor, device = _ids(host, address)
    base = host.sys("bus/pci/devices", address)
    if vendor == INTEL and device in IXGBE_82599:
        return f"Intel {IXGBE_82599[device]}"
    name = ids.name(vendor, device)
    if name:
        return name
    klass = int(host.read(base / "class", "0x0") or "0x0", 16) >> 16
    return PCI_CLASSES.get(klass, "PCI device")


def group_members(host, address, group, ids):
    try:
        members = sorted(os.listdir(host.sys("kernel/iommu_groups", group, "devices")))
    except FileNotFoundError:
        return []
    return [Member(m, current_driver(host, m), _describe(host, m, ids), ":".join(_ids(host, m)))
            for m in members if m != address]


def interfaces_by_device(host):
    """PCI address -> interface names, from /sys/class/net (virtio nests them one level deeper)."""
    found = {}
    try:
        names = sorted(os.listdir(host.sys("class/net")))
    except FileNotFoundError:
        return found
    for name in names:
        real = os.path.realpath(host.sys("class/net", name))
        addresses = [part for part in real.split(os.sep) if PCI_ADDRESS.match(part)]
        if addresses:
            found.setdefault(addresses[-1], []).append(name)
    return found


def _driver_name(host, module):
    # Modules use underscores (vfio_pci), drivers often dashes (vfio-pci): prefer the driver's own.
    for candidate in (module, module.replace("_", "-")):
        if host.sys("bus/pci/drivers", candidate).is_dir():
            return candidate
    return module


def _numa(text):
    try:
        node = int(text)
    except (TypeError, ValueError):
        return None
    return node if node >= 0 else None


def scan(host):
    """Every network-class PCI function of the host, as `Device`s sorted by address."""
    ids, aliases = PciIds(host), AliasTable(host)
    vfio_available = vfio_pci_state(host) != "missing"
    netdevs = interfaces_by_device(host)
    devices = []
    try:
        addresses = sorted(os.listdir(host.sys("bus/pci/devices")))
    except FileNotFoundError:
        return devices
    with IPRoute(netns=host.netns, flags=0) as ipr:     # flags=0: never create the namespace
        routes = all_routes(ipr)
        for address in addresses:
            base = host.sys("bus/pci/devices", address)
            if not (host.read(base / "class", "") or "").startswith("0x02"):
                continue
            vendor, device = _ids(host, address)
            driver = current_driver(host, address)
            others = {_driver_name(host, m) for m in aliases.modules(host.read(base / "modalias", ""))}
            if vfio_available:
                others.add(VFIO_PCI)
            others.discard(driver)
            interfaces = [
                Interface(name,
                          host.read(host.sys("class/net", name, "address")),
                          host.read(host.sys("class/net", name, "operstate")),
                          interface_usage(ipr, name, routes))
                for name in netdevs.get(address, [])]
            group = link_name(base / "iommu_group")
            devices.append(Device(
                address=address, vendor=vendor, device=device,
                name=_describe(host, address, ids), driver=driver, drivers=sorted(others),
                interfaces=interfaces, iommu_group=group,
                group=group_members(host, address, group, ids) if group else [],
                numa_node=_numa(host.read(base / "numa_node")),
                supported=vendor == INTEL and device in IXGBE_82599,
                driver_override=driver_override(host, address)))
    return devices
