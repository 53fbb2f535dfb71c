"""The host CLI end to end on a real kernel: doctor, devices, the refusals, bind, unbind,
restore, setup --persist (with udev running), hugepages."""
import json
import os
import stat
import subprocess
from pathlib import Path

from guestlib import ALONE, BRIDGE, ETH, PAIR, SYS, driver, group, wirecap, wirecap_command

STATE = Path("/run/wirecap/bindings.json")
RULE = Path("/run/udev/rules.d/60-wirecap-vfio.rules")


def checks(text):
    return {c["name"]: c for c in json.loads(text)}


def test_doctor_on_a_fresh_host():
    code, out, _ = wirecap("doctor", "--json")
    found = checks(out)
    assert code == 1
    assert found["IOMMU"]["status"] == "ok" and "IOMMU groups" in found["IOMMU"]["detail"]
    assert found["vfio-pci"]["status"] == "fail" and "not loaded" in found["vfio-pci"]["detail"]
    assert found["hugepages"] == {"name": "hugepages", "status": "fail", "detail": "none reserved",
                                  "fix": found["hugepages"]["fix"]}


def test_devices_shows_the_nics_their_groups_and_what_is_in_use():
    result = wirecap_command("devices", "--json")          # the installed command, once
    assert result.returncode == 0, result.stderr
    rows = {d["address"]: d for d in json.loads(result.stdout)["devices"]}
    assert set(rows) == {ETH, ALONE, *PAIR}
    assert all(r["driver"] == "e1000e" and not r["supported"] for r in rows.values())
    assert rows[ETH]["group"] == [] and rows[ALONE]["group"] == []
    assert {m["address"]: m["driver"] for m in rows[PAIR[0]]["group"]} == {BRIDGE: None, PAIR[1]: "e1000e"}
    assert rows[PAIR[0]]["iommu_group"] == rows[PAIR[1]]["iommu_group"] != rows[ALONE]["iommu_group"]
    assert rows[ETH]["in_use"] and any("10.0.2.15/24" in r for r in rows[ETH]["in_use_reasons"])
    assert not rows[ALONE]["in_use"]


def test_a_port_in_use_is_refused_and_nothing_changes():
    code, _, err = wirecap("bind", "--any", ETH)
    assert code == 2
    assert f"refusing to bind {ETH}; nothing was changed" in err
    assert "is in use" in err and "10.0.2.15/24" in err and "ip link set" in err
    assert driver(ETH) == "e1000e" and not STATE.exists()


def test_a_non_viable_group_is_refused_naming_the_other_member():
    code, _, err = wirecap("bind", "--any", PAIR[0])
    assert code == 2
    assert f"IOMMU group {group(PAIR[0])} is not viable" in err
    assert f"{PAIR[1]} (" in err and "driver e1000e" in err
    assert f"`wirecap bind {PAIR[0]} {PAIR[1]}`" in err
    assert driver(PAIR[0]) == driver(PAIR[1]) == "e1000e"


def test_bind_unbind_and_restore():
    code, out, err = wirecap("bind", "--any", ALONE)
    assert code == 0, err
    assert "loaded the vfio-pci module" in out and f"bound {ALONE} to vfio-pci (was e1000e" in out
    assert driver(ALONE) == "vfio-pci"
    assert (SYS / ALONE / "driver_override").read_text().strip() == "vfio-pci"
    assert Path("/dev/vfio", group(ALONE)).exists()
    record = json.loads(STATE.read_text())
    assert record[ALONE]["driver"] == "e1000e" and record[ALONE]["iommu_group"] == group(ALONE)
    assert RULE.read_text().count('SUBSYSTEM=="vfio"') == 1 and f'KERNEL=="{group(ALONE)}"' in RULE.read_text()

    code, out, err = wirecap("unbind", ALONE)
    assert code == 0 and f"returned {ALONE} to e1000e" in out, err
    assert driver(ALONE) == "e1000e" and not STATE.exists() and not RULE.exists()

    code, out, err = wirecap("bind", "--any", ALONE, *PAIR)
    assert code == 0, err
    assert [driver(a) for a in (ALONE, *PAIR)] == ["vfio-pci"] * 3
    code, out, err = wirecap("restore")
    assert code == 0, err
    assert all(f"returned {a} to e1000e" in out for a in (ALONE, *PAIR))
    assert [driver(a) for a in (ALONE, *PAIR)] == ["e1000e"] * 3 and not STATE.exists()


def test_setup_persist_then_doctor_is_content():
    code, out, err = wirecap("setup", "--persist")
    assert code == 0, out + err
    assert "created group wirecap" in out
    total_kb = int(next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines()
                        if l.startswith("MemTotal:")))
    pages = min(1024, total_kb // 4 // 2048)            # a quarter of this 2 GiB guest
    assert 0 < pages < 1024
    assert f"vm.nr_hugepages = {pages}" in Path("/etc/sysctl.d/60-wirecap-hugepages.conf").read_text()
    assert f"@wirecap - memlock {pages * 2048 + 262144}" in \
        Path("/etc/security/limits.d/60-wirecap.conf").read_text()
    assert not Path("/etc/udev/rules.d/60-wirecap-vfio.rules").exists()
    assert int(Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").read_text()) == pages
    code, out, _ = wirecap("doctor", "--json")
    found = checks(out)
    assert code == 0, out
    assert {c["status"] for c in found.values()} == {"ok"}, out
    assert found["hugepages"]["detail"].startswith(f"{pages} x 2M")


def test_only_the_groups_wirecap_bound_go_to_group_wirecap():
    result = wirecap_command("bind", "--any", ALONE)
    assert result.returncode == 0, result.stderr
    node = Path("/dev/vfio", group(ALONE)).stat()
    assert (node.st_gid, stat.S_IMODE(node.st_mode)) == (int(_gid("wirecap")), 0o660)
    # a group bound by someone else (a VM's, say) is not ours to hand out
    for address in PAIR:
        (SYS / address / "driver_override").write_text("vfio-pci")
        Path("/sys/bus/pci/drivers/e1000e/unbind").write_text(address)
        Path("/sys/bus/pci/drivers_probe").write_text(address)
    subprocess.run(["udevadm", "settle", "--timeout=20"], timeout=30)
    other = Path("/dev/vfio", group(PAIR[0])).stat()
    assert other.st_gid == 0 and stat.S_IMODE(other.st_mode) & 0o077 == 0
    code, out, _ = wirecap("doctor", "--json")
    assert checks(out)["/dev/vfio"]["detail"] == f"group wirecap may open {group(ALONE)} (the groups wirecap bound)"
    for address in PAIR:
        (SYS / address / "driver_override").write_text("\n")
        Path("/sys/bus/pci/drivers/vfio-pci/unbind").write_text(address)
        Path("/sys/bus/pci/drivers_probe").write_text(address)
    code, out, err = wirecap("restore")
    assert code == 0, err
    assert [driver(a) for a in (ALONE, *PAIR)] == ["e1000e"] * 3


def test_hugepages_reserve_and_show():
    code, out, err = wirecap("hugepages", "--reserve", "16")
    assert code == 0, err
    assert "reserved 16 x 2M pages machine-wide" in out
    code, out, _ = wirecap("hugepages")
    assert "2M pages, total  :     16 reserved (32 MiB),     16 free" in out
    assert "hugetlbfs for 2M pages mounted on /dev/hugepages" in out


def _gid(name):
    return next(l.split(":")[2] for l in Path("/etc/group").read_text().splitlines()
                if l.startswith(name + ":"))
