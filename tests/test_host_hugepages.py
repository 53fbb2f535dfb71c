"""Hugepages: fake trees for the exact writes and mounts, the real /proc and /sys for reservation."""
import os
import re
import subprocess
from pathlib import Path

import pytest
from host_fakes import FakeHost, FakeSys, sysfs_writes

from vfio_setup import hugepages
from vfio_setup.host import Host
from wirecap.errors import WirecapError


def two_nodes(tmp_path):
    fake = FakeSys(tmp_path)
    fake.add_node(0, pools=(("2048", 512, 500), ("1048576", 0, 0)))
    fake.add_node(1, pools=(("2048", 512, 512), ("1048576", 0, 0)))
    return fake


def test_pools_per_node_and_machine_wide(tmp_path):
    pools = {(p.node, p.size_kb): (p.total, p.free) for p in hugepages.pools(FakeHost(two_nodes(tmp_path)))}
    assert pools[(0, 2048)] == (512, 500) and pools[(1, 2048)] == (512, 512)
    assert pools[(1, 1048576)] == (0, 0) and (None, 2048) in pools


def test_reserve_per_node_writes_each_node_and_mounts(tmp_path):
    fake = two_nodes(tmp_path)
    host = FakeHost(fake)
    assert hugepages.reserve(host, 4, "1G", [0, 1]) == []
    assert sysfs_writes(host) == [
        ("devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages", "4"),
        ("devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages", "4")]
    assert host.commands == [["mount", "-t", "hugetlbfs", "-o", "pagesize=1G", "nodev",
                              str(fake.base / "dev/hugepages-1G")]]
    assert (fake.base / "dev/hugepages-1G").is_dir()
    assert hugepages.mounts(host) == [(str(fake.base / "dev/hugepages-1G"), 1048576)]


def test_reserve_machine_wide_and_mount_for_the_wirecap_group(tmp_path):
    fake = two_nodes(tmp_path)
    (fake.base / "etc/group").write_text("root:x:0:\nwirecap:x:990:alice\n")
    host = FakeHost(fake)
    hugepages.reserve(host, 1024)
    assert sysfs_writes(host) == [("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "1024")]
    assert host.commands[0][4] == "pagesize=2M,gid=990,mode=1770"
    assert host.commands[0][-1] == str(fake.base / "dev/hugepages")     # the default size's place


def test_existing_mount_is_reused(tmp_path):
    fake = two_nodes(tmp_path)
    (fake.base / "proc/mounts").write_text("hugetlbfs /mnt/huge hugetlbfs rw,relatime,pagesize=2M 0 0\n")
    host = FakeHost(fake)
    hugepages.reserve(host, 8)
    assert host.commands == [] and "hugetlbfs for 2M pages: /mnt/huge" in host.text


def test_shortfall_is_reported_with_the_boot_parameter(tmp_path):
    fake = two_nodes(tmp_path)

    class Fragmented(FakeHost):
        def write(self, path, text):       # the kernel finds only 2 of the pages asked for
            super().write(path, text)
            Path(path).write_text("2\n")
    host = Fragmented(fake)
    assert hugepages.reserve(host, 16, "1G", [1], do_mount=False) == [(1, 16, 2)]
    assert "the kernel found 2" in host.text and "hugepagesz=1G hugepages=16" in host.text


def test_unknown_node_and_size_are_refused(tmp_path):
    host = FakeHost(two_nodes(tmp_path))
    with pytest.raises(WirecapError, match="no NUMA node 7; this host has node\\(s\\) 0, 1"):
        hugepages.reserve(host, 4, "2M", [7])
    with pytest.raises(WirecapError, match="sizes are 2M, 1G"):
        hugepages.reserve(host, 4, "4M")
    assert host.writes == []


def test_missing_pool_is_refused_before_writing(tmp_path):
    fake = FakeSys(tmp_path)
    fake.add_node(0, pools=(("2048", 0, 0),))        # no 1 GiB pool in this kernel
    host = FakeHost(fake)
    with pytest.raises(WirecapError, match="no 1G hugepage pool"):
        hugepages.reserve(host, 1, "1G")
    assert host.writes == []


def test_dry_run_writes_nothing(tmp_path):
    fake = two_nodes(tmp_path)
    host = FakeHost(fake, dry_run=True)
    hugepages.reserve(host, 64, "2M", [0])
    path = fake.sys / "devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
    assert f"would write '64' to {path}" in host.text and path.read_text() == "512\n"
    assert "would run: mount -t hugetlbfs" in host.text and not (fake.base / "dev/hugepages").exists()


# --- the real machine ----------------------------------------------------------------------

def meminfo_total():
    return int(re.search(r"HugePages_Total:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))


@pytest.fixture
def real_pool():
    """The real 2 MiB pool, put back as it was afterwards."""
    if os.geteuid() != 0:
        pytest.skip("reserving hugepages on this machine needs root")
    pool = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
    if not pool.exists():
        pytest.skip("this kernel has no 2 MiB hugepages")
    before = pool.read_text()
    mounts_before = Path("/proc/mounts").read_text()
    dirs_before = set(Path("/dev").glob("hugepages*"))
    yield pool
    pool.write_text(before)
    for point, _ in hugepages.mounts(Host()):
        if point not in mounts_before:
            subprocess.run(["umount", point], check=True)
    for created in set(Path("/dev").glob("hugepages*")) - dirs_before:
        created.rmdir()
    assert pool.read_text() == before


@pytest.mark.root
def test_reserve_on_this_machine(real_pool):
    out = []
    host = Host(out=out.append)
    start = int(real_pool.read_text())
    assert hugepages.reserve(host, start + 8, "2M", do_mount=False) == []
    assert int(real_pool.read_text()) == start + 8 == meminfo_total()
    assert any(f"{start + 8} reserved" in line for line in hugepages.describe(host))
    node = hugepages.nodes(host)[0]
    node_pool = Path(f"/sys/devices/system/node/node{node}/hugepages/hugepages-2048kB/nr_hugepages")
    node_start = int(node_pool.read_text())
    hugepages.reserve(host, node_start + 4, "2M", [node], do_mount=False)
    assert int(node_pool.read_text()) == node_start + 4


@pytest.mark.root
def test_reserve_mounts_hugetlbfs_on_this_machine(real_pool):
    host = Host(out=lambda line: None)
    hugepages.reserve(host, int(real_pool.read_text()) + 2, "2M")
    assert 2048 in {size for _, size in hugepages.mounts(host)}
    assert "hugetlbfs" in Path("/proc/mounts").read_text()
