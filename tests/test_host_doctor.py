"""`wirecap doctor` and `wirecap setup` against fake hosts; the kernel/ files they install."""
import configparser
import glob
import json
import os
from pathlib import Path

import pytest
from host_fakes import FakeHost, standard, sysfs_writes, wirecap

from vfio_setup import doctor, persist
from vfio_setup.host import WIRECAP_GROUP

REPO = Path(__file__).resolve().parent.parent


def ready(tmp_path):
    """A fake host with everything doctor wants."""
    fake = standard(tmp_path)
    fake.add_node(0, pools=(("2048", 1024, 1024), ("1048576", 0, 0)))
    (fake.base / "proc/mounts").write_text("nodev /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n")
    (fake.base / "etc/group").write_text(f"root:x:0:\n{WIRECAP_GROUP}:x:{os.getegid()}:alice\n")
    record = fake.base / "run/wirecap/bindings.json"        # wirecap bound group 14
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"0000:03:00.0": {"driver": "ixgbe", "iommu_group": "14"}}))
    vfio = fake.base / "dev/vfio"
    vfio.mkdir(parents=True)
    (vfio / "vfio").write_text("")
    (vfio / "vfio").chmod(0o666)
    (vfio / "14").write_text("")
    (vfio / "14").chmod(0o660)
    (vfio / "16").write_text("")                        # not bound by wirecap: not ours
    (vfio / "16").chmod(0o600)
    return fake


def statuses(fake):
    return {c.name: c for c in doctor.checks(FakeHost(fake))}


def test_ready_host_passes_every_check(tmp_path):
    fake = ready(tmp_path)
    found = statuses(fake)
    assert {name: c.status for name, c in found.items()} == {
        "IOMMU": "ok", "vfio-pci": "ok", "hugepages": "ok", "/dev/vfio": "ok"}
    assert "1024 x 2M" in found["hugepages"].detail
    assert found["/dev/vfio"].detail == "group wirecap may open 14 (the groups wirecap bound)"
    code, out, _ = wirecap("doctor", "--sysfs-root", str(fake.sys))
    assert code == 0 and "[ok  ] IOMMU" in out


@pytest.mark.parametrize("cpu, cmdline, expect", [
    ("GenuineIntel", "", "add `intel_iommu=on iommu=pt` to the kernel command line"),
    ("AuthenticAMD", "", "add `amd_iommu=on iommu=pt`"),
    ("GenuineIntel", "quiet intel_iommu=on", "already has intel_iommu=on, so the firmware keeps the IOMMU off"),
])
def test_iommu_off_says_what_to_change(tmp_path, cpu, cmdline, expect):
    fake = ready(tmp_path)
    for group in (fake.sys / "kernel/iommu_groups").iterdir():
        group.rename(fake.base / f"gone-{group.name}")
    (fake.base / "proc/cpuinfo").write_text(f"vendor_id\t: {cpu}\nflags\t\t: fpu\n")
    (fake.base / "proc/cmdline").write_text(cmdline + "\n")
    check = statuses(fake)["IOMMU"]
    assert check.status == "fail" and expect in check.fix and "virtual machine" not in check.fix
    code, out, _ = wirecap("doctor", "--sysfs-root", str(fake.sys))
    assert code == 1 and "[FAIL] IOMMU" in out and expect in out


def test_iommu_off_in_a_virtual_machine_asks_for_a_virtual_iommu(tmp_path):
    fake = standard(tmp_path, iommu=False)
    (fake.base / "proc/cpuinfo").write_text("vendor_id\t: GenuineIntel\nflags\t\t: fpu hypervisor\n")
    assert "hypervisor must also give it a virtual IOMMU" in statuses(fake)["IOMMU"].fix


def test_noiommu_mode_is_a_warning(tmp_path):
    fake = standard(tmp_path, iommu=False)
    (fake.sys / "module/vfio/parameters/enable_unsafe_noiommu_mode").write_text("Y\n")
    check = statuses(fake)["IOMMU"]
    assert check.status == "warn" and "unsafe no-IOMMU mode is on" in check.detail


def test_vfio_pci_not_loaded_or_not_installed(tmp_path):
    fake = ready(tmp_path)
    for f in (fake.sys / "bus/pci/drivers/vfio-pci").iterdir():
        f.unlink()
    (fake.sys / "bus/pci/drivers/vfio-pci").rmdir()
    check = statuses(fake)["vfio-pci"]
    assert check.status == "fail" and f"linux-modules-extra-{fake.release}" in check.fix
    moddir = fake.base / "lib/modules" / fake.release
    moddir.mkdir(parents=True)
    (moddir / "modules.dep").write_text("kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/vfio.ko\n")
    check = statuses(fake)["vfio-pci"]
    assert check.status == "fail" and check.fix.startswith("`modprobe vfio-pci`")


def test_hugepages_none_reserved_or_not_mounted(tmp_path):
    fake = ready(tmp_path)
    (fake.base / "proc/mounts").write_text("")
    check = statuses(fake)["hugepages"]
    assert check.status == "warn" and "no hugetlbfs mount for 2M" in check.detail
    (fake.sys / "kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").write_text("0\n")
    check = statuses(fake)["hugepages"]
    assert check.status == "fail" and "`wirecap hugepages --reserve 1024`" in check.fix


def test_dev_vfio_only_for_root_says_how_to_open_it(tmp_path):
    fake = ready(tmp_path)
    (fake.base / "dev/vfio/14").chmod(0o600)
    check = statuses(fake)["/dev/vfio"]
    assert check.status == "warn" and "only root may capture through" in check.detail
    assert "dev/vfio/16" not in check.detail
    node = fake.base / "dev/vfio/14"
    assert check.fix == f"`chgrp {WIRECAP_GROUP} {node} && chmod 0660 {node}`, then `usermod -aG {WIRECAP_GROUP} USER`"
    (fake.base / "etc/group").write_text("root:x:0:\n")
    assert "`wirecap setup --persist` (creates group wirecap)" in statuses(fake)["/dev/vfio"].fix
    (fake.base / "dev/vfio/vfio").chmod(0o600)
    assert "chmod 0666" in statuses(fake)["/dev/vfio"].fix


def test_doctor_json(tmp_path):
    code, out, _ = wirecap("doctor", "--json", "--sysfs-root", str(ready(tmp_path).sys))
    assert code == 0 and [c["status"] for c in json.loads(out)] == ["ok"] * 4


# --- kernel/ and setup ---------------------------------------------------------------------

EXPECTED_FILES = {"etc/modules-load.d/wirecap.conf",
                  "etc/sysctl.d/60-wirecap-hugepages.conf", "etc/security/limits.d/60-wirecap.conf"}


def test_kernel_files_are_found_and_say_what_they_should():
    files = {str(rel): src.read_text() for rel, src in persist.kernel_files()}
    assert set(files) == EXPECTED_FILES
    assert "\nvfio-pci\n" in files["etc/modules-load.d/wirecap.conf"]
    assert "\nvm.nr_hugepages = 1024\n" in files[persist.HUGEPAGES_CONF]
    limits = files[persist.LIMITS_CONF]
    assert "\n@wirecap - memlock 2359296\n" in limits and "unlimited\n" not in limits
    assert persist.render(persist.LIMITS_CONF, limits, 100).endswith("@wirecap - memlock 466944\n")
    assert persist.render(persist.HUGEPAGES_CONF, files[persist.HUGEPAGES_CONF], 100).endswith(
        "vm.nr_hugepages = 100\n")
    assert (persist.KERNEL_DIR / "README.md").is_file()
    # From a checkout, the package's kernel/ is the repository's kernel/.
    assert persist.KERNEL_DIR.resolve() == REPO / "kernel"


def test_package_data_ships_every_kernel_file():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["vfio_setup"].split(",")]
    shipped = {os.path.relpath(f, REPO / "vfio_setup/kernel")
               for p in patterns for f in glob.glob(str(REPO / "vfio_setup" / p), recursive=True)
               if os.path.isfile(f)}
    assert EXPECTED_FILES | {"README.md"} <= shipped


def test_setup_persist_installs_creates_the_group_and_reserves(tmp_path):
    fake = standard(tmp_path, vfio=False)
    fake.add_node(0)
    host = FakeHost(fake)
    assert persist.setup(host, persist=True) == []
    for rel, src in persist.kernel_files():         # no MemTotal in the fake: 1024 pages
        assert (fake.base / rel).read_text() == src.read_text()
    assert host.commands[0] == ["groupadd", "--system", WIRECAP_GROUP]
    assert ["modprobe", "vfio-pci"] in host.commands
    assert ("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "1024") in sysfs_writes(host)
    assert host.commands[-1][:3] == ["mount", "-t", "hugetlbfs"]
    again = FakeHost(fake)
    assert persist.setup(again, persist=True) == []
    assert all(f"unchanged {fake.base / rel}" in again.text for rel in EXPECTED_FILES)
    assert again.writes == [] and not any(c[0] in ("groupadd", "mount") for c in again.commands)


def test_setup_reports_a_failed_step_and_goes_on(tmp_path):
    fake = standard(tmp_path, vfio=False)
    fake.add_node(0)
    fake.modules = set()
    host = FakeHost(fake)
    (failure,) = persist.setup(host)
    assert failure.startswith("load vfio-pci:") and "modprobe vfio-pci" in failure
    assert ("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "1024") in sysfs_writes(host)


def test_setup_dry_run_prints_the_files_and_changes_nothing(tmp_path):
    fake = standard(tmp_path, vfio=False)
    fake.add_node(0)
    code, out, _ = wirecap("setup", "--persist", "--dry-run", "--sysfs-root", str(fake.sys))
    assert code == 0
    assert f"would write {fake.base}/etc/modules-load.d/wirecap.conf:\n    # wirecap" in out
    assert "    vfio-pci\n" in out and "would run: groupadd --system wirecap" in out
    assert "would run: modprobe vfio-pci" in out
    assert not (fake.base / "etc/modules-load.d").exists()
    assert (fake.sys / "kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").read_text() == "0\n"


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="as another user, bind stops at 'not root' first")
def test_commands_are_not_run_against_a_fake_tree(tmp_path):
    fake = standard(tmp_path, vfio=False)
    code, _, err = wirecap("bind", "0000:03:00.0", "--sysfs-root", str(fake.sys))
    assert code == 2 and "not running `modprobe vfio-pci`: --sysfs-root points at a fake tree" in err
    assert fake.driver("0000:03:00.0") == "ixgbe"


def with_memory(fake, total_mib, available_mib=None):
    (fake.base / "proc/meminfo").write_text(
        f"MemTotal:       {total_mib * 1024} kB\nMemAvailable:   {(available_mib or total_mib) * 1024} kB\n"
        "HugePages_Total:       0\nHugepagesize:       2048 kB\n")


@pytest.mark.parametrize("total_mib, pages", [(2048, 256), (7000, 875), (65536, 1024)])
def test_setup_sizes_the_reservation_from_memory(tmp_path, total_mib, pages):
    fake = standard(tmp_path, vfio=False)
    fake.add_node(0)
    with_memory(fake, total_mib)
    host = FakeHost(fake)
    assert persist.setup(host, persist=True) == []
    assert ("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", str(pages)) in sysfs_writes(host)
    assert f"vm.nr_hugepages = {pages}\n" in (fake.base / persist.HUGEPAGES_CONF).read_text()
    assert f"memlock {pages * 2048 + 262144}\n" in (fake.base / persist.LIMITS_CONF).read_text()


def test_setup_refuses_more_hugepages_than_memory_allows(tmp_path):
    fake = standard(tmp_path, vfio=False)
    fake.add_node(0)
    with_memory(fake, 2048)
    code, out, err = wirecap("setup", "--hugepages", "921", "--sysfs-root", str(fake.sys))
    assert code == 2 and out == ""
    assert "--hugepages 921 asks for 1842 MiB of this machine's 2048 MiB" in err
    assert "Fix: --hugepages 768 at most, or leave it out (256 pages)" in err
    assert (fake.sys / "kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").read_text() == "0\n"


def test_setup_reports_a_shortfall_as_a_failure(tmp_path):
    fake = standard(tmp_path, vfio=False)
    fake.add_node(0)

    class Short(FakeHost):
        def write(self, path, text):            # the kernel finds only 100 of the pages
            super().write(path, text)
            if Path(path).name == "nr_hugepages":
                Path(path).write_text("100\n")
    (failure,) = persist.setup(Short(fake), pages=300)
    assert failure.startswith("reserve hugepages: reserved only 100 of 300 x 2M pages")
    assert "Fix: ask for fewer (--hugepages 100)" in failure


def test_setup_persist_removes_the_rule_that_gave_away_every_vfio_group(tmp_path):
    fake = standard(tmp_path, vfio=False)
    fake.add_node(0)
    old = fake.base / persist.OLD_UDEV_RULE
    old.parent.mkdir(parents=True)
    old.write_text('SUBSYSTEM=="vfio", GROUP="wirecap", MODE="0660"\n')
    host = FakeHost(fake)
    assert persist.setup(host, persist=True) == []
    assert not old.exists() and f"removed {old}" in host.text


def test_doctor_warns_when_hugepages_leave_too_little_memory(tmp_path):
    fake = ready(tmp_path)
    with_memory(fake, 2048, available_mib=4)
    check = statuses(fake)["hugepages"]
    assert check.status == "warn" and "they leave 4 MiB of memory to everything else" in check.detail
    with_memory(fake, 2048, available_mib=1024)
    assert statuses(fake)["hugepages"].status == "ok"
