"""The five bugs the first run in a guest found, each against the real vfio-pci."""
import subprocess
import sys
import textwrap

import pytest

from guestlib import ALONE, PAIR, command_register, group, wirecap
from wirecap._dma import Domain
from wirecap._vfio import open_pci
from wirecap.errors import WirecapError

pytestmark = pytest.mark.usefixtures("bound")
MASTER = 1 << 2


def test_1_a_device_is_opened_once():
    dev = open_pci(ALONE)
    try:
        for again in (dict(), dict(container=dev.container)):
            with pytest.raises(WirecapError, match=f"{ALONE} is already open in this process"):
                open_pci(ALONE, **again)
        assert dev.bus_master and command_register(ALONE) & MASTER
    finally:
        dev.close()
    open_pci(ALONE).close()                     # closed, it may be opened again


def test_2_closing_one_device_leaves_the_shared_container_to_the_other():
    first = open_pci(ALONE)
    second = open_pci(PAIR[0], container=first.container)
    dom = Domain(first.container)
    region = dom.alloc(4096, hugepages=False)
    first.close()
    assert second.container.fd >= 0 and second.group.fd >= 0
    assert second.bus_master and command_register(PAIR[0]) & MASTER
    dom.free(region)                            # still mapped: the unmap reaches the kernel
    with pytest.raises(WirecapError, match="still serves"):
        second.container.close()
    container = second.container
    second.close()
    assert container.fd == -1                   # open_pci made it: it went with its last group


def test_3_a_busy_group_says_who_holds_it():
    dev = open_pci(PAIR[0])
    try:
        with pytest.raises(WirecapError, match=f"this process already has IOMMU group "
                                               f"{group(PAIR[0])} open \\(for {PAIR[0]}\\) in another"):
            open_pci(PAIR[1])                   # same group, another (new) container
        mate = open_pci(PAIR[1], container=dev.container)
        mate.close()
    finally:
        dev.close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from wirecap._vfio import open_pci
        dev = open_pci("{ALONE}")
        print("open", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        with pytest.raises(WirecapError, match="another process has the group open"):
            open_pci(ALONE)
    finally:
        holder.kill()                           # it holds ALONE's group: the unbind would wait
        holder.wait(60)


def test_4_iovas_come_from_the_ranges_the_iommu_reports():
    dev = open_pci(ALONE)
    try:
        first, last = dev.container.iova_ranges()[-1]
        assert last == 0x7FFFFFFFFF             # 39 bits, not the 48 that were assumed
        dom = Domain(dev.container)
        regions = [dom.alloc(2 << 20, hugepages=False) for _ in range(3)]
        assert all(r.iova + r.size - 1 <= last for r in regions)
        for r in regions:
            dom.free(r)
    finally:
        dev.close()


def test_5_setup_sizes_hugepages_from_memory_and_refuses_too_many():
    code, out, err = wirecap("setup", "--hugepages", "1000")      # 2000 MiB of a 2 GiB guest
    assert code == 2
    assert "--hugepages 1000 asks for 2000 MiB of this machine's" in out + err
    assert "Fix: --hugepages" in out + err
