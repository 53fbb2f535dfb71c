"""Inside the guest (started by tests/vm/init.sh): prepare the machine as a host with these NICs
would be, run the scenarios in one pytest session, and leave the results in OUT.

    run.py OUT SCENARIO.py ...
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
START = time.monotonic()


def sh(*argv):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode:
        print(f"guest: {' '.join(argv)}: {result.stderr.strip()}", flush=True)
    return result


def prepare():
    sh("ip", "link", "set", "lo", "up")
    sh("modprobe", "e1000e")            # no coldplug ran: the kernel drivers take the NICs now
    eth = None
    deadline = time.monotonic() + 60
    while eth is None and time.monotonic() < deadline:
        for iface in Path("/sys/class/net").iterdir():
            if os.path.realpath(iface).split("/")[-3:-2] == ["0000:00:04.0"]:
                eth = iface.name
        time.sleep(0.2)
    if eth:                             # a port the host really uses: up, addressed, routed
        sh("ip", "addr", "add", "10.0.2.15/24", "dev", eth)
        sh("ip", "link", "set", eth, "up")
        sh("ip", "route", "add", "default", "via", "10.0.2.2")
    # udev applies the rules `wirecap setup`/`bind` install, as on a real host.
    sh("/lib/systemd/systemd-udevd", "--daemon")


def main(out, scenarios):
    out = Path(out)
    prepare()
    os.chdir(REPO)
    sys.path.insert(0, str(HERE))         # guestlib, e1000e
    import pytest
    ready = time.monotonic() - START
    rc = pytest.main(["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-o", "addopts=",
                      "-o", "python_files=scenario_*.py", "-v", "--tb=short",
                      f"--junitxml={out / 'junit.xml'}", *[str(HERE / s) for s in scenarios]])
    (out / "dmesg.txt").write_text(sh("dmesg").stdout)
    (out / "guest.json").write_text(json.dumps({
        "pytest_rc": int(rc), "seconds_to_pytest": round(ready, 1),
        "seconds": round(time.monotonic() - START, 1), "kernel": os.uname().release}))
    return int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
