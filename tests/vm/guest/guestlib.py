"""What the guest's scenarios share: the NICs by role, the wirecap CLI run in this process (a
Python start costs seconds under emulation) or as a command, sysfs and kernel log readers."""
import contextlib
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import mac_of  # noqa: E402  (the MACs the harness gave the NICs)
from wirecap import cli  # noqa: E402

ETH = "0000:00:04.0"                    # kernel-driven, up with an address
PAIR = ("0000:01:01.0", "0000:01:02.0")  # behind a PCI bridge: one IOMMU group
BRIDGE = "0000:00:05.0"                 # the bridge, in that group too (no driver)
ALONE = "0000:00:06.0"                  # a group of its own; on QEMU's hub 0 with PAIR
SYS = Path("/sys/bus/pci/devices")
REPO = Path(__file__).resolve().parents[3]


def wirecap(*argv):
    """`wirecap ARGV...` through wirecap.cli.main in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def wirecap_command(*argv, user=None, env=None, timeout=300):
    """`wirecap ARGV...` as its own process (as ``user`` if given)."""
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
    return subprocess.run(prefix + [str(REPO / ".venv/bin/wirecap"), *argv], capture_output=True,
                          text=True, timeout=timeout, env=env)


def driver(address):
    link = SYS / address / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


def group(address):
    return os.path.basename(os.readlink(SYS / address / "iommu_group"))


def command_register(address):
    """The PCI command register, read from config space through sysfs."""
    return int.from_bytes((SYS / address / "config").read_bytes()[4:6], "little")


def kernel_log():
    return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30).stdout


def wait_in_log(pattern, timeout=20.0):
    """The first kernel log line matching ``pattern`` (the IOMMU reports faults from an
    interrupt: give it a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in kernel_log().splitlines() if re.search(pattern, line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(scope="module")
def bound():
    """PAIR and ALONE on vfio-pci through `wirecap bind`; given back at the end."""
    code, out, err = wirecap("bind", "--any", ALONE, *PAIR)
    assert code == 0, out + err
    yield
    code, out, err = wirecap("restore")
    assert code == 0, out + err


@pytest.fixture
def hugepage_pool():
    """Sets the 2 MiB pool; the old size comes back after."""
    nr = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
    before = nr.read_text()

    def resize(count):
        nr.write_text(f"{count}\n")
        return int(nr.read_text())
    yield resize
    nr.write_text(before)


def locked_kib():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmLck:\s+(\d+) kB", status, re.M).group(1))



