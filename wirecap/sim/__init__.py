"""The software 82599 (DESIGN §3): our hardware where there is no silicon.

``open(0)`` gives the device ``sim:0`` (one instance per index per process), with its wire.
"""
from ._device import Device, ModelError
from ._frame import toeplitz
from ._iommu import Iommu
from ._wire import Pcap, Wire
from .traffic import TrafficProfile, line_rate_pps

__all__ = ["Device", "Iommu", "ModelError", "Pcap", "TrafficProfile", "Wire", "line_rate_pps",
           "open", "pair", "reset", "toeplitz"]

_instances = {}


def open(index=0, iommu=None, concurrent=None):
    """The model port ``sim:<index>``, created on first use (optionally in DMA domain ``iommu``).

    ``concurrent``: how its wire plays by default: False (the default) on the driver's clock,
    True from a real-time thread of its own (CLI ``--wire-thread``); None leaves it as it is.
    """
    dev = _instances.get(index)
    if dev is None:
        dev = _instances[index] = Device(index, iommu)
        dev.wire = Wire(dev)
    elif iommu is not None and dev.iommu is not iommu:
        raise ModelError(f"sim:{index} is already attached to another IOMMU domain")
    if concurrent is not None:
        dev.wire.concurrent = bool(concurrent)
    return dev


def reset():
    """Power every port off: close the devices driving model ports and forget the ports, so
    that the next ``open`` (or ``sim:N`` device) starts from power-on. Tests and benches call
    this between runs."""
    from . import _regs
    _regs.reset()
    for dev in _instances.values():
        dev.wire.stop()
    _instances.clear()


def pair(a=0, b=1):
    """Ports sim:a and sim:b in one DMA domain, cabled to each other (for forwarding)."""
    mmu = Iommu()
    ports = open(a, mmu), open(b, mmu)
    ports[0].cable(ports[1])
    return ports
