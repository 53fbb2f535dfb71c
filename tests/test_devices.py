"""The device layer (issue 11): one registry of device names, and imports that point one way."""
import subprocess
import sys

import pytest

from wirecap import devices, sim
from wirecap.devices import KINDS, open_device
from wirecap.errors import WirecapError


@pytest.mark.parametrize("name", ["wcnope0", "foo:1", "", "sim:", "afpacket:", 42])
def test_unknown_names_are_refused_with_every_kind_and_an_example(name):
    with pytest.raises(WirecapError) as e:
        open_device(name)
    msg = str(e.value)
    assert "\n" not in msg and repr(name) in msg
    for kind in KINDS.values():
        assert kind.example in msg and kind.what in msg


def test_a_bad_model_port_number_names_the_form(fresh_model):
    with pytest.raises(WirecapError, match="sim:x: name a model port by its number, e.g. sim:0"):
        open_device("sim:x")


def test_options_a_kind_does_not_take_are_refused(fresh_model):
    with pytest.raises(WirecapError, match="sim:0 does not take fanout: .*rss_key"):
        open_device("sim:0", fanout="hash")


def test_each_name_opens_its_kind(fresh_model):
    with open_device("sim:1") as nic:
        assert (nic.name, nic.kind, nic.closed) == ("sim:1", "82599", False)
        assert nic.set_filter("udp") is False        # the 82599 cannot run BPF
    assert nic.closed
    with open_device("lo") as dev:                   # a bare interface name: AF_PACKET
        assert (dev.name, dev.kind) == ("afpacket:lo", "afpacket")
        assert dev.set_filter("udp") is True


def test_every_kind_follows_the_device_protocol():
    for kind in KINDS.values():
        cls = devices._load(kind.driver)
        for attr in ("open_options", "rx_options", "default_chunks", "kind", "set_rss",
                     "rx_queue", "tx_queue", "set_filter", "start", "stop", "counters",
                     "queue_counters", "close"):
            assert hasattr(cls, attr), (kind.driver, attr)


def test_reset_closes_what_drove_the_model(fresh_model):
    nic = open_device("sim:0")
    q = nic.rx_queue(0, ndesc=64, segment=16)
    sim.reset()
    assert nic.closed and q.closed
    open_device("sim:0").close()                     # the port is free again


def _imported(module):
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.mark.parametrize("module", ["wirecap._pmd", "wirecap._ring", "wirecap._regs",
                                    "wirecap._mmio", "wirecap.devices", "wirecap.engine",
                                    "wirecap.pcap", "wirecap._pcap", "wirecap.stats",
                                    "wirecap.afpacket"])
def test_nothing_above_the_register_interface_imports_the_model(module):
    assert not [m for m in _imported(module) if m.startswith("wirecap.sim")]


def test_imports_point_one_way():
    assert "wirecap._pmd" not in _imported("wirecap.afpacket")
    assert "wirecap.pcap" not in _imported("wirecap.engine")
    assert not [m for m in _imported("wirecap.stats") if m.startswith("wirecap.bench")]
    for module in ("vfio_setup.bind", "vfio_setup.doctor", "vfio_setup.hugepages",
                   "vfio_setup.persist", "vfio_setup.inuse"):
        assert not [m for m in _imported(module) if m.split(".")[0] == "wirecap"], module
