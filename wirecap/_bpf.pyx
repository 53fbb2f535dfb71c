"""Packet filters in pcap-filter(7) syntax: compiled by libpcap, run by libpcap's bpf_filter.

We never compile or interpret filters ourselves: `Filter` holds the program `pcap_compile`
produced for a dead handle of the given link type and snapshot length, and `match`/`match_many`
run it with `bpf_filter`, which is reentrant and so safe on capture threads without the GIL.
"""
import struct
import threading

import numpy as np

from wirecap.errors import WirecapError

# pcap_compile keeps parser state in globals in libpcap < 1.8, and bpf_image formats into a
# static buffer: both run under this lock.
_lock = threading.Lock()
BPF_MAXINSNS = 4096                 # the kernel refuses longer classic BPF programs
MAX_SNAPLEN = 262144                # libpcap's largest snapshot length
_SOCK_FILTER = struct.Struct("<HBBI")


class FilterError(WirecapError):
    """A filter expression libpcap refused; the message is libpcap's own."""


cdef class Filter:
    """A compiled filter. An empty expression (or None) matches every packet, as in libpcap.

    linktype is a DLT_ value, as pcap_open_dead takes: the same as the file's LINKTYPE_ for
    Ethernet (1) and most others, but not all (raw IP is DLT_RAW 12, LINKTYPE_RAW 101).
    """

    def __init__(self, expression, int linktype=1, int snaplen=65535, bint optimize=True,
                 unsigned int netmask=0xFFFFFFFF):
        expression = "" if expression is None else str(expression)
        if "\0" in expression:
            raise FilterError(f"filter {expression!r}: contains a NUL character; remove it")
        if not 0 < snaplen <= MAX_SNAPLEN:
            raise FilterError(f"filter {expression!r}: snaplen {snaplen} is outside "
                              f"1..{MAX_SNAPLEN}")
        if self._prog.bf_insns != NULL:
            raise FilterError("a Filter is compiled once: create a new one instead")
        cdef bytes expr = expression.encode()
        cdef pcap_t* handle
        with _lock:
            handle = pcap_open_dead(linktype, snaplen)
            if handle == NULL:
                raise MemoryError("pcap_open_dead failed")
            try:
                if pcap_compile(handle, &self._prog, expr, optimize, netmask) != 0:
                    msg = pcap_geterr(handle).decode(errors="replace")
                    raise FilterError(f"filter {expression!r}: {msg} "
                                      f"(filter syntax: `man 7 pcap-filter`)")
            finally:
                pcap_close(handle)
        self.expression, self.linktype, self.snaplen = expression, linktype, snaplen

    def __dealloc__(self):
        pcap_freecode(&self._prog)

    cdef bint match(self, const uint8_t* pkt, uint32_t wirelen, uint32_t caplen) noexcept nogil:
        return bpf_filter(self._prog.bf_insns, pkt, wirelen, caplen) != 0

    cdef uint32_t match_many(self, const uint8_t* base, const uint32_t* offsets,
                             const uint16_t* caplens, const uint32_t* wire_lens, uint32_t n,
                             uint8_t* out) noexcept nogil:
        """Packet i is base[offsets[i]:offsets[i] + caplens[i]], wire_lens[i] on the wire."""
        cdef uint32_t i, hits = 0
        for i in range(n):
            out[i] = bpf_filter(self._prog.bf_insns, base + offsets[i], wire_lens[i],
                                caplens[i]) != 0
            hits += out[i]
        return hits

    def matches(self, const uint8_t[::1] data not None, wirelen=None):
        """Whether the packet matches; wirelen is its length on the wire if it was truncated."""
        cdef uint32_t caplen = data.shape[0]
        cdef uint32_t wl = caplen if wirelen is None else wirelen
        if wl < caplen:
            raise FilterError(f"wirelen {wl} is less than the {caplen} bytes given")
        cdef const uint8_t* pkt = &data[0] if caplen else <const uint8_t*>b""
        return self.match(pkt, wl, caplen)

    def matches_many(self, packets):
        """A numpy bool array: whether each packet (a bytes-like object) matches."""
        lengths = np.array([memoryview(p).nbytes for p in packets], dtype=np.uint64)
        out = np.zeros(lengths.size, dtype=np.uint8)
        if lengths.size == 0:
            return out.view(bool)
        if lengths.max() > 0xFFFF:
            raise FilterError(f"a packet of {lengths.max()} bytes is longer than the "
                              f"65535 that match_many takes")
        if lengths.sum() >= 1 << 32:
            raise FilterError(f"{lengths.sum()} bytes of packets: match_many takes 4 GiB at "
                              f"a time")
        cdef const uint8_t[::1] blob = b"".join(packets)
        cdef const uint32_t[::1] offsets = (np.cumsum(lengths) - lengths).astype(np.uint32)
        cdef const uint16_t[::1] lens = lengths.astype(np.uint16)
        cdef const uint32_t[::1] wire = lengths.astype(np.uint32)
        cdef uint8_t[::1] res = out
        with nogil:
            self.match_many(&blob[0], &offsets[0], &lens[0], &wire[0], <uint32_t>lens.shape[0],
                            &res[0])
        return out.view(bool)

    @property
    def program(self):
        """The instructions as (code, jt, jf, k) tuples: what `tcpdump -d` shows, as data."""
        return [(self._prog.bf_insns[i].code, self._prog.bf_insns[i].jt,
                 self._prog.bf_insns[i].jf, self._prog.bf_insns[i].k)
                for i in range(self._prog.bf_len)]

    def dump(self):
        """The program as `tcpdump -d` prints it."""
        with _lock:
            return "\n".join(bpf_image(&self._prog.bf_insns[i], i).decode()
                             for i in range(self._prog.bf_len))

    def __len__(self):
        return self._prog.bf_len

    def __repr__(self):
        return (f"Filter({self.expression!r}, linktype={self.linktype}, "
                f"snaplen={self.snaplen}): {self._prog.bf_len} instructions")


def kernel_program(expression, int linktype=1, int snaplen=65535):
    """`struct sock_filter[]` bytes for SO_ATTACH_FILTER: the same classic BPF the kernel runs.

    libpcap compiles for a dead handle here, so VLAN tests look for the tag in the frame; a
    Linux socket sees VLAN tags stripped into metadata unless the NIC's offload is off.
    """
    prog = Filter(expression, linktype, snaplen).program
    if len(prog) > BPF_MAXINSNS:
        raise FilterError(f"filter {expression!r}: {len(prog)} instructions, the kernel takes "
                          f"at most {BPF_MAXINSNS}: simplify the expression")
    return b"".join(_SOCK_FILTER.pack(*insn) for insn in prog)
