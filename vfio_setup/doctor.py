"""`wirecap doctor`: is this host ready for vfio capture? Each check says the exact fix."""
import stat
from dataclasses import dataclass

from . import hugepages
from .host import WIRECAP_GROUP
from .pci import iommu_groups, kernel_release, noiommu_enabled, vfio_pci_state
from .state import load_state

LOW_MEMORY_KB = 256 * 1024          # less available beside the hugepages is a machine in trouble


@dataclass
class Check:
    name: str
    status: str             # "ok", "warn" (works, with a caveat) or "fail" (capture cannot work)
    detail: str
    fix: str | None = None

    def to_json(self):
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def iommu_fix(host):
    """How to turn the IOMMU on, as precisely as the host lets us tell."""
    cmdline = (host.read(host.path("proc/cmdline"), "") or "").split()
    cpuinfo = host.read(host.path("proc/cpuinfo"), "") or ""
    amd = "AuthenticAMD" in cpuinfo
    param, firmware = ("amd_iommu=on", "AMD-Vi/IOMMU") if amd else ("intel_iommu=on", "VT-d")
    if param in cmdline:
        fix = (f"the kernel command line already has {param}, so the firmware keeps the IOMMU off: "
               f"enable {firmware} in the BIOS/UEFI setup and reboot")
    else:
        fix = (f"add `{param} iommu=pt` to the kernel command line (GRUB_CMDLINE_LINUX in "
               f"/etc/default/grub, then `update-grub` or `grub2-mkconfig -o /boot/grub2/grub.cfg`, "
               f"and reboot; kernel/README.md), with {firmware} enabled in the BIOS/UEFI setup")
    if " hypervisor" in cpuinfo:
        fix += "; this is a virtual machine, so its hypervisor must also give it a virtual IOMMU " \
               "(QEMU: -device intel-iommu or -device amd-iommu)"
    return fix


def check_iommu(host):
    groups = iommu_groups(host)
    cmdline = (host.read(host.path("proc/cmdline"), "") or "").split()
    if groups:
        mode = "passthrough for host devices (iommu=pt)" if "iommu=pt" in cmdline else \
            "translated for host devices (iommu=pt would spare them the IOMMU's cost)"
        return Check("IOMMU", "ok", f"on: {len(groups)} IOMMU groups; {mode}")
    if noiommu_enabled(host):
        return Check("IOMMU", "warn", "off; vfio's unsafe no-IOMMU mode is on, so the NIC's DMA is "
                     "not confined", iommu_fix(host))
    return Check("IOMMU", "fail", "off: the kernel made no IOMMU groups, so vfio cannot take a device",
                 iommu_fix(host))


def check_vfio_pci(host):
    state = vfio_pci_state(host)
    if state == "loaded":
        return Check("vfio-pci", "ok", "module loaded")
    if state == "module":
        return Check("vfio-pci", "fail", "module installed but not loaded",
                     "`modprobe vfio-pci`; at every boot: `wirecap setup --persist`")
    release = kernel_release(host)
    return Check("vfio-pci", "fail", f"no vfio-pci module for kernel {release} (none under "
                 f"/lib/modules/{release}, none built in)",
                 f"install the kernel's extra modules (Debian/Ubuntu: `apt install linux-modules-extra-"
                 f"{release}`; Fedora/RHEL: kernel-core has it) or build with CONFIG_VFIO_PCI=m")


def check_hugepages(host):
    pools = [p for p in hugepages.pools(host) if p.node is None]
    reserved = [p for p in pools if p.total]
    if not pools:
        return Check("hugepages", "warn", "this kernel has no hugepages (CONFIG_HUGETLBFS is off); "
                     "packet memory falls back to 4 KiB pages", "use a kernel with CONFIG_HUGETLBFS=y")
    if not reserved:
        return Check("hugepages", "fail", "none reserved",
                     "`wirecap hugepages --reserve 1024` (2 GiB of 2 MiB pages); at every boot: "
                     "`wirecap setup --persist`")
    summary = ", ".join(f"{p.total} x {hugepages.size_label(p.size_kb)} ({p.free} free)" for p in reserved)
    mounted = {size for _, size in hugepages.mounts(host)}
    unmounted = [hugepages.size_label(p.size_kb) for p in reserved if p.size_kb not in mounted]
    if unmounted:
        return Check("hugepages", "warn", f"{summary}; no hugetlbfs mount for {', '.join(unmounted)} pages",
                     f"`wirecap hugepages --reserve N --size {unmounted[0]}` mounts it")
    available = hugepages.meminfo_kb(host, "MemAvailable")
    if available is not None and available < LOW_MEMORY_KB:
        return Check("hugepages", "warn", f"{summary}; they leave {available // 1024} MiB of memory "
                     f"to everything else, and processes may be killed for want of it",
                     "reserve fewer: `wirecap hugepages --reserve N` (`wirecap setup` sizes them "
                     "from memory)")
    return Check("hugepages", "ok", summary)


def _describe_node(path):
    st = path.stat()
    return st, f"{path} ({stat.filemode(st.st_mode)}, uid {st.st_uid}, gid {st.st_gid})"


def check_dev_vfio(host):
    """The container must be open to all (the kernel's default); the group nodes of the NICs
    wirecap bound must be open to group wirecap, and no other /dev/vfio/* is ours to judge."""
    directory = host.path("dev/vfio")
    if not directory.is_dir():
        return Check("/dev/vfio", "warn", f"{directory} does not exist: vfio is not loaded",
                     "`modprobe vfio-pci` creates it")
    problems, fixes = [], []
    container = directory / "vfio"
    if container.exists():
        st, text = _describe_node(container)
        if st.st_mode & 0o666 != 0o666:
            problems.append(f"{text}: not every user may open the vfio container")
            fixes.append(f"`chmod 0666 {container}` (the kernel's default)")
    gid = host.group_id(WIRECAP_GROUP)
    ours = sorted({r.get("iommu_group") for r in load_state(host).values()} - {None})
    nodes = [directory / g for g in ours if (directory / g).exists()]
    locked = []
    for node in nodes:
        st, text = _describe_node(node)
        if gid is None or st.st_gid != gid or st.st_mode & 0o060 != 0o060:
            locked.append((node, text))
    if locked:
        problems.append(f"only root may capture through {', '.join(text for _, text in locked)}")
        steps = [] if gid is not None else [f"`wirecap setup --persist` (creates group {WIRECAP_GROUP})"]
        steps += [f"`chgrp {WIRECAP_GROUP} {node} && chmod 0660 {node}`" for node, _ in locked]
        fixes.append(", then ".join(steps + [f"`usermod -aG {WIRECAP_GROUP} USER`"]))
    if problems:
        return Check("/dev/vfio", "warn", "; ".join(problems), "; ".join(fixes))
    if gid is None:
        return Check("/dev/vfio", "warn", f"no group {WIRECAP_GROUP}: only root will capture from bound devices",
                     "`wirecap setup --persist`")
    if not nodes:
        return Check("/dev/vfio", "ok", f"no device bound by wirecap yet; `wirecap bind` gives its "
                     f"vfio group to group {WIRECAP_GROUP}")
    return Check("/dev/vfio", "ok", f"group {WIRECAP_GROUP} may open {', '.join(n.name for n in nodes)} "
                 f"(the groups wirecap bound)")


def checks(host):
    return [check_iommu(host), check_vfio_pci(host), check_hugepages(host), check_dev_vfio(host)]
