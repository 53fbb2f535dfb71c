"""`wirecap setup`: bring the host to the configuration in kernel/ now, and with --persist for good."""
import re
from pathlib import Path

from .errors import WirecapError

from . import hugepages
from .bind import ensure_vfio_pci
from .doctor import check_iommu
from .host import WIRECAP_GROUP

# vfio_setup/kernel is a symlink to the repository's kernel/ directory, so the same path works
# from a source checkout and, shipped as package data, from an installed wheel.
KERNEL_DIR = Path(__file__).parent / "kernel"
HUGEPAGES_CONF = "etc/sysctl.d/60-wirecap-hugepages.conf"


def kernel_files():
    """[(path relative to /, source file)] of everything `--persist` installs."""
    return sorted((p.relative_to(KERNEL_DIR), p) for p in (KERNEL_DIR / "etc").rglob("*") if p.is_file())


def configured_hugepages():
    text = (KERNEL_DIR / HUGEPAGES_CONF).read_text()
    return int(re.search(r"^vm\.nr_hugepages\s*=\s*(\d+)", text, re.M).group(1))


def install(host):
    """Create the wirecap group and install kernel/etc/* into the host's /etc."""
    if host.group_id(WIRECAP_GROUP) is None:
        result = host.run(["groupadd", "--system", WIRECAP_GROUP])
        if result.returncode != 0:
            raise WirecapError(
                f"creating group {WIRECAP_GROUP} failed: {result.stderr.strip()}. "
                f"Fix: create it yourself (`groupadd --system {WIRECAP_GROUP}`) and run setup again.")
        if not host.dry_run:
            host.out(f"created group {WIRECAP_GROUP}")
    for relative, source in kernel_files():
        destination = host.path(relative)
        content = source.read_text()
        if destination.is_file() and destination.read_text() == content:
            host.out(f"unchanged {destination}")
            continue
        host.write_file(destination, content)
        if not host.dry_run:
            host.out(f"installed {destination}")
    for command in (["udevadm", "control", "--reload-rules"],
                    ["udevadm", "trigger", "--subsystem-match=vfio"]):
        result = host.run(command)
        if result.returncode != 0:
            host.out(f"note: `{' '.join(command)}` failed ({result.stderr.strip()}); the udev rule "
                     f"applies from the next boot")
            break


def _reserve_hugepages(host):
    want = configured_hugepages()
    have = sum(p.total for p in hugepages.pools(host) if p.node is None and p.size_kb == hugepages.SIZES["2M"])
    if have >= want:
        host.out(f"hugepages: {have} x 2M already reserved")
        hugepages.mount(host, hugepages.SIZES["2M"])
    else:
        hugepages.reserve(host, want, "2M")


def setup(host, persist=False):
    """Apply each step, go on after one fails; returns the failures (messages)."""
    host.require_root("wirecap setup")
    steps = [("load vfio-pci", ensure_vfio_pci), ("reserve hugepages", _reserve_hugepages)]
    if persist:
        steps.insert(0, ("install kernel/ files", install))
    failures = []
    for name, step in steps:
        try:
            step(host)
        except WirecapError as exc:
            failures.append(f"{name}: {exc}")
            host.out(f"failed to {name}: {exc}")
    iommu = check_iommu(host)
    if iommu.status != "ok":
        host.out(f"still to do by hand: the IOMMU is {iommu.detail}. Fix: {iommu.fix}")
    return failures
