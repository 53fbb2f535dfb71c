"""The vfio layer on Linux's vfio-pci behind QEMU's VT-d: open, BAR0, bus mastering, DMA maps,
frames moved by e1000e DMA through the IOMMU (checked byte for byte), IOMMU faults, two groups
in one container, and capture without root through group wirecap."""
import ctypes
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from guestlib import ALONE, PAIR, command_register, group, locked_kib, mac_of, wait_in_log
from e1000e import GPRC, GPTC, STATUS, STATUS_LU, TDT, E1000e
from wirecap._dma import Domain
from wirecap._vfio import open_pci
from wirecap.errors import WirecapError

pytestmark = pytest.mark.usefixtures("bound")
MASTER = 1 << 2
# What QEMU's VT-d (39-bit address width) leaves: all of it but the interrupt window.
VTD_RANGES = [(0, 0xFEDFFFFF), (0xFEF00000, 0x7FFFFFFFFF)]


def frame(dst, src, n, seed):
    rnd = random.Random(seed)
    return dst + src + b"\x88\xb5" + bytes(rnd.randrange(256) for _ in range(n - 14))


def test_open_maps_bar0_and_bus_mastering_follows_the_handle():
    dev = open_pci(f"pci:{ALONE}")
    try:
        assert dev.fd >= 0 and dev.group.fd >= 0 and dev.container.fd >= 0
        assert dev.group.name == group(ALONE) and dev.bar0_size == 0x20000
        nic = E1000e(dev, None)
        assert nic.mac == mac_of(ALONE)         # RAL0/RAH0 read through the mapped BAR0
        assert nic.r(STATUS) & STATUS_LU
        assert dev.bus_master and command_register(ALONE) & MASTER
    finally:
        dev.close()
    assert not command_register(ALONE) & MASTER
    assert dev.bar0_addr == 0 and dev.fd == -1 and dev.container.fd == -1


def test_the_iova_space_is_asked_of_the_iommu():
    dev = open_pci(ALONE)
    try:
        assert dev.container.iova_ranges() == VTD_RANGES
        dom = Domain(dev.container)
        assert dom.iova_ranges() == [(1 << 32, 0x7FFFFFFFFF)]
        region = dom.alloc(8192, hugepages=False)
        assert 1 << 32 <= region.iova and region.iova + region.size - 1 <= 0x7FFFFFFFFF
        with pytest.raises(WirecapError, match=r"no room in the IOVA ranges the IOMMU translates "
                                               r"\(0x100000000-0x7fffffffff"):
            dom._place(1 << 39, 4096)           # more than 39 bits hold
        dom.free(region)
    finally:
        dev.close()


def test_mapped_memory_is_locked_once(hugepage_pool):
    assert hugepage_pool(4) == 4
    dev = open_pci(ALONE)
    try:
        dom = Domain(dev.container)
        before = locked_kib()
        small = dom.alloc(3 << 20, hugepages=False)     # vfio pins it; nothing else locks it
        assert locked_kib() - before == 3 << 10
        huge = dom.alloc(4 << 20)
        assert huge.backing == "hugepages" and locked_kib() - before == 7 << 10
        dom.free(small)
        dom.free(huge)
        assert locked_kib() == before
    finally:
        dev.close()


def test_a_mapped_buffer_is_held_until_unmapped():
    dev = open_pci(ALONE)
    try:
        buf = bytearray(3 * 4096)
        skip = -ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) % 4096
        dev.container.map(memoryview(buf)[skip:skip + 4096], 1 << 33)
        with pytest.raises(BufferError):
            buf.extend(bytes(1 << 20))          # would move the page the IOMMU points at
        dev.container.unmap(1 << 33)
        buf.extend(bytes(1 << 20))
    finally:
        dev.close()


def test_frames_cross_two_groups_in_one_container_byte_for_byte():
    tx_dev = open_pci(ALONE)
    rx_dev = open_pci(PAIR[0], container=tx_dev.container)     # another group, same domain
    try:
        assert tx_dev.container is rx_dev.container and tx_dev.group is not rx_dev.group
        dom = Domain(tx_dev.container)
        rx, tx = E1000e(rx_dev, dom), E1000e(tx_dev, dom)
        rx.start(tx=False)
        tx.start(rx=False)
        rx.r(GPRC), tx.r(GPTC)                  # clear on read
        sent = [frame(mac_of(PAIR[0]), mac_of(ALONE), n, n) for n in (60, 64, 301, 1024, 1514)]
        got = []
        for f in sent:
            tx.send(f)
            got.append(rx.receive())
        assert got == sent
        assert (tx.r(GPTC), rx.r(GPRC)) == (len(sent), len(sent))
    finally:
        rx_dev.close()
        tx_dev.close()


def test_dma_outside_the_mappings_faults_in_the_iommu():
    dev = open_pci(ALONE)
    try:
        dom = Domain(dev.container)
        nic = E1000e(dev, dom)
        nic.start(rx=False)
        unmapped = 0x7F00000000
        nic.send(bytes(128), iova=unmapped, wait=False)
        assert wait_in_log(rf"DMAR:.*\[00:06\.0\] fault addr (0x)?{unmapped:x}"), "no DMAR fault"
        ring = nic.tx_ring.iova
        dom.free(nic.tx_ring)                   # the ring is unmapped: the next fetch faults
        nic.w(TDT, (nic.tx_next + 1) % nic.ndesc)
        assert wait_in_log(rf"DMAR:.*\[00:06\.0\] fault addr (0x)?{ring:x}"), "no DMAR fault"
    finally:
        dev.close()


def test_a_member_of_group_wirecap_captures_without_root(tmp_path):
    subprocess.run(["useradd", "--no-create-home", "-G", "wirecap", "wcuser"], check=True)
    limit = Path("/etc/security/limits.d/60-wirecap.conf").read_text().split()[-1]
    script = textwrap.dedent(f"""
        from wirecap._dma import Domain
        from wirecap._vfio import open_pci
        dev = open_pci("{ALONE}")
        region = Domain(dev.container).alloc(1 << 20, hugepages=False)
        print("ok", dev.bar0_size, region.iova)
        dev.close()
    """)
    # pam_limits would apply the installed limit at login; prlimit applies the same figure.
    result = subprocess.run(["prlimit", f"--memlock={int(limit) * 1024}", "setpriv", "--reuid=wcuser",
                             "--regid=wcuser", "--init-groups", sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["ok", str(0x20000)]
    denied = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert denied.returncode == 1 and "permission denied" in denied.stderr
