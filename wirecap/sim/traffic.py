"""Traffic profiles the model's wire plays: counts, rates, sizes, weighted flows, bursts.

A profile is deterministic: ``frame(i)`` is exactly the i-th frame the wire puts on the link
(frames of the same flow and size differ only in the 8-byte sequence number ``i`` they carry),
so tests can check delivered bytes against it.
"""
from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np

from ..errors import WirecapError

LINE_RATE_BPS = 10_000_000_000
WIRE_OVERHEAD = 20                  # preamble + SFD (8) and the inter-frame gap (12), in bytes
# Frame sizes on the wire, FCS included: Ethernet's minimum, and the largest jumbo frame the
# 82599 handles (MAXFRS.MFS; Linux's ixgbe caps it at 16128). A frame longer than the port's
# MAXFRS is still sent: the receiving MAC drops it and counts it in ROC.
MIN_FRAME, MAX_FRAME = 64, 16128
MIN_RATE = 1e-3                     # frames/s: one frame every 1000 s
MAX_SPAN_NS = 1 << 62               # the last frame must be due within ~146 years (int64 ns)
SCHEDULE_LEN = 65536
SRC_MAC = bytes.fromhex("025743fffffe")


def line_rate_pps(size: float) -> float:
    """Frames per second a 10 GbE link carries at ``size`` bytes per frame (with FCS)."""
    return LINE_RATE_BPS / ((size + WIRE_OVERHEAD) * 8)


def _ipv4_checksum(header: bytes) -> int:
    s = sum(struct.unpack(f">{len(header) // 2}H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _error(name, value, valid):
    return WirecapError(f"traffic profile: {name}={value!r} is invalid; valid: {valid}")


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_real(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and not math.isnan(x)


def _parse_int(key, text):
    """An integer written as such or as a whole float (1e6); inf, nan and 1.5 are refused."""
    try:
        return int(text)
    except ValueError:
        x = float(text)                 # ValueError for words: the caller names the key
        if not math.isfinite(x) or x != int(x):
            raise _error(key, text, "a whole number (1000, 1e6)") from None
        return int(x)


@dataclasses.dataclass(frozen=True)
class TrafficProfile:
    """What the wire sends.

    count   frames in all
    sizes   frame sizes on the wire, FCS included (64..16128); ``size_weights`` their mix
    flows   distinct UDP (or TCP) 5-tuples; ``weights`` their shares (RSS spreads flows
            over queues, so uneven weights load queues unevenly)
    rate    mean frames per second; None means 10 GbE line rate
    burst   if > 0, frames come in bursts of this many at line rate, spaced to keep ``rate``
    """
    count: int = 1000
    sizes: tuple = (64,)
    size_weights: tuple | None = None
    flows: int = 1
    weights: tuple | None = None
    rate: float | None = None
    burst: int = 0
    proto: str = "udp"
    seed: int = 1

    def __post_init__(self):
        sizes = (self.sizes,) if isinstance(self.sizes, (int, np.integer)) else tuple(self.sizes)
        object.__setattr__(self, "sizes", sizes)
        if not _is_int(self.count) or not 1 <= self.count <= 1 << 48:
            raise _error("count", self.count, "an integer from 1 to 2**48")
        if not sizes or any(not _is_int(s) or not MIN_FRAME <= s <= MAX_FRAME for s in sizes):
            raise _error("sizes", self.sizes, f"frame sizes from {MIN_FRAME} to {MAX_FRAME} "
                                              f"bytes (FCS included)")
        if not _is_int(self.flows) or not 1 <= self.flows <= 65536:
            raise _error("flows", self.flows, "an integer from 1 to 65536")
        for name, w, n in (("weights", self.weights, self.flows),
                           ("size_weights", self.size_weights, len(sizes))):
            if w is not None and (len(w) != n or
                                  any(not _is_real(x) or not 0 <= x < math.inf for x in w) or
                                  not 0 < math.fsum(w) < math.inf):
                raise _error(name, w, f"{n} finite non-negative numbers with a positive sum "
                                      f"(one per {'flow' if name == 'weights' else 'size'})")
        if self.proto not in ("udp", "tcp"):
            raise _error("proto", self.proto, "'udp' or 'tcp'")
        top = line_rate_pps(self.mean_size)
        if self.rate is not None and (not _is_real(self.rate) or
                                      not MIN_RATE <= self.rate <= top * 1.000001):
            raise _error("rate", self.rate, f"{MIN_RATE:g} <= rate <= {top:,.0f} frames/s "
                                            f"(10 GbE line rate for {self.mean_size:g}-byte "
                                            f"frames), or line")
        if self.count / self.pps * 1e9 > MAX_SPAN_NS:
            raise _error("rate", self.rate, f"at least {self.count * 1e9 / MAX_SPAN_NS:g} "
                                            f"frames/s for count={self.count} (the last frame "
                                            f"must be due within {MAX_SPAN_NS / 3.156e16:.0f} "
                                            f"years)")
        if not _is_int(self.burst) or not 0 <= self.burst <= self.count:
            raise _error("burst", self.burst, f"an integer from 0 (no bursts) to count="
                                              f"{self.count}")
        if not _is_int(self.seed) or self.seed < 0:
            raise _error("seed", self.seed, "a non-negative integer")

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, text: str) -> "TrafficProfile":
        """``count=1e6,size=64,flows=4,weights=8:1:1:1,rate=1e6,burst=1000,proto=udp``"""
        kw = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = item.partition("=")
            if "=" not in text and ("." in text or "/" in text):    # meant as a file name
                raise WirecapError(f"traffic: {text.strip()!r}: no such file (and not a "
                                   f"profile such as count=1000,size=64,flows=4)")
            if not sep:
                raise WirecapError(f"traffic profile: {item!r} is not KEY=VALUE "
                                   f"(e.g. count=1000,size=64,flows=4)")
            key = {"size": "sizes"}.get(key.strip(), key.strip())
            value = value.strip()
            try:
                if key in ("count", "flows", "burst", "seed"):
                    kw[key] = _parse_int(key, value)
                elif key == "rate":
                    kw[key] = None if value in ("line", "") else float(value)
                elif key in ("sizes", "weights", "size_weights"):
                    kw[key] = tuple(_parse_int(key, v) if key == "sizes" else float(v)
                                    for v in value.split(":"))
                elif key == "proto":
                    kw[key] = value
                else:
                    raise WirecapError(
                        f"traffic profile: unknown key {key!r}; known: count, size, "
                        f"size_weights, flows, weights, rate, burst, proto, seed")
            except ValueError:
                raise _error(key, value, "a number (lists separated by ':')") from None
        return cls(**kw)

    # ------------------------------------------------------------------ derived values
    @property
    def mean_size(self) -> float:
        w = self.size_weights or (1,) * len(self.sizes)
        return sum(s * x for s, x in zip(self.sizes, w)) / sum(w)

    @property
    def pps(self) -> float:
        return self.rate if self.rate is not None else line_rate_pps(self.mean_size)

    @property
    def stamp_offset(self) -> int:
        """Where the 8-byte little-endian sequence number sits in every frame."""
        return 14 + 20 + (4 if self.proto == "tcp" else 8)

    def flow_tuple(self, flow: int):
        """(src ip, dst ip, src port, dst port) of a flow."""
        # Multiplicative scrambling: flows that differ by one in both address and port would
        # get Toeplitz hashes with correlated low bits and crowd a few RSS queues.
        a = (flow * 40503) & 0xFFFF
        return (f"198.18.{a >> 8}.{a & 0xFF}", "198.19.0.1", 1024 + (flow * 7919) % 64000, 5001)

    def template(self, flow: int, size: int, dst_mac: bytes) -> bytes:
        """Frame (without FCS) for ``flow`` at wire ``size``, sequence number zero."""
        n = size - 4
        src, dst, sport, dport = self.flow_tuple(flow)
        if self.proto == "udp":
            l4 = struct.pack(">HHHH", sport, dport, n - 34, 0)
        else:
            l4 = struct.pack(">HHIIBBHHH", sport, dport, 0, 0, 5 << 4, 0x18, 65535, 0, 0)
        ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, n - 14, flow & 0xFFFF, 0x4000, 64,
                                   17 if self.proto == "udp" else 6, 0,
                                   bytes(map(int, src.split("."))),
                                   bytes(map(int, dst.split(".")))))
        ip[10:12] = struct.pack(">H", _ipv4_checksum(bytes(ip)))
        head = dst_mac + SRC_MAC + b"\x08\x00" + bytes(ip) + l4
        return head + bytes(n - len(head))

    def templates(self, dst_mac: bytes):
        """All (flow, size) templates, flow-major: template index = flow * len(sizes) + size."""
        return [self.template(f, s, dst_mac) for f in range(self.flows) for s in self.sizes]

    def schedule(self) -> np.ndarray:
        """Template index of frame i is ``schedule()[i % len(schedule())]``."""
        n = min(self.count, SCHEDULE_LEN)
        fw = np.asarray(self.weights or (1.0,) * self.flows, dtype=float)
        sw = np.asarray(self.size_weights or (1.0,) * len(self.sizes), dtype=float)
        p = np.outer(fw / fw.sum(), sw / sw.sum()).ravel()
        if len(p) == 1:
            return np.zeros(n, dtype=np.uint32)
        rng = np.random.Generator(np.random.PCG64(self.seed))
        return rng.choice(len(p), size=n, p=p).astype(np.uint32)

    def frame(self, i: int, dst_mac: bytes, _cache={}) -> bytes:
        """The i-th frame exactly as the wire sends it (reference for tests)."""
        key = (self, dst_mac)
        if key not in _cache:
            _cache.clear()
            _cache[key] = (self.templates(dst_mac), self.schedule())
        templates, sched = _cache[key]
        t = bytearray(templates[sched[i % len(sched)]])
        t[self.stamp_offset:self.stamp_offset + 8] = struct.pack("<Q", i)
        return bytes(t)
