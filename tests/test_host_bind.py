"""bind / unbind / restore against fake sysfs trees, through the exact sysfs writes."""
import errno
import json
import os
import stat

import pytest
from host_fakes import FakeHost, standard, sysfs_writes

from vfio_setup import bind as binding
from wirecap.errors import WirecapError

PORT, PORT2, X540 = "0000:03:00.0", "0000:03:00.1", "0000:05:00.0"


RULE = "run/udev/rules.d/60-wirecap-vfio.rules"


def state(fake):
    path = fake.base / "run/wirecap/bindings.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_bind_writes_override_unbinds_and_probes(tmp_path):
    fake = standard(tmp_path)
    host = FakeHost(fake)
    binding.bind(host, [PORT])
    assert sysfs_writes(host) == [
        (f"bus/pci/devices/{PORT}/driver_override", "vfio-pci"),
        ("bus/pci/drivers/ixgbe/unbind", PORT),
        ("bus/pci/drivers_probe", PORT),
    ]
    assert fake.driver(PORT) == "vfio-pci" and fake.override(PORT) == "vfio-pci"
    assert not fake.has_interface("wcf2")
    assert state(fake)[PORT] == {"driver": "ixgbe", "driver_override": None, "interfaces": ["wcf2"],
                                 "name": "Intel 82599ES 10 GbE SFI/SFP+", "iommu_group": "14"}
    assert f"bound {PORT} to vfio-pci (was ixgbe, wcf2)" in host.text
    assert fake.driver(PORT2) == "ixgbe"                  # the other port is untouched


def test_unbind_returns_the_original_driver(tmp_path):
    fake = standard(tmp_path)
    binding.bind(FakeHost(fake), [PORT])
    host = FakeHost(fake)
    binding.unbind(host, [PORT])
    assert sysfs_writes(host) == [
        (f"bus/pci/devices/{PORT}/driver_override", "\n"),
        ("bus/pci/drivers/vfio-pci/unbind", PORT),
        ("bus/pci/drivers/ixgbe/bind", PORT),
    ]
    assert fake.driver(PORT) == "ixgbe" and fake.override(PORT) == "(null)"
    assert fake.has_interface("wcf2")
    assert state(fake) == {}
    assert not (fake.base / "run/wirecap/bindings.json").exists()


def test_restore_returns_every_bound_device(tmp_path):
    fake = standard(tmp_path)
    binding.bind(FakeHost(fake), [PORT, "03:00.1"])
    assert set(state(fake)) == {PORT, PORT2}
    host = FakeHost(fake)
    assert binding.restore(host) == [PORT, PORT2]
    assert fake.driver(PORT) == fake.driver(PORT2) == "ixgbe"
    assert state(fake) == {}
    host = FakeHost(fake)
    binding.restore(host)
    assert host.writes == [] and "nothing to restore" in host.text


def test_restore_loads_a_driver_that_was_unloaded(tmp_path):
    fake = standard(tmp_path)
    binding.bind(FakeHost(fake), [PORT, PORT2, X540], any_device=True)
    # rmmod ixgbe while the ports are on vfio-pci: its directory disappears.
    for f in (fake.sys / "bus/pci/drivers/ixgbe").iterdir():
        f.unlink()
    (fake.sys / "bus/pci/drivers/ixgbe").rmdir()
    ids = fake.driver_ids.pop("ixgbe")
    fake.modules = {"ixgbe"}

    class Modprobe(FakeHost):
        def run(self, argv):
            result = super().run(argv)
            self.fakesys.driver_ids["ixgbe"] = ids
            return result
    host = Modprobe(fake)
    binding.restore(host)
    assert host.commands == [["modprobe", "ixgbe"]]
    assert [fake.driver(a) for a in (PORT, PORT2, X540)] == ["ixgbe"] * 3


def test_device_names_accepted(tmp_path):
    fake = standard(tmp_path)
    devices = binding.scan(FakeHost(fake))
    for name in (PORT, "03:00.0", "pci:0000:03:00.0", "wcf2"):
        assert [d.address for d in binding.resolve(devices, [name])] == [PORT]
    with pytest.raises(WirecapError, match="(?s)'eth9' is not a network PCI function.*wirecap devices"):
        binding.resolve(devices, ["eth9"])


def test_already_bound_is_left_alone(tmp_path):
    fake = standard(tmp_path)
    binding.bind(FakeHost(fake), [PORT])
    host = FakeHost(fake)
    assert binding.bind(host, [PORT]) == []
    assert host.writes == [] and "already bound to vfio-pci" in host.text


def test_failed_write_rolls_back(tmp_path):
    fake = standard(tmp_path)
    host = FakeHost(fake, fail_on=("drivers_probe", errno.EINVAL))
    with pytest.raises(WirecapError, match="(?s)failed: .*Invalid argument.*Rolled back: 0000:03:00.0"):
        binding.bind(host, [PORT])
    assert sysfs_writes(host) == [
        (f"bus/pci/devices/{PORT}/driver_override", "vfio-pci"),
        ("bus/pci/drivers/ixgbe/unbind", PORT),
        ("bus/pci/drivers_probe", PORT),                  # the failing write
        (f"bus/pci/devices/{PORT}/driver_override", "\n"),
        ("bus/pci/drivers/ixgbe/bind", PORT),
    ]
    assert fake.driver(PORT) == "ixgbe" and fake.override(PORT) == "(null)"
    assert fake.has_interface("wcf2") and state(fake) == {}


def test_silent_probe_failure_rolls_back_every_device_of_the_command(tmp_path):
    # Linux accepts the drivers_probe write even when vfio-pci's probe fails; only the driver
    # link tells. The second device fails, so the first, already bound, is returned too.
    fake = standard(tmp_path)
    host = FakeHost(fake)
    original = host.write

    def write(path, text):
        original(path, text)
        if str(path).endswith(f"{PORT}/driver_override") and text == "vfio-pci":
            fake.probe_fails.discard("vfio-pci")
        if str(path).endswith(f"{PORT2}/driver_override") and text == "vfio-pci":
            fake.probe_fails.add("vfio-pci")
    host.write = write
    with pytest.raises(WirecapError, match=f"(?s)binding {PORT2} .* bound to no driver, not vfio-pci.*"
                                           f"Rolled back: {PORT}, {PORT2}"):
        binding.bind(host, [PORT, PORT2])
    assert fake.driver(PORT) == fake.driver(PORT2) == "ixgbe"
    assert fake.override(PORT) == fake.override(PORT2) == "(null)"
    assert state(fake) == {}


def test_failed_rollback_keeps_the_record_and_says_so(tmp_path):
    fake = standard(tmp_path)
    host = FakeHost(fake, fail_on=("drivers_probe", errno.EINVAL))
    fake.driver_ids["ixgbe"] = set()          # ixgbe will not take it back either
    with pytest.raises(WirecapError, match="(?s)Rolling back failed too.*wirecap restore"):
        binding.bind(host, [PORT])
    assert state(fake)[PORT]["driver"] == "ixgbe"


def test_non_viable_group_names_the_others_and_changes_nothing(tmp_path):
    fake = standard(tmp_path)
    fake.add_device("0000:04:00.0", driver="ixgbe", iface="wcf6", group="20")
    fake.add_device("0000:04:00.1", driver="ixgbe", iface="wcf7", group="20")
    fake.add_device("0000:00:1f.0", device="0xa14e", cls="0x060100", driver="lpc_ich", group="20")
    host = FakeHost(fake)
    with pytest.raises(WirecapError) as info:
        binding.bind(host, ["0000:04:00.0"])
    message = str(info.value)
    assert "IOMMU group 20 is not viable" in message and "nothing was changed" in message
    assert "0000:04:00.1 (Intel 82599ES 10 GbE SFI/SFP+ [8086:10fb], driver ixgbe)" in message
    assert "0000:00:1f.0 (bridge [8086:a14e], driver lpc_ich)" in message
    assert "`wirecap bind 0000:04:00.0 0000:04:00.1`" in message
    assert "echo 0000:00:1f.0 > /sys/bus/pci/drivers/lpc_ich/unbind" in message
    assert host.writes == [] and fake.driver("0000:04:00.0") == "ixgbe"


def test_group_bound_together_is_viable(tmp_path):
    fake = standard(tmp_path)
    fake.add_device("0000:04:00.0", driver="ixgbe", iface="wcf6", group="20")
    fake.add_device("0000:04:00.1", driver="ixgbe", iface="wcf7", group="20")
    fake.add_device("0000:00:1c.0", device="0x1d10", cls="0x060400", driver="pcieport", group="20")
    binding.bind(FakeHost(fake), ["0000:04:00.0", "0000:04:00.1"])
    assert fake.driver("0000:04:00.0") == fake.driver("0000:04:00.1") == "vfio-pci"
    assert fake.driver("0000:00:1c.0") == "pcieport"     # a PCIe port may stay with its driver


def test_not_82599_refused_unless_any(tmp_path):
    fake = standard(tmp_path)
    host = FakeHost(fake)
    with pytest.raises(WirecapError, match=r"(?s)0000:05:00.0 \(network controller\) is not an Intel 82599.*--any"):
        binding.bind(host, [X540])
    assert host.writes == []
    binding.bind(FakeHost(fake), [X540], any_device=True)
    assert fake.driver(X540) == "vfio-pci"


def test_missing_module_is_loaded_with_modprobe(tmp_path):
    fake = standard(tmp_path, vfio=False)
    host = FakeHost(fake)
    binding.bind(host, [PORT])
    assert host.commands == [["modprobe", "vfio-pci"]]
    assert fake.driver(PORT) == "vfio-pci"


def test_module_that_cannot_be_loaded_is_refused_before_any_write(tmp_path):
    fake = standard(tmp_path, vfio=False)
    fake.modules = set()
    host = FakeHost(fake)
    with pytest.raises(WirecapError, match="(?s)modprobe vfio-pci` failed \\(modprobe: FATAL: Module vfio-pci "
                                           "not found.*linux-modules-extra"):
        binding.bind(host, [PORT])
    assert host.writes == [] and fake.driver(PORT) == "ixgbe" and state(fake) == {}


def test_iommu_off_refused_with_the_boot_parameters(tmp_path):
    fake = standard(tmp_path, iommu=False)
    host = FakeHost(fake)
    with pytest.raises(WirecapError, match="(?s)IOMMU is off.*intel_iommu=on iommu=pt.*--noiommu"):
        binding.bind(host, [PORT])
    assert host.writes == [] and fake.driver(PORT) == "ixgbe"


def test_iommu_off_on_the_command_line_points_at_the_firmware(tmp_path):
    fake = standard(tmp_path, iommu=False)
    (fake.base / "proc/cmdline").write_text("root=/dev/sda1 intel_iommu=on iommu=pt\n")
    with pytest.raises(WirecapError, match="(?s)already has intel_iommu=on.*enable VT-d in the BIOS"):
        binding.bind(FakeHost(fake), [PORT])


def test_noiommu_enables_the_unsafe_mode_and_warns(tmp_path):
    fake = standard(tmp_path, iommu=False)
    host = FakeHost(fake)
    binding.bind(host, [PORT], noiommu=True)
    assert sysfs_writes(host)[0] == ("module/vfio/parameters/enable_unsafe_noiommu_mode", "Y")
    assert "WARNING" in host.text and "unsafe" in host.text
    assert fake.driver(PORT) == "vfio-pci"


def test_noiommu_without_kernel_support_is_refused(tmp_path):
    fake = standard(tmp_path, iommu=False, vfio=False)
    fake.add_driver("vfio-pci")                         # loaded, but no no-IOMMU parameter
    host = FakeHost(fake)
    with pytest.raises(WirecapError, match="(?s)CONFIG_VFIO_NOIOMMU"):
        binding.bind(host, [PORT], noiommu=True)
    assert host.writes == []


def test_not_root_is_refused(tmp_path):
    fake = standard(tmp_path)
    host = FakeHost(fake, euid=1000)
    for action in (lambda: binding.bind(host, [PORT]), lambda: binding.unbind(host, [PORT]),
                   lambda: binding.restore(host)):
        with pytest.raises(WirecapError, match="(?s)only root may do.*sudo.*--dry-run"):
            action()
    assert host.writes == []


def test_dry_run_prints_the_writes_and_changes_nothing(tmp_path):
    fake = standard(tmp_path)
    host = FakeHost(fake, dry_run=True, euid=1000)
    binding.bind(host, [PORT])
    assert sysfs_writes(host) == [
        (f"bus/pci/devices/{PORT}/driver_override", "vfio-pci"),
        ("bus/pci/drivers/ixgbe/unbind", PORT),
        ("bus/pci/drivers_probe", PORT),
    ]
    assert f"would write 'vfio-pci' to {fake.sys}/bus/pci/devices/{PORT}/driver_override" in host.text
    assert f"would write {str(fake.base / 'run/wirecap/bindings.json')}:" in host.text
    assert fake.driver(PORT) == "ixgbe" and fake.override(PORT) == "(null)"
    assert state(fake) == {} and fake.has_interface("wcf2")


def test_dry_run_of_a_missing_module_only_prints_modprobe(tmp_path):
    fake = standard(tmp_path, vfio=False)
    host = FakeHost(fake, dry_run=True)
    binding.bind(host, [PORT])
    assert "would run: modprobe vfio-pci" in host.text
    assert not (fake.sys / "bus/pci/drivers/vfio-pci").exists()


def test_unbind_without_record_needs_a_driver(tmp_path):
    fake = standard(tmp_path)
    binding.bind(FakeHost(fake), [PORT])
    (fake.base / "run/wirecap/bindings.json").unlink()      # e.g. someone else bound it
    with pytest.raises(WirecapError, match="(?s)no record.*--driver DRIVER.*drivers that match it"):
        binding.unbind(FakeHost(fake), [PORT])
    assert fake.driver(PORT) == "vfio-pci"
    binding.unbind(FakeHost(fake), [PORT], driver="ixgbe")
    assert fake.driver(PORT) == "ixgbe"


def test_unbind_of_a_device_not_on_vfio_does_nothing(tmp_path):
    host = FakeHost(standard(tmp_path))
    binding.unbind(host, [PORT])
    assert host.writes == [] and "not bound to vfio-pci (driver: ixgbe); nothing to do" in host.text


def test_device_without_driver_is_bound_and_returned_to_none(tmp_path):
    fake = standard(tmp_path)
    fake.add_device("0000:06:00.0", group="30")
    binding.bind(FakeHost(fake), ["0000:06:00.0"])
    assert fake.driver("0000:06:00.0") == "vfio-pci"
    host = FakeHost(fake)
    binding.restore(host)
    assert sysfs_writes(host) == [("bus/pci/devices/0000:06:00.0/driver_override", "\n"),
                                  ("bus/pci/drivers/vfio-pci/unbind", "0000:06:00.0")]
    assert fake.driver("0000:06:00.0") is None


def with_wirecap_group(fake):
    (fake.base / "etc/group").write_text(f"root:x:0:\nwirecap:x:{os.getegid()}:\n")


def test_bind_gives_only_its_groups_to_group_wirecap(tmp_path):
    fake = standard(tmp_path)
    with_wirecap_group(fake)
    other = fake.base / "dev/vfio/16"           # bound by someone else (a VM's)
    other.parent.mkdir(parents=True)
    other.touch(mode=0o600)
    binding.bind(FakeHost(fake), [PORT])
    node = (fake.base / "dev/vfio/14").stat()
    assert (node.st_gid, stat.S_IMODE(node.st_mode)) == (os.getegid(), 0o660)
    assert stat.S_IMODE(other.stat().st_mode) == 0o600
    rules = [line for line in (fake.base / RULE).read_text().splitlines() if not line.startswith("#")]
    assert rules == ['SUBSYSTEM=="vfio", KERNEL=="14", GROUP="wirecap", MODE="0660"']
    binding.bind(FakeHost(fake), [PORT2])
    assert 'KERNEL=="15"' in (fake.base / RULE).read_text()
    binding.unbind(FakeHost(fake), [PORT])
    assert 'KERNEL=="14"' not in (fake.base / RULE).read_text()
    binding.restore(FakeHost(fake))
    assert not (fake.base / RULE).exists()


def test_the_udev_rule_is_written_before_the_device_reaches_vfio(tmp_path):
    fake = standard(tmp_path)
    host = FakeHost(fake, dry_run=True)
    binding.bind(host, [PORT])
    text = host.text
    assert text.index(f"would write {fake.base / RULE}:") < text.index("drivers_probe")
    assert 'KERNEL=="14", GROUP="wirecap"' in text


@pytest.mark.parametrize("record, problem", [
    ({"driver": "../../../../tmp/x"}, "is not a driver name"),
    ({"driver": "-v"}, "is not a driver name"),
    ({"driver": "ixgbe", "driver_override": "a b"}, "is not a driver name"),
    ({"driver": "ixgbe", "iommu_group": "14/../x"}, "is not a group number"),
])
def test_restore_refuses_a_tampered_record_and_changes_nothing(tmp_path, record, problem):
    fake = standard(tmp_path)
    binding.bind(FakeHost(fake), [PORT])
    path = fake.base / "run/wirecap/bindings.json"
    path.write_text(json.dumps({PORT: {"driver_override": None, **record}}))
    host = FakeHost(fake)
    with pytest.raises(WirecapError, match=f"{problem}; nothing was changed") as caught:
        binding.restore(host)
    assert "\n" not in str(caught.value) and "--driver NAME" in str(caught.value)
    assert host.writes == [] and host.commands == [] and fake.driver(PORT) == "vfio-pci"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", json.dumps({"eth0": {"driver": "ixgbe"}})])
def test_a_damaged_record_is_refused(tmp_path, text):
    fake = standard(tmp_path)
    path = fake.base / "run/wirecap/bindings.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(WirecapError, match="bindings.json"):
        binding.restore(FakeHost(fake))


def test_unbind_refuses_a_driver_option_that_is_not_a_name(tmp_path):
    fake = standard(tmp_path)
    binding.bind(FakeHost(fake), [PORT])
    with pytest.raises(WirecapError, match="is not a driver name"):
        binding.unbind(FakeHost(fake), [PORT], driver="../x")
