"""vfio: what open_pci refuses and why (fake sysfs trees; this host has no vfio), and the values
the module takes from <linux/vfio.h>."""
import errno
import os
import re
import shlex
import subprocess
import sysconfig
from pathlib import Path

import pytest

from host_fakes import FakeSys
from wirecap._vfio import HEADER_VALUES, Container, open_pci
from wirecap.errors import WirecapError

ADDR = "0000:03:00.0"
HEADER = Path("/usr/include/linux/vfio.h")


def fake_host(tmp_path, driver="vfio-pci", iommu=True):
    """An 82599 port in IOMMU group 14, bound to `driver`; dev/ is left to each test."""
    fake = FakeSys(tmp_path, iommu=iommu)
    fake.load_vfio()
    fake.add_device(ADDR, driver=driver, group="14")
    return fake


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def refusal(fake, container=None, address=ADDR):
    before = open_fds()
    with pytest.raises(WirecapError) as caught:
        open_pci(address, sysfs_root=fake.sys, container=container)
    assert open_fds() == before, "a refused open leaves no file descriptor behind"
    return str(caught.value)


def test_names_that_are_not_pci_addresses(tmp_path):
    with pytest.raises(WirecapError, match="'eth0' is not a PCI address.*wirecap devices"):
        open_pci("eth0", sysfs_root=FakeSys(tmp_path).sys)


def test_unknown_device(tmp_path):
    text = refusal(FakeSys(tmp_path), address="pci:03:00.0")
    assert f"no PCI device {ADDR}" in text and "`wirecap devices`" in text


def test_no_iommu_group_means_the_iommu_is_off(tmp_path):
    text = refusal(fake_host(tmp_path, iommu=False))
    assert "has no IOMMU group" in text and "intel_iommu=on" in text and "`wirecap doctor`" in text


@pytest.mark.parametrize("driver,shown", [("ixgbe", "ixgbe"), (None, "no driver")])
def test_device_not_bound_to_vfio_pci(tmp_path, driver, shown):
    text = refusal(fake_host(tmp_path, driver=driver))
    assert f"bound to {shown}, not vfio-pci" in text and f"`wirecap bind {ADDR}`" in text


def test_group_with_a_device_still_on_a_kernel_driver_is_not_viable(tmp_path):
    fake = fake_host(tmp_path)
    fake.add_device("0000:03:00.1", driver="ixgbe", group="14")
    text = refusal(fake)
    assert "IOMMU group 14 is not viable" in text and "0000:03:00.1" in text
    assert f"`wirecap bind {ADDR} 0000:03:00.1`" in text


def test_group_mates_without_dma_of_their_own_are_fine(tmp_path):
    fake = fake_host(tmp_path)
    fake.add_device("0000:03:00.1", driver="pci-stub", group="14")
    assert "vfio is not loaded" in refusal(fake)        # past the viability check


def test_no_dev_vfio(tmp_path):
    text = refusal(fake_host(tmp_path))
    assert "dev/vfio/vfio: vfio is not loaded" in text and "`modprobe vfio-pci`" in text


def test_noiommu_mode_is_refused(tmp_path):
    fake = fake_host(tmp_path)
    (fake.base / "dev/vfio").mkdir(parents=True)
    (fake.base / "dev/vfio/noiommu-14").touch()
    text = refusal(fake)
    assert "no-IOMMU mode" in text and "intel_iommu=on" in text


def test_a_file_that_is_not_a_vfio_container(tmp_path):
    fake = fake_host(tmp_path)
    (fake.base / "dev/vfio").mkdir(parents=True)
    (fake.base / "dev/vfio/vfio").touch()
    text = refusal(fake)
    assert "is not a vfio container" in text and "VFIO_GET_API_VERSION" in text


def test_group_node_missing_or_not_a_group(tmp_path):
    fake = fake_host(tmp_path)
    (fake.base / "dev/vfio").mkdir(parents=True)
    closed = Container.__new__(Container)       # stands in for a container: the group comes next
    assert "vfio made no node for IOMMU group 14" in refusal(fake, closed)
    (fake.base / "dev/vfio/14").touch()
    text = refusal(fake, closed)
    assert "IOMMU group 14" in text and "VFIO_GROUP_GET_STATUS" in text


@pytest.mark.parametrize("err,expected", [
    (errno.EACCES, "`wirecap setup --persist`"),    # doctor's fix: udev rule, group wirecap
    (errno.EBUSY, "another process has the group open")])
def test_group_node_refused(tmp_path, monkeypatch, err, expected):
    fake = fake_host(tmp_path)
    (fake.base / "dev/vfio").mkdir(parents=True)
    (fake.base / "dev/vfio/14").touch()
    real_open = os.open

    def refusing_open(path, *args):
        if str(path).startswith(str(fake.base / "dev/vfio")):
            raise OSError(err, os.strerror(err), str(path))
        return real_open(path, *args)
    monkeypatch.setattr(os, "open", refusing_open)
    assert expected in refusal(fake, Container.__new__(Container))


def test_a_device_open_in_this_process_is_not_opened_again(tmp_path, monkeypatch):
    from wirecap import _vfio
    monkeypatch.setitem(_vfio._open_devices, ADDR, object())
    text = refusal(fake_host(tmp_path))
    assert f"{ADDR} is already open in this process" in text and "use the open handle" in text


@pytest.mark.skipif(Path("/dev/vfio/vfio").exists(), reason="this host has vfio")
def test_this_host_has_no_vfio():
    with pytest.raises(WirecapError, match="/dev/vfio/vfio: vfio is not loaded.*modprobe vfio-pci"):
        Container()


def test_ioctl_numbers_are_the_headers_IO_macros():
    text = HEADER.read_text()
    vfio_type = ord(re.search(r"#define VFIO_TYPE\s+\('(.)'\)", text).group(1))
    base = int(re.search(r"#define VFIO_BASE\s+(\d+)", text).group(1))
    # _IO(type, nr) in asm-generic/ioctl.h: no direction, size 0, type in bits 8-15, nr in 0-7
    defined = {name: vfio_type << 8 | (base + int(n)) for name, n in re.findall(
        r"#define (VFIO_\w+)\s+_IO\(VFIO_TYPE, VFIO_BASE \+ (\d+)\)", text)}
    used = {name: value for name, value in HEADER_VALUES.items() if name in defined}
    assert len(used) == 10
    assert used == {name: defined[name] for name in used}


def test_constants_and_struct_sizes_are_what_the_compiler_reads_in_the_header(tmp_path):
    prints = "\n".join(f'    printf("%s=%lu\\n", "{name}", (unsigned long)({name}));'
                       for name in HEADER_VALUES)
    src = tmp_path / "probe.c"
    src.write_text("#include <stdio.h>\n#include <linux/vfio.h>\n#include <linux/pci_regs.h>\n"
                   f"int main(void)\n{{\n{prints}\n    return 0;\n}}\n")
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    subprocess.run(cc + [str(src), "-o", str(tmp_path / "probe")], check=True)
    out = subprocess.run([tmp_path / "probe"], capture_output=True, text=True, check=True).stdout
    probed = {name: int(value) for name, value in (line.split("=") for line in out.splitlines())}
    assert probed == HEADER_VALUES
