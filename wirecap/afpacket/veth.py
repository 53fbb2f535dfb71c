"""A veth pair for real-kernel-traffic runs (tests and ``wirecap bench afpacket``).

The capture end stays in this network namespace; the sending end lives in a namespace of its
own, where tcpreplay (a sender that is not ours) plays pcap files into it. IPv6 is off on both
ends so that the kernel itself sends nothing (no router solicitations, no MLD reports).
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import time

from ..errors import WirecapError

_serial = itertools.count()


def _run(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode:
        raise WirecapError(f"`{' '.join(cmd)}` failed: {p.stderr.strip() or p.stdout.strip()}")
    return p


def missing():
    """Why veth runs are impossible here (a sentence), or None."""
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs iproute2 and tcpreplay)"
    if os.geteuid() != 0:
        return "network namespaces and AF_PACKET sockets need root"
    return None


class VethPair:
    """``capture``: the interface to open as afpacket:NAME; ``replay()`` sends into it."""

    def __init__(self):
        n = f"{os.getpid() % 100000}x{next(_serial)}"
        self.ns, self.capture, self.sender = f"wirecap-{n}", f"wcc{n}", f"wcs{n}"

    def __enter__(self):
        _run("ip", "netns", "add", self.ns)
        try:
            _run("ip", "link", "add", self.capture, "type", "veth", "peer", "name", self.sender,
                 "netns", self.ns)
            # /proc/sys/net shows the namespace of the process that reads it
            if os.path.isdir("/proc/sys/net/ipv6"):
                off = "echo 1 > /proc/sys/net/ipv6/conf/{}/disable_ipv6"
                _run("sh", "-c", off.format(self.capture))
                _run("ip", "netns", "exec", self.ns, "sh", "-c", off.format(self.sender))
            _run("ip", "link", "set", self.capture, "up")
            _run("ip", "netns", "exec", self.ns, "ip", "link", "set", self.sender, "up")
            self._wait_carrier()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_carrier(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(f"/sys/class/net/{self.capture}/operstate") as f:
                    if f.read().strip() == "up":
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise WirecapError(f"veth {self.capture}: no carrier after {timeout} s")

    @property
    def mac(self):
        with open(f"/sys/class/net/{self.capture}/address") as f:
            return bytes.fromhex(f.read().strip().replace(":", ""))

    def replay(self, pcap, pps=None, timeout=300):
        """Send every frame of ``pcap`` from the other namespace with tcpreplay, as fast as
        it can (or at ``pps``); returns the frames tcpreplay reports sent."""
        speed = ["--topspeed"] if pps is None else [f"--pps={pps}"]
        p = subprocess.run(["ip", "netns", "exec", self.ns, "tcpreplay", "-q", *speed, "-i",
                            self.sender, str(pcap)], capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode:
            raise WirecapError(f"tcpreplay failed: {p.stderr.strip() or p.stdout.strip()}")
        m = re.search(r"Actual: (\d+) packets", p.stdout + p.stderr)
        if not m:
            raise WirecapError(f"tcpreplay printed no packet count: {p.stdout!r}")
        return int(m.group(1))

    def __exit__(self, *exc):
        _run("ip", "link", "del", self.capture, check=False)
        _run("ip", "netns", "del", self.ns, check=False)
