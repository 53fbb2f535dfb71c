"""In-use detection against real interfaces, in network namespaces made (and deleted) here."""
import itertools
import os
import subprocess
import time

import pytest
from host_fakes import FakeHost, standard
from pyroute2 import IPRoute

from vfio_setup import bind as binding
from vfio_setup.inuse import interface_usage
from wirecap.errors import WirecapError

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]
_names = itertools.count()


def ip(ns, *args):
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, text=True)


def kind_supported(ns, kind):
    probe = subprocess.run(["ip", "-n", ns, "link", "add", "wcprobe", "type", kind], capture_output=True)
    if probe.returncode:
        return False
    ip(ns, "link", "del", "wcprobe")
    return True


@pytest.fixture
def ns():
    name = f"wctest-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ip(name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def usage(ns, ifname="v0"):
    with IPRoute(netns=ns) as ipr:
        return interface_usage(ipr, ifname)


def wait_for_link_local(ns, ifname):
    # IPv6 adds fe80:: once the link has carrier; wait, so that ignoring it is really tested.
    for _ in range(100):
        with IPRoute(netns=ns) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            if any(a.get("IFA_ADDRESS", "").startswith("fe80") for a in ipr.get_addr(index=index)):
                return
        time.sleep(0.02)
    pytest.fail(f"{ifname} got no IPv6 link-local address")


def test_down_and_unconfigured_is_free(ns):
    u = usage(ns)
    assert u.found and not u.up and not u.in_use and u.reasons == []


def test_up_with_only_a_link_local_address_is_free(ns):
    ip(ns, "link", "set", "v0", "up")
    ip(ns, "link", "set", "v1", "up")
    wait_for_link_local(ns, "v0")
    u = usage(ns)
    assert u.up and u.addresses == [] and u.routes == [] and not u.in_use


def test_up_with_an_address_is_in_use(ns):
    ip(ns, "addr", "add", "10.77.0.1/24", "dev", "v0")
    ip(ns, "link", "set", "v0", "up")
    u = usage(ns)
    assert u.in_use and u.addresses == ["10.77.0.1/24"]
    assert "up with addresses 10.77.0.1/24" in u.reasons
    assert usage(ns, "v1").in_use is False                  # its peer is not configured


def test_up_with_a_global_ipv6_address_is_in_use(ns):
    ip(ns, "addr", "add", "fd77::1/64", "dev", "v0", "nodad")
    ip(ns, "link", "set", "v0", "up")
    assert usage(ns).addresses == ["fd77::1/64"] and usage(ns).in_use


def test_down_with_an_address_is_free(ns):
    ip(ns, "addr", "add", "10.77.0.1/24", "dev", "v0")
    u = usage(ns)
    assert u.addresses == ["10.77.0.1/24"] and not u.up and not u.in_use


def test_up_with_a_route_but_no_address_is_in_use(ns):
    ip(ns, "link", "set", "v0", "up")
    ip(ns, "route", "add", "10.78.0.0/16", "dev", "v0")
    u = usage(ns)
    assert u.addresses == [] and u.routes == ["10.78.0.0/16"] and u.in_use
    assert u.reasons == ["routes 10.78.0.0/16"]


def test_route_through_a_gateway_is_named(ns):
    ip(ns, "addr", "add", "10.77.0.1/24", "dev", "v0")
    ip(ns, "link", "set", "v0", "up")
    ip(ns, "route", "add", "default", "via", "10.77.0.254")
    assert "default via 10.77.0.254" in usage(ns).routes


def test_bridge_port_is_in_use_even_down(ns):
    ip(ns, "link", "add", "br0", "type", "bridge")
    ip(ns, "link", "set", "v0", "master", "br0")
    u = usage(ns)
    assert not u.up and u.master == "br0" and u.master_kind == "bridge" and u.in_use
    assert u.reasons == ["enslaved to bridge br0"]
    assert not usage(ns, "br0").in_use                      # the bridge itself is unconfigured


def test_dummy_interface(ns):
    if not kind_supported(ns, "dummy"):
        pytest.skip("this kernel has no dummy interfaces (CONFIG_DUMMY)")
    ip(ns, "link", "add", "d0", "type", "dummy")
    ip(ns, "link", "set", "d0", "up")
    assert not usage(ns, "d0").in_use
    ip(ns, "addr", "add", "10.79.0.1/24", "dev", "d0")
    assert usage(ns, "d0").addresses == ["10.79.0.1/24"] and usage(ns, "d0").in_use


def test_bond_slave_is_in_use(ns):
    if not kind_supported(ns, "bond"):
        pytest.skip("this kernel has no bonding driver (CONFIG_BONDING)")
    ip(ns, "link", "add", "bond0", "type", "bond")
    ip(ns, "link", "set", "v0", "master", "bond0")
    assert usage(ns).reasons == ["enslaved to bond bond0"]


def test_missing_interface_is_not_found(ns):
    u = usage(ns, "nosuch0")
    assert not u.found and not u.in_use


def test_bind_refuses_an_interface_in_use_unless_forced(ns, tmp_path):
    # A fake PCI tree whose 82599 port carries interface v0 of the namespace.
    fake = standard(tmp_path)
    fake.add_device("0000:04:00.0", driver="ixgbe", iface="v0", group="20")
    ip(ns, "addr", "add", "10.77.0.1/24", "dev", "v0")
    ip(ns, "link", "set", "v0", "up")
    host = FakeHost(fake, netns=ns)
    with pytest.raises(WirecapError, match="(?s)0000:04:00.0 is in use: v0 up with addresses 10.77.0.1/24"
                                           ".*ip link set v0 down.*--force"):
        binding.bind(host, ["0000:04:00.0"])
    assert host.writes == [] and fake.driver("0000:04:00.0") == "ixgbe"
    binding.bind(FakeHost(fake, netns=ns), ["v0"], force=True)
    assert fake.driver("0000:04:00.0") == "vfio-pci"


def test_bind_refuses_a_bridge_port_and_says_how_to_free_it(ns, tmp_path):
    fake = standard(tmp_path)
    fake.add_device("0000:04:00.0", driver="ixgbe", iface="v0", group="20")
    ip(ns, "link", "add", "br0", "type", "bridge")
    ip(ns, "link", "set", "v0", "master", "br0")
    with pytest.raises(WirecapError, match="(?s)enslaved to bridge br0.*ip link set v0 nomaster"):
        binding.bind(FakeHost(fake, netns=ns), ["0000:04:00.0"])
    assert fake.driver("0000:04:00.0") == "ixgbe"
