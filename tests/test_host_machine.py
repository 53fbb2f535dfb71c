"""On this machine: its real NIC is listed and in use, bind refuses it, and --dry-run never writes.

These never bind the real NIC. An audit hook also refuses, while a command runs, every write
under /sys, /proc, /etc, /run and /dev and every command, so that a dry-run bug cannot change
the machine, and records the attempt, so that the test sees it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from host_fakes import wirecap

from vfio_setup.pci import PCI_ADDRESS

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="bind's refusals on the real NIC are those "
                                 "root gets; as another user it stops at 'not root' (CI runs as root)")]

GUARDED = ("/sys", "/proc", "/etc", "/run", "/dev/")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.chmod",
               "os.chown", "os.truncate", "os.link"}
RUN_EVENTS = {"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn", "os.fork"}


class Guard:
    active = False
    attempts = []


def _audit(event, args):
    if not Guard.active:
        return
    if event == "open":
        path, mode, flags = args
        writing = (flags or 0) & WRITE_FLAGS or (mode and any(c in mode for c in "wax+"))
        attempt = writing and isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(GUARDED)
    elif event in PATH_EVENTS:
        attempt = isinstance(args[0], (str, bytes, os.PathLike)) and os.fsdecode(args[0]).startswith(GUARDED)
    else:
        attempt = event in RUN_EVENTS
    if attempt:
        Guard.attempts.append((event, args))
        raise PermissionError(f"test guard: {event} {args!r} during a command that must not change the machine")


sys.addaudithook(_audit)


def guarded(*argv):
    Guard.active, Guard.attempts = True, []
    try:
        return wirecap(*argv)
    finally:
        Guard.active = False


@pytest.fixture(scope="module")
def nic():
    """The PCI function behind the default route, found without vfio_setup."""
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "default"], capture_output=True,
                                       text=True, check=True).stdout or "[]")
    if not routes:
        pytest.skip("this machine has no default route")
    ifname = routes[0]["dev"]
    real = os.path.realpath(f"/sys/class/net/{ifname}")
    addresses = [p for p in real.split("/") if PCI_ADDRESS.match(p)]
    if not addresses:
        pytest.skip(f"{ifname}, the default route's interface, is not a PCI device")
    address = addresses[-1]
    base = Path("/sys/bus/pci/devices", address)
    addrs = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", ifname], capture_output=True,
                                      text=True, check=True).stdout)[0]["addr_info"]
    return {"address": address, "ifname": ifname, "base": base,
            "driver": os.path.basename(os.readlink(base / "driver")),
            "ipv4": [f"{a['local']}/{a['prefixlen']}" for a in addrs if a["family"] == "inet"]}


def snapshot(nic):
    """What binding would change: the driver, the override, the interface and its addresses."""
    link = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", nic["ifname"]],
                                     capture_output=True, text=True, check=True).stdout)[0]
    # Addresses without their lifetimes, which count down by themselves under DHCP/SLAAC.
    addresses = sorted((a["family"], a["local"], a["prefixlen"]) for a in link["addr_info"])
    return (os.readlink(nic["base"] / "driver"), (nic["base"] / "driver_override").read_text(),
            link["flags"], addresses)


def test_devices_lists_the_real_nic_in_use(nic):
    code, out, _ = guarded("devices", "--json")
    assert code == 0 and Guard.attempts == []
    rows = {r["address"]: r for r in json.loads(out)["devices"]}
    row = rows[nic["address"]]
    assert row["driver"] == nic["driver"]
    assert [i["name"] for i in row["interfaces"]] == [nic["ifname"]]
    assert row["in_use"] and not row["bindable"]
    assert any(a in " ".join(row["in_use_reasons"]) for a in nic["ipv4"])
    assert any("default" in r for r in row["interfaces"][0]["usage"]["routes"])


def test_bind_refuses_the_real_nic_and_changes_nothing(nic):
    before = snapshot(nic)
    code, _, err = guarded("bind", nic["address"])
    assert code == 2 and "refusing to bind" in err and "nothing was changed" in err
    code, _, err = guarded("bind", "--any", nic["ifname"])
    assert code == 2 and f"{nic['address']} is in use: {nic['ifname']} up with addresses" in err
    assert Guard.attempts == [] and snapshot(nic) == before


@pytest.mark.parametrize("argv", [
    ["bind", "--any", "--force", "--noiommu", "--dry-run", "{address}"],
    ["unbind", "--driver", "{driver}", "--dry-run", "{address}"],
    ["restore", "--dry-run"],
    ["hugepages", "--reserve", "64", "--dry-run"],
    ["hugepages", "--reserve", "2", "--size", "1G", "--node", "0", "--dry-run"],
    ["setup", "--persist", "--dry-run"],
])
def test_dry_run_never_writes(nic, argv):
    before = snapshot(nic), Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").read_text()
    run_dir_existed = Path("/run/wirecap").exists()
    code, out, err = guarded(*[a.format(**nic) for a in argv])
    assert Guard.attempts == [], Guard.attempts
    assert code in (0, 2), err
    assert (snapshot(nic), Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").read_text()) == before
    assert Path("/run/wirecap").exists() == run_dir_existed
    if argv[0] == "bind":
        # The exact writes it would make, in order, for this very NIC.
        base = f"/sys/bus/pci/devices/{nic['address']}"
        assert out.index(f"would write 'vfio-pci' to {base}/driver_override") \
            < out.index(f"would write '{nic['address']}' to /sys/bus/pci/drivers/{nic['driver']}/unbind") \
            < out.index(f"would write '{nic['address']}' to /sys/bus/pci/drivers_probe")
