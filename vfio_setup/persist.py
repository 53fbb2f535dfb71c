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
LIMITS_CONF = "etc/security/limits.d/60-wirecap.conf"
# Earlier versions installed a rule giving group wirecap every /dev/vfio/* of the host; the
# runtime rule `wirecap bind` writes names only the groups it bound.
OLD_UDEV_RULE = "etc/udev/rules.d/60-wirecap-vfio.rules"
MAX_PAGES = 1024                    # 2 GiB of 2 MiB pages: the paper's pools, and then some
PAGE_KB = hugepages.SIZES["2M"]
SLACK_KB = 256 * 1024               # locked memory beyond the hugepages: rings in 4 KiB pages
KEEP_FREE_KB = 512 * 1024           # what a reservation must leave to everything else, at least


def kernel_files():
    """[(path relative to /, source file)] of everything `--persist` installs."""
    return sorted((p.relative_to(KERNEL_DIR), p) for p in (KERNEL_DIR / "etc").rglob("*") if p.is_file())


def hugepage_count(host, asked=None):
    """The 2 MiB pages to reserve: ``asked``, or a quarter of the memory (at most MAX_PAGES).
    Refuses a count that would leave the machine less than it needs to run."""
    total = hugepages.meminfo_kb(host, "MemTotal")
    if asked is None:
        return MAX_PAGES if total is None else min(MAX_PAGES, total // 4 // PAGE_KB)
    if asked < 0:
        raise WirecapError(f"--hugepages {asked}: a count of pages, 0 or more. Fix: --hugepages 256")
    keep = None if total is None else max(KEEP_FREE_KB, total // 8)
    if total is not None and asked * PAGE_KB > total - keep:
        most = (total - keep) // PAGE_KB
        raise WirecapError(
            f"--hugepages {asked} asks for {asked * PAGE_KB // 1024} MiB of this machine's "
            f"{total // 1024} MiB, leaving less than the {keep // 1024} MiB it needs to run. "
            f"Fix: --hugepages {most} at most, or leave it out ({hugepage_count(host)} pages)")
    return asked


def render(relative, text, pages):
    """A kernel/ file as installed: the hugepage count and the memlock bound that follows it."""
    if str(relative) == HUGEPAGES_CONF:
        return re.sub(r"^vm\.nr_hugepages\s*=.*$", f"vm.nr_hugepages = {pages}", text, flags=re.M)
    if str(relative) == LIMITS_CONF:
        return re.sub(r"^(@\S+\s+-\s+memlock)\s+\S+$", rf"\g<1> {pages * PAGE_KB + SLACK_KB}",
                      text, flags=re.M)
    return text


def install(host, pages):
    """Create the wirecap group and install kernel/etc/* into the host's /etc."""
    if host.group_id(WIRECAP_GROUP) is None:
        result = host.run(["groupadd", "--system", WIRECAP_GROUP])
        if result.returncode != 0:
            raise WirecapError(
                f"creating group {WIRECAP_GROUP} failed: {result.stderr.strip()}. "
                f"Fix: create it yourself (`groupadd --system {WIRECAP_GROUP}`) and run setup again.")
        if not host.dry_run:
            host.out(f"created group {WIRECAP_GROUP}")
    old = host.path(OLD_UDEV_RULE)
    if old.is_file():
        host.remove_file(old)
        if not host.dry_run:
            host.out(f"removed {old}: it gave group {WIRECAP_GROUP} every vfio group of the host")
    for relative, source in kernel_files():
        destination = host.path(relative)
        content = render(relative, source.read_text(), pages)
        if destination.is_file() and destination.read_text() == content:
            host.out(f"unchanged {destination}")
            continue
        host.write_file(destination, content)
        if not host.dry_run:
            host.out(f"installed {destination}")


def _reserve_hugepages(host, want):
    have = sum(p.total for p in hugepages.pools(host) if p.node is None and p.size_kb == PAGE_KB)
    if have >= want:
        host.out(f"hugepages: {have} x 2M already reserved")
        hugepages.mount(host, PAGE_KB)
        return
    for node, asked, got in hugepages.reserve(host, want, "2M"):
        raise WirecapError(f"reserved only {got} of {asked} x 2M pages (the kernel found no more "
                           f"free memory); capture pools get {got * 2} MiB. Fix: ask for fewer "
                           f"(--hugepages {got}) or reserve them at boot (`wirecap setup --persist`, "
                           f"then reboot)")


def setup(host, persist=False, pages=None):
    """Apply each step, go on after one fails; returns the failures (messages). ``pages``:
    the 2 MiB hugepages to reserve (None: sized from the machine's memory)."""
    host.require_root("wirecap setup")
    pages = hugepage_count(host, pages)
    steps = [("load vfio-pci", ensure_vfio_pci),
             ("reserve hugepages", lambda h: _reserve_hugepages(h, pages))]
    if persist:
        steps.insert(0, ("install kernel/ files", lambda h: install(h, pages)))
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
