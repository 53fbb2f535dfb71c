"""Devices: the one place that maps a device name to the code that drives it.

    dev = open_device("sim:0")                  # the 82599 model, port 0
    dev = open_device("pci:0000:03:00.0")       # an 82599 bound to vfio-pci
    dev = open_device("afpacket:eth0")          # any Linux interface, through AF_PACKET
    dev = open_device("eth0")                   # the same: a bare name that is an interface

A name is ``kind:where``. ``KINDS`` is the registry: per kind, the function that opens it
(``module:function``, imported on first use, called as ``opener(where, **options)``), what
it is and an example name. Adding a device is a package that provides such a function and a
class following ``Device`` below, plus one line in ``KINDS``. A name without a known kind
that is a network interface of this namespace means AF_PACKET, as in tcpdump (and so does
``any``: every interface).

What every device offers (the engine, the pcap API and the CLI use nothing else):
"""
from __future__ import annotations

import importlib
import socket
from typing import Protocol

from .errors import WirecapError


class Device(Protocol):
    """A capture device: receive queues on the shared ring (wirecap._ring.RxRing), transmit
    queues, counters. Class attributes tell the engine what to pass:

    name, kind       the name it was opened by ("sim:0") and what it is ("82599", "afpacket")
    open_options     keywords ``open_device`` takes for it (e.g. "domain", "fanout")
    rx_options       keywords ``rx_queue`` takes (its geometry: "segment", "block_size", ...)
    default_chunks   the pool size R the engine uses when none is given
    domain           the DMA domain its queues' memory lives in, None if it has none
    closed           True once close() ran; every later call but close() raises
    failure          optional: why capture ended on its own (an interface deleted), noticed
                     when counters() runs; the engine's readers raise it once drained
    """
    name: str
    kind: str
    open_options: tuple
    rx_options: tuple
    default_chunks: int
    domain: object
    closed: bool

    def set_rss(self, queues: int) -> None:
        """Spread traffic over receive queues 0..queues-1 (before the first rx_queue)."""

    def rx_queue(self, index: int = 0, **geometry):
        """Set up receive queue ``index``: an RxRing (poll, recycle, stats, accounting)."""

    def tx_queue(self, index: int = 0, **kw):
        """Set up transmit queue ``index``: send(frame), forward(chunk, i), stats()."""

    def set_filter(self, expression, queue=None, snaplen=None) -> bool:
        """Run the libpcap filter ``expression`` in the device, before packets take ring space
        (on every queue, or on ``queue``), keeping ``snaplen`` bytes of each where it can:
        True if the device filters, False if it cannot (the caller then filters)."""

    def start(self, link_timeout: float = 5.0) -> None:
        """Let packets in."""

    def stop(self) -> None:
        """Stop taking packets (queues and pools stay as they are)."""

    def counters(self, reset: bool = False) -> dict:
        """The device's own counters, accumulated into 64-bit totals."""

    def queue_counters(self, q: int, totals: dict | None = None) -> dict:
        """Receive queue ``q``'s ``nic_delivered`` and ``nic_dropped`` from ``totals``."""

    def close(self) -> None:
        """Close every queue and give the device back (idempotent)."""


class Kind:
    """A registry entry: the driver class ("module:Class"), the register interface it runs
    on ("module:attach", None for a driver that needs none), what it is, an example name."""

    def __init__(self, driver, attach, what, example):
        self.driver, self.attach, self.what, self.example = driver, attach, what, example


KINDS = {
    "sim": Kind("wirecap._pmd:Nic", "wirecap.sim._regs:attach", "the Intel 82599 model",
                "sim:0"),
    "pci": Kind("wirecap._pmd:Nic", "wirecap._mmio:attach",
                "an Intel 82599 bound to vfio-pci (`wirecap devices`)", "pci:0000:03:00.0"),
    "afpacket": Kind("wirecap.afpacket:AfPacket", None, "any Linux interface, through "
                     "AF_PACKET", "afpacket:eth0"),
}
# a name with no kind that is one of this namespace's interfaces opens as this kind
INTERFACE_KIND = "afpacket"


def _unknown(name, why):
    kinds = "; ".join(f"{k}: {kind.what}, e.g. {kind.example}" for k, kind in KINDS.items())
    return WirecapError(f"device {name!r}: {why}. Name a device as {kinds}; or give an "
                        f"interface name (`ip link` lists them)")


def _load(path):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def parse(name):
    """(kind, where) of a device name; a bare interface name is (INTERFACE_KIND, name)."""
    if not isinstance(name, str):
        raise _unknown(name, "a device name is a string")
    kind, sep, where = name.partition(":")
    if sep and kind in KINDS:
        if not where:
            raise _unknown(name, f"{kind}: needs what follows the colon")
        return kind, where
    if name == "any":                   # tcpdump's pseudo-device: every interface
        return INTERFACE_KIND, name
    try:
        socket.if_nametoindex(name)
    except (OSError, ValueError):
        raise _unknown(name, "no such device kind or interface") from None
    return INTERFACE_KIND, name


def device_class(name):
    """The class that drives ``name`` (its open_options, rx_options, default_chunks)."""
    return _load(KINDS[parse(name)[0]].driver)


def open_device(name, **options):
    """Open the device ``name`` (see the module docstring). ``options`` go to its class, which
    lists them in ``open_options``; anything else is refused."""
    kind, where = parse(name)
    cls, attach = _load(KINDS[kind].driver), KINDS[kind].attach
    extra = sorted(set(options) - set(cls.open_options))
    if extra:
        raise WirecapError(f"{name} does not take {', '.join(extra)}: a {kind} device takes "
                           f"{', '.join(cls.open_options)}")
    if attach is None:
        return cls(where, **options)
    regs, domain, port = _load(attach)(where, options.pop("domain", None))
    return cls(f"{kind}:{where}", regs, domain, port, **options)
