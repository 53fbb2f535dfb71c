"""PCI scan against fake sysfs trees: what `wirecap devices` reports."""
import json

import pytest
from host_fakes import INTEL, FakeHost, FakeSys, standard, wirecap

from vfio_setup.pci import IXGBE_82599, dma_safe, scan, vfio_pci_state


def by_address(host):
    return {d.address: d for d in scan(host)}


def test_82599_ids_are_the_ixgbe_82599_physical_functions():
    # From the ixgbe PCI table (board_82599); the X540 (1528) and the 82599 VF (10ed) are not ours.
    assert set(IXGBE_82599) == {
        "10f7", "10f8", "10f9", "10fb", "10fc", "1507", "1514", "1517", "151c", "1529", "152a",
        "154a", "154d", "154f", "1557", "1558"}


def test_scan_lists_network_functions_with_their_facts(tmp_path):
    devices = by_address(FakeHost(standard(tmp_path)))
    assert sorted(devices) == ["0000:00:03.0", "0000:03:00.0", "0000:03:00.1", "0000:05:00.0"]
    port = devices["0000:03:00.0"]
    assert (port.vendor, port.device, port.driver) == ("8086", "10fb", "ixgbe")
    assert port.name == "Intel 82599ES 10 GbE SFI/SFP+"
    assert [(i.name, i.mac, i.link) for i in port.interfaces] == [("wcf2", "90:e2:ba:00:00:02", "down")]
    assert (port.iommu_group, port.group, port.numa_node) == ("14", [], 0)
    assert port.supported and port.drivers == ["vfio-pci"]
    assert not port.in_use
    x540 = devices["0000:05:00.0"]
    assert not x540.supported and x540.numa_node == 1


def test_interface_nested_below_the_function_belongs_to_it(tmp_path):
    # virtio-net puts its interface under 0000:00:03.0/virtio0/net/, not directly under the function.
    virtio = by_address(FakeHost(standard(tmp_path)))["0000:00:03.0"]
    assert [i.name for i in virtio.interfaces] == ["wcf5"]
    assert virtio.driver == "virtio-pci" and virtio.numa_node is None


def test_group_members_named_with_their_driver(tmp_path):
    fake = standard(tmp_path)
    fake.add_device("0000:04:00.0", driver="ixgbe", iface="wcf6", group="20")
    fake.add_device("0000:04:00.1", driver="ixgbe", iface="wcf7", group="20")
    fake.add_device("0000:00:1c.0", device="0x1d10", cls="0x060400", driver="pcieport", group="20")
    port = by_address(FakeHost(fake))["0000:04:00.0"]
    assert port.iommu_group == "20"
    assert [(m.address, m.driver, m.name) for m in port.group] == [
        ("0000:00:1c.0", "pcieport", "bridge"),
        ("0000:04:00.1", "ixgbe", "Intel 82599ES 10 GbE SFI/SFP+")]
    assert [dma_safe(m.driver) for m in port.group] == [True, False]


def test_other_drivers_come_from_modules_alias(tmp_path):
    fake = standard(tmp_path, vfio=False)
    moddir = tmp_path / "lib/modules" / fake.release
    moddir.mkdir(parents=True)
    (moddir / "modules.alias").write_text(
        "alias pci:v00008086d000010FBsv*sd*bc*sc*i* ixgbe\n"
        "alias pci:v00008086d000010FBsv*sd*bc*sc*i* ixgbe_test_twin\n"
        "alias pci:v00001AF4d00001041sv*sd*bc*sc*i* virtio_pci\n"
        "alias usb:v*p*d*dc*dsc*dp*ic09isc*ip*in* usbcore\n")
    (moddir / "modules.dep").write_text("kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/drivers/vfio/vfio.ko.zst\n")
    host = FakeHost(fake)
    assert vfio_pci_state(host) == "module"
    devices = by_address(host)
    # The driver in use is not "other"; module names map to the driver's own (virtio_pci -> virtio-pci).
    assert devices["0000:03:00.0"].drivers == ["ixgbe_test_twin", "vfio-pci"]
    assert devices["0000:00:03.0"].drivers == ["vfio-pci"]


def test_vfio_pci_missing_is_not_offered(tmp_path):
    host = FakeHost(standard(tmp_path, vfio=False))
    assert vfio_pci_state(host) == "missing"
    assert by_address(host)["0000:03:00.0"].drivers == []


def test_names_from_pci_ids_when_present(tmp_path):
    fake = standard(tmp_path)
    (tmp_path / "usr/share/misc").mkdir(parents=True)
    (tmp_path / "usr/share/misc/pci.ids").write_text(
        "# comment\n1af4  Red Hat, Inc.\n\t1041  Virtio 1.0 network device\n\t\t1af4 1100  QEMU\n"
        "8086  Intel Corporation\n\t1528  Ethernet Controller 10-Gigabit X540-AT2\n"
        "C 02  Network controller\n")
    devices = by_address(FakeHost(fake))
    assert devices["0000:00:03.0"].name == "Red Hat, Inc. Virtio 1.0 network device"
    assert devices["0000:05:00.0"].name == "Intel Corporation Ethernet Controller 10-Gigabit X540-AT2"


def test_no_iommu_means_no_groups(tmp_path):
    devices = by_address(FakeHost(standard(tmp_path, iommu=False)))
    assert all(d.iommu_group is None and d.group == [] for d in devices.values())


def test_devices_json_says_why_each_cannot_be_bound(tmp_path):
    fake = standard(tmp_path)
    fake.add_device("0000:04:00.0", driver="ixgbe", iface="wcf6", group="20")
    fake.add_device("0000:00:1f.0", device="0xa14e", cls="0x060100", driver="lpc_ich", group="20")
    code, out, _ = wirecap("devices", "--json", "--sysfs-root", str(fake.sys))
    report = json.loads(out)
    assert code == 0 and report["iommu"]["enabled"] and report["vfio_pci"] == "loaded"
    rows = {r["address"]: r for r in report["devices"]}
    assert rows["0000:03:00.0"]["bindable"] and rows["0000:03:00.0"]["bind_problems"] == []
    (problem,) = rows["0000:04:00.0"]["bind_problems"]
    assert "IOMMU group 20 is not viable" in problem["reason"]
    assert "0000:00:1f.0 (bridge [8086:a14e], driver lpc_ich)" in problem["reason"]
    assert "echo 0000:00:1f.0 > /sys/bus/pci/drivers/lpc_ich/unbind" in problem["fix"]
    (problem,) = rows["0000:05:00.0"]["bind_problems"]
    assert "not an Intel 82599" in problem["reason"] and "--any" in problem["fix"]


def test_devices_text_groups_by_driver_and_gives_reasons(tmp_path):
    fake = standard(tmp_path, iommu=False)
    fake.add_device("0000:06:00.0", device="0x10fb", iface="wcf8")     # no driver
    code, out, _ = wirecap("devices", "--sysfs-root", str(fake.sys))
    assert code == 0
    bound, kernel, none = out.split("\nNetwork devices")[1:4]
    assert "<none>" in bound
    assert "0000:03:00.0 'Intel 82599ES 10 GbE SFI/SFP+' 8086:10fb" in kernel and "drv=ixgbe" in kernel
    assert "0000:06:00.0" in none and "0000:06:00.0" not in kernel
    assert "cannot bind: 0000:05:00.0 (Intel 82599ES" not in out       # the X540 is not named an 82599
    assert "cannot bind: 0000:05:00.0 (network controller) is not an Intel 82599" in kernel
    # With the IOMMU off, that is said once, with the fix, not once per device.
    assert out.count("The IOMMU is off") == 1 and "intel_iommu=on iommu=pt" in out


@pytest.mark.parametrize("driver, safe", [(None, True), ("vfio-pci", True), ("pci-stub", True),
                                          ("pcieport", True), ("ixgbe", False), ("ahci", False)])
def test_dma_safe_drivers(driver, safe):
    assert dma_safe(driver) is safe


def test_class_filter_ignores_non_network_functions(tmp_path):
    fake = FakeSys(tmp_path)
    fake.add_device("0000:00:1f.2", vendor=INTEL, device="0xa102", cls="0x010601")
    fake.add_device("0000:00:1f.6", vendor=INTEL, device="0x15b8", cls="0x020000")
    assert [d.address for d in scan(FakeHost(fake))] == ["0000:00:1f.6"]


def test_sysfs_root_from_the_environment(tmp_path, monkeypatch):
    fake = standard(tmp_path)
    monkeypatch.setenv("WIRECAP_SYSFS_ROOT", str(fake.sys))
    code, out, _ = wirecap("devices", "--json")
    assert code == 0
    assert [r["address"] for r in json.loads(out)["devices"]] == [
        "0000:00:03.0", "0000:03:00.0", "0000:03:00.1", "0000:05:00.0"]
