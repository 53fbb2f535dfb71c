"""Capture files: pcap (µs or ns timestamps), read and written; pcapng, written.

The pcap format is libpcap's: a 24-byte global header (magic 0xa1b2c3d4 for µs, 0xa1b23c4d for
ns, either byte order), then records of a 16-byte header (ts_sec, ts_frac, caplen, len) and data.
A pcapng file is blocks (type, total length, body, total length again), each a multiple of
4 bytes: a Section Header, an Interface Description per capture device, an Enhanced Packet
Block per frame, and Interface Statistics blocks (received, dropped) at the end.

The writers write through a _dumpfile.Dumpfile: one buffer for the whole file, records
formatted into it in C, a chunk of packets at a time (put_chunk) or one at a time (write).
"""
from __future__ import annotations

import struct

from ._dumpfile import Dumpfile
from ._pcap import FORMATS
from .errors import WirecapError

MAGIC_US, MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
LINKTYPE_ETHERNET = 1
MAX_SNAPLEN = 262144                # libpcap's largest accepted snapshot length


class PcapError(WirecapError):
    """A malformed capture file; the message names the byte offset of the problem."""


def read_pcap(path):
    """Read a pcap file: (linktype, [(timestamp_ns, frame_bytes, orig_len), ...])."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise PcapError(f"{path}: {len(data)} bytes is too short for a pcap header "
                        f"(24 bytes) at offset 0")
    for order in "<>":
        magic, = struct.unpack(order + "I", data[:4])
        if magic in (MAGIC_US, MAGIC_NS):
            break
    else:
        hint = " (this is pcapng: convert it with `editcap -F pcap`)" \
            if data[:4] == b"\x0a\x0d\x0d\x0a" else ""
        raise PcapError(f"{path}: bad magic {data[:4].hex()} at offset 0: not a pcap file{hint}")
    scale = 1000 if magic == MAGIC_US else 1
    _, _, _, _, snaplen, linktype = struct.unpack(order + "HHiIII", data[4:24])
    records, off = [], 24
    rec = struct.Struct(order + "IIII")
    while off < len(data):
        if off + 16 > len(data):
            raise PcapError(f"{path}: truncated record header at offset {off} "
                            f"({len(data) - off} of 16 bytes)")
        sec, frac, caplen, orig = rec.unpack_from(data, off)
        if caplen > max(snaplen, MAX_SNAPLEN) or caplen > orig:
            raise PcapError(f"{path}: record at offset {off} has caplen {caplen} (len {orig}, "
                            f"snaplen {snaplen}): the file is corrupt")
        if frac >= 1_000_000_000 // scale:
            raise PcapError(f"{path}: record at offset {off} has a sub-second timestamp "
                            f"{frac} beyond one second")
        if off + 16 + caplen > len(data):
            raise PcapError(f"{path}: record at offset {off} is truncated: {caplen} bytes "
                            f"announced, {len(data) - off - 16} present")
        records.append((sec * 1_000_000_000 + frac * scale, data[off + 16:off + 16 + caplen], orig))
        off += 16 + caplen
    return linktype, records


class _File:
    """What every writer shares: one Dumpfile, closed by close() or a with-block."""

    def _open(self, path, fmt):
        self._f = Dumpfile(path, FORMATS[fmt])

    def put_chunk(self, chunk, mask=None, start=0, limit=(1 << 64) - 1,
                  max_bytes=(1 << 64) - 1, interface=0):
        """Append the packets of ``chunk`` (see Dumpfile.put_chunk) cut to this file's
        snaplen: (the next index, records)."""
        return self._f.put_chunk(chunk, self.snaplen, mask, start, limit, max_bytes, interface)

    def put_waiting(self, engine, queue=0):
        """Put every chunk waiting for ``queue`` of ``engine`` into the file, whole and cut
        to this file's snaplen, and release them, in C with no Python object per chunk (the
        way to keep up with line rate); the packets written."""
        return engine.write_chunks(queue, self._f, self.snaplen)

    @property
    def records(self):
        """Records appended (those written by write_records counted as their callers said)."""
        return self._f.records

    def flush(self):
        """Push what was written to the file now; raises OSError where the file refuses it
        (writers flush their header at once, so that a bad path fails before any packet)."""
        self._f.flush()

    def tell(self):
        return self._f.tell()

    def reserve(self, nbytes):
        """Set aside the file's next ``nbytes`` now (see Dumpfile.reserve): on tmpfs, writing
        into reserved space costs no page allocation. True if the filesystem could."""
        return self._f.reserve(nbytes)

    def start_over(self):
        """Write the file again from its start, header first, over what it holds and in the
        space it already has (as ``-C`` with a one-file ring would, without freeing it)."""
        self._f.rewind()
        self._f.write(self._header)
        self._opened()

    def _opened(self):
        try:
            self._f.flush()
        except OSError:
            self._f.close()             # the failure was raised: closing does not raise it again
            raise

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PcapWriter(_File):
    """Write frames to a pcap file, with µs (default, what every reader knows) or ns stamps."""

    def __init__(self, path, nanosecond=False, snaplen=65535, linktype=LINKTYPE_ETHERNET):
        if not 0 < snaplen <= MAX_SNAPLEN:
            raise WirecapError(f"pcap snaplen {snaplen}: valid range is 1..{MAX_SNAPLEN}")
        self.path, self.nanosecond, self.snaplen = path, nanosecond, snaplen
        self._open(path, "pcap-ns" if nanosecond else "pcap")
        self._header = struct.pack("<IHHiIII", MAGIC_NS if nanosecond else MAGIC_US, 2, 4, 0, 0,
                                   snaplen, linktype)
        self._f.write(self._header)
        self._opened()

    def write(self, timestamp_ns: int, frame, orig_len: int | None = None):
        data = bytes(frame[:self.snaplen])
        self._f.put(timestamp_ns, data, len(frame) if orig_len is None else orig_len)

    def write_records(self, records, count=0):
        """Append ``count`` records already in this file's format (see _pcap.pcap_records)."""
        self._f.write(records, count)


class PcapngWriter(_File):
    """Write frames to a pcapng file: one section, an interface per capture device
    (``interfaces``: names; frames name theirs by index), ns (default) or µs stamps."""

    def __init__(self, path, linktype=LINKTYPE_ETHERNET, snaplen=65535, tsresol_ns=True,
                 interface_name=None, application="wirecap", interfaces=None):
        if not 0 < snaplen <= MAX_SNAPLEN:
            raise WirecapError(f"pcapng snaplen {snaplen}: valid range is 1..{MAX_SNAPLEN}")
        if interfaces is not None and interface_name is not None:
            raise WirecapError("pcapng: give interface_name (one interface) or interfaces, "
                               "not both")
        self.path, self.snaplen, self.tsresol_ns = path, snaplen, tsresol_ns
        names = list(interfaces) if interfaces is not None else [interface_name]
        shb_opts = _option(4, application.encode()) if application else b""       # shb_userappl
        self._open(path, "pcapng")
        # Byte-order magic, version 1.0, section length -1 (not given: we write as we go).
        self._header = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                              + shb_opts + _END_OF_OPTIONS)
        for name in names:
            idb_opts = (_option(2, name.encode()) if name else b"") \
                + _option(9, bytes([9 if tsresol_ns else 6]))                       # if_tsresol
            self._header += _block(1, struct.pack("<HHI", linktype, 0, snaplen)
                                   + idb_opts + _END_OF_OPTIONS)
        self._f.write(self._header)
        self.interfaces = len(names)
        self._opened()

    def write(self, timestamp_ns: int, frame, orig_len: int | None = None, interface=0):
        data = bytes(frame[:self.snaplen])
        self._f.put(timestamp_ns if self.tsresol_ns else timestamp_ns // 1000, data,
                    len(frame) if orig_len is None else orig_len, interface)

    def _ns_records(self):
        if not self.tsresol_ns:
            raise WirecapError("pcapng records from _pcap carry ns stamps: open the file with "
                               "tsresol_ns=True")

    def put_chunk(self, chunk, *args, **kw):
        self._ns_records()
        return super().put_chunk(chunk, *args, **kw)

    def put_waiting(self, engine, queue=0):
        self._ns_records()
        return super().put_waiting(engine, queue)

    def write_records(self, records, count=0):
        """Append ``count`` Enhanced Packet Blocks with ns stamps (see _pcap.pcap_records)."""
        self._ns_records()
        self._f.write(records, count)

    def write_statistics(self, interface, timestamp_ns, received=None, dropped=None,
                         accepted=None, os_dropped=None, delivered=None):
        """An Interface Statistics Block: isb_ifrecv, isb_ifdrop, isb_filteraccept,
        isb_osdrop, isb_usrdeliv (the ones given) at ``timestamp_ns``."""
        ts = timestamp_ns if self.tsresol_ns else timestamp_ns // 1000
        opts = b"".join(_option(code, struct.pack("<Q", v)) for code, v in
                        ((4, received), (5, dropped), (6, accepted), (7, os_dropped),
                         (8, delivered)) if v is not None)
        self._f.write(_block(5, struct.pack("<III", interface, ts >> 32, ts & 0xFFFFFFFF)
                             + opts + _END_OF_OPTIONS))


_END_OF_OPTIONS = struct.pack("<HH", 0, 0)


def _pad(n):
    return bytes(-n % 4)


def _option(code, value):
    return struct.pack("<HH", code, len(value)) + value + _pad(len(value))


def _block(block_type, body):
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


_FORMATS = {
    "pcap": (PcapWriter, {"nanosecond": False}, {"linktype", "snaplen"}),
    "pcap-ns": (PcapWriter, {"nanosecond": True}, {"linktype", "snaplen"}),
    "pcapng": (PcapngWriter, {}, {"linktype", "snaplen", "tsresol_ns", "interface_name",
                                  "application", "interfaces"}),
}


def open_writer(path, format="pcap", **kw):
    """A PcapWriter or PcapngWriter for `format`: "pcap" (µs), "pcap-ns" or "pcapng"."""
    if format not in _FORMATS:
        raise WirecapError(f"capture file format {format!r} is unknown: use one of "
                           f"{', '.join(_FORMATS)}")
    cls, fixed, accepted = _FORMATS[format]
    extra = sorted(set(kw) - accepted)
    if extra:
        raise WirecapError(f"format {format!r} does not take {', '.join(extra)}: it takes "
                           f"{', '.join(sorted(accepted))}")
    return cls(path, **fixed, **kw)
