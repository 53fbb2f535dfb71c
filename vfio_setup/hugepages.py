"""Hugepages: show and reserve 2 MiB / 1 GiB pages, per NUMA node or in total; mount hugetlbfs."""
import re
from dataclasses import dataclass

from .errors import WirecapError

from .host import WIRECAP_GROUP

SIZES = {"2M": 2048, "1G": 1048576}         # page size -> kB, as sysfs names the pools
MOUNT_SIZE = re.compile(r"pagesize=(\d+)([KMG])")
UNITS_KB = {"K": 1, "M": 1024, "G": 1024 * 1024}


def size_label(size_kb):
    return next((label for label, kb in SIZES.items() if kb == size_kb), f"{size_kb}kB")


@dataclass
class Pool:
    size_kb: int
    node: int | None        # None: the machine-wide pool
    total: int
    free: int


def _read_pool(host, directory, node):
    size_kb = int(directory.name.removeprefix("hugepages-").removesuffix("kB"))
    return Pool(size_kb, node, int(host.read(directory / "nr_hugepages", "0")),
                int(host.read(directory / "free_hugepages", "0")))


def _pool_dirs(directory):
    try:
        return sorted((p for p in directory.iterdir() if p.name.startswith("hugepages-")),
                      key=lambda p: int(p.name.removeprefix("hugepages-").removesuffix("kB")))
    except FileNotFoundError:
        return []


def nodes(host):
    base = host.sys("devices/system/node")
    try:
        return sorted(int(p.name[4:]) for p in base.iterdir() if re.fullmatch(r"node\d+", p.name))
    except FileNotFoundError:
        return []


def pools(host):
    """Machine-wide pools first, then one per NUMA node and page size."""
    found = [_read_pool(host, d, None) for d in _pool_dirs(host.sys("kernel/mm/hugepages"))]
    for node in nodes(host):
        found += [_read_pool(host, d, node)
                  for d in _pool_dirs(host.sys(f"devices/system/node/node{node}/hugepages"))]
    return found


def default_size_kb(host):
    match = re.search(r"^Hugepagesize:\s+(\d+) kB", host.read(host.path("proc/meminfo"), "") or "", re.M)
    return int(match.group(1)) if match else SIZES["2M"]


def mounts(host):
    """[(mount point, page size in kB)] of the hugetlbfs mounts."""
    found = []
    for line in (host.read(host.path("proc/mounts"), "") or "").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "hugetlbfs":
            match = MOUNT_SIZE.search(fields[3])
            size = int(match.group(1)) * UNITS_KB[match.group(2)] if match else default_size_kb(host)
            found.append((fields[1], size))
    return found


def mount(host, size_kb):
    """Mount hugetlbfs for `size_kb` pages unless one is mounted; returns the mount point."""
    for point, size in mounts(host):
        if size == size_kb:
            return point
    label = size_label(size_kb)
    # /dev/hugepages is where systemd mounts the default size; other sizes go beside it.
    point = host.path("dev/hugepages" if size_kb == default_size_kb(host) else f"dev/hugepages-{label}")
    options = f"pagesize={label}"
    gid = host.group_id(WIRECAP_GROUP)
    if gid is not None:
        options += f",gid={gid},mode=1770"     # members of the wirecap group may map pages
    host.mkdir(point)
    result = host.run(["mount", "-t", "hugetlbfs", "-o", options, "nodev", str(point)])
    if result.returncode != 0:
        raise WirecapError(
            f"mounting hugetlbfs on {point} failed: {(result.stderr or '').strip()}; the pages stay reserved. "
            f"Fix: mount it yourself (`mount -t hugetlbfs -o {options} nodev {point}`) or pass --no-mount.")
    return point


def reserve(host, count, size="2M", node_list=None, do_mount=True):
    """Set the pool of `size` pages to `count`: per node in `node_list`, or machine-wide.

    Returns the shortfalls [(node, asked, got)]: the kernel reserves what it can find, which
    for 1 GiB pages on a running machine is often less than asked.
    """
    if size not in SIZES:
        raise WirecapError(f"no {size} hugepages: sizes are {', '.join(SIZES)}. Fix: --size 2M or --size 1G.")
    host.require_root("wirecap hugepages --reserve")
    size_kb = SIZES[size]
    pool_dir = f"hugepages-{size_kb}kB"
    if node_list is None:
        targets = [(None, host.sys("kernel/mm/hugepages", pool_dir))]
    else:
        known = nodes(host)
        missing = [n for n in node_list if n not in known]
        if missing:
            raise WirecapError(
                f"no NUMA node {', '.join(map(str, missing))}; this host has node(s) "
                f"{', '.join(map(str, known)) or 'none'}. Fix: pick one of those, or leave --node out.")
        targets = [(n, host.sys(f"devices/system/node/node{n}/hugepages", pool_dir)) for n in node_list]
    for node, directory in targets:
        if not directory.is_dir():
            raise WirecapError(
                f"this kernel has no {size} hugepage pool ({directory} is missing); nothing was changed. "
                f"Fix: use --size 2M, or boot with `hugepagesz={size}` (CPU support for it is required).")
    shortfalls = []
    for node, directory in targets:
        host.write(directory / "nr_hugepages", str(count))
        got = count if host.dry_run else int(host.read(directory / "nr_hugepages", "0"))
        where = "machine-wide" if node is None else f"on node {node}"
        if got < count:
            shortfalls.append((node, count, got))
            host.out(f"asked for {count} x {size} pages {where}, the kernel found {got}: memory is too "
                     f"fragmented. Fix: reserve them at boot with `hugepagesz={size} hugepages={count}` "
                     f"on the kernel command line (kernel/README.md), or ask for fewer.")
        else:
            host.out(f"{'would reserve' if host.dry_run else 'reserved'} {count} x {size} pages {where}")
    if do_mount and count:
        point = mount(host, size_kb)
        if not host.dry_run:
            host.out(f"hugetlbfs for {size} pages: {point}")
    return shortfalls


def describe(host):
    """Lines for `wirecap hugepages` without --reserve."""
    lines = []
    found = pools(host)
    if not found:
        return ["this kernel has no hugepage pools (CONFIG_HUGETLBFS is off)"]
    for pool in found:
        where = "total " if pool.node is None else f"node {pool.node}"
        mib = pool.total * pool.size_kb // 1024
        lines.append(f"{size_label(pool.size_kb):>3} pages, {where:7}: {pool.total:6} reserved "
                     f"({mib} MiB), {pool.free:6} free")
    points = mounts(host)
    for point, size in points:
        lines.append(f"hugetlbfs for {size_label(size)} pages mounted on {point}")
    if not points:
        lines.append("hugetlbfs is not mounted (`wirecap hugepages --reserve N` mounts it)")
    return lines

