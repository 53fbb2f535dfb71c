"""The wire in front of a model port: plays a traffic profile or a pcap file into it.

``play`` paces frames in real time from a thread that runs without the GIL; ``send`` puts
them on the port as fast as the model takes them, in the caller's thread (deterministic
tests, benchmarks). Templates are parsed once; each frame is a template plus its sequence
number, so the per-frame cost is a copy, a lookup of the cached RSS hash and the DMA.
"""
import threading

import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy, memset
from posix.time cimport timespec, nanosleep

from wirecap.includes.clocks cimport mono_ns as now_ns
from wirecap.sim._device cimport Device, FrameInfo, parse_frame
from wirecap.sim._iommu cimport model_lock, model_unlock
from wirecap.sim.traffic import TrafficProfile, line_rate_pps
from wirecap.dump import read_pcap
from wirecap.errors import WirecapError

cnp.import_array()

cdef enum:
    BATCH = 64                  # frames per lock acquisition


class Pcap:
    """A pcap file as a wire source: original timing, or a fixed ``rate`` in frames/s.
    Frames shorter than 60 bytes are padded as a transmitting NIC would."""

    def __init__(self, path, rate=None, loops=1):
        linktype, records = read_pcap(path)
        if linktype != 1:
            raise WirecapError(f"{path}: link type {linktype} is not Ethernet (1); the model's "
                               f"wire carries Ethernet frames only")
        if not records:
            raise WirecapError(f"{path}: the file holds no frames to play")
        if rate is not None and not rate > 0:
            raise WirecapError(f"pcap rate={rate!r}: must be a positive number of frames/s")
        if not (isinstance(loops, int) and loops >= 1):
            raise WirecapError(f"pcap loops={loops!r}: must be an integer >= 1")
        self.path, self.rate, self.loops = path, rate, loops
        self.frames = [d if len(d) >= 60 else d + bytes(60 - len(d)) for _, d, _ in records]
        t0 = records[0][0]
        self.times = np.array([t - t0 for t, _, _ in records], dtype=np.int64)

    @property
    def count(self):
        return len(self.frames) * self.loops


cdef class Wire:
    """Traffic into one model port (``Device``)."""
    cdef Device dev
    cdef uint8_t* blob
    cdef uint64_t* offs
    cdef uint32_t* lens
    cdef FrameInfo* infos
    cdef uint32_t* sched
    cdef uint32_t nsched, ntempl
    cdef int64_t* times
    cdef int64_t span_ns
    cdef uint64_t count
    cdef int stamp
    cdef double interval_ns, burst_ns, line_ns
    cdef uint64_t burst
    cdef uint8_t* scratch
    cdef volatile bint stopping
    cdef readonly uint64_t sent
    cdef readonly int64_t started_ns, finished_ns, max_lag_ns
    cdef object _keep, _thread

    def __cinit__(self, Device device):
        self.dev = device

    def __dealloc__(self):
        self._free()

    cdef void _free(self):
        free(self.blob); free(self.offs); free(self.lens); free(self.infos)
        free(self.sched); free(self.times); free(self.scratch)
        self.blob = NULL; self.offs = NULL; self.lens = NULL; self.infos = NULL
        self.sched = NULL; self.times = NULL; self.scratch = NULL

    # -------------------------------------------------------------- loading a source
    def _load(self, source):
        if self._thread is not None and self._thread.is_alive():
            raise WirecapError("the wire is still playing: stop() or wait() first")
        if isinstance(source, str):
            source = TrafficProfile.parse(source)
        if isinstance(source, TrafficProfile):
            mac = bytes.fromhex(self.dev.mac.replace(":", ""))
            templates, sched = source.templates(mac), source.schedule()
            self.stamp = source.stamp_offset
            self.interval_ns = 1e9 / source.pps
            self.line_ns = 1e9 / line_rate_pps(source.mean_size)
            self.burst = source.burst
            times = None
        elif isinstance(source, Pcap):
            templates, sched = source.frames, np.arange(len(source.frames), dtype=np.uint32)
            self.stamp = -1
            self.burst = 0
            self.interval_ns = 1e9 / source.rate if source.rate else 0
            times = None if source.rate else source.times
        else:
            raise WirecapError(f"wire source {source!r}: give a TrafficProfile, a profile "
                               f"string such as 'count=1000,size=64', or a Pcap")
        self._free()
        total = sum(len(t) for t in templates)
        self.ntempl = len(templates)
        self.nsched = len(sched)
        self.blob = <uint8_t*>malloc(total)
        self.offs = <uint64_t*>malloc(8 * self.ntempl)
        self.lens = <uint32_t*>malloc(4 * self.ntempl)
        self.infos = <FrameInfo*>calloc(self.ntempl, sizeof(FrameInfo))
        self.sched = <uint32_t*>malloc(4 * self.nsched)
        self.scratch = <uint8_t*>malloc(max(len(t) for t in templates))
        if not (self.blob and self.offs and self.lens and self.infos and self.sched and
                self.scratch):
            raise MemoryError("wire templates")
        cdef uint64_t off = 0, i
        cdef const uint8_t[::1] view
        for i, t in enumerate(templates):
            view = t
            memcpy(self.blob + off, &view[0], len(t))
            self.offs[i] = off
            self.lens[i] = len(t)
            parse_frame(self.blob + off, len(t), &self.infos[i])
            off += len(t)
        cdef const uint32_t[::1] s = np.ascontiguousarray(sched, dtype=np.uint32)
        memcpy(self.sched, &s[0], 4 * self.nsched)
        self.span_ns = 0
        if times is not None:
            self.times = <int64_t*>malloc(8 * len(times))
            for i in range(len(times)):
                self.times[i] = times[i]
            # a looped pcap restarts one mean inter-frame gap after its last frame
            last = int(times[len(times) - 1])
            self.span_ns = last + (last // (len(times) - 1) if len(times) > 1 else 1000)
        self.count = source.count
        self.sent = 0
        self.max_lag_ns = 0
        self._keep = source

    cdef inline int64_t _due(self, uint64_t i) noexcept nogil:
        cdef uint64_t b, k
        if self.times != NULL:
            return (i // self.nsched) * self.span_ns + self.times[i % self.nsched]
        if self.burst:             # bursts at line rate, spaced to keep the mean rate
            b = i // self.burst
            k = i % self.burst
            return <int64_t>(b * self.burst * self.interval_ns + k * self.line_ns)
        return <int64_t>(i * self.interval_ns)

    cdef void _deliver(self, uint64_t first, uint64_t n) noexcept nogil:
        cdef uint64_t i
        cdef uint32_t t
        cdef const uint8_t* src
        model_lock()
        for i in range(first, first + n):
            t = self.sched[i % self.nsched]
            src = self.blob + self.offs[t]
            if self.stamp >= 0:
                memcpy(self.scratch, src, self.lens[t])
                memcpy(self.scratch + self.stamp, &i, 8)     # little-endian sequence number
                src = self.scratch
            self.dev.rx_frame(src, self.lens[t], &self.infos[t])
        model_unlock()

    cdef void _pace(self) noexcept nogil:
        cdef int64_t t0 = now_ns(), now, wait
        cdef uint64_t i = 0, j
        cdef timespec ts
        self.started_ns = t0
        while i < self.count and not self.stopping:
            now = now_ns() - t0
            j = i
            while j < self.count and j - i < BATCH and self._due(j) <= now:
                j += 1
            if j == i:
                wait = self._due(i) - now
                if wait > 100000:           # sleep through long gaps, spin through short ones
                    ts.tv_sec = 0
                    ts.tv_nsec = min(wait - 50000, 1000000)
                    nanosleep(&ts, NULL)
                continue
            if now - self._due(i) > self.max_lag_ns:
                self.max_lag_ns = now - self._due(i)
            self._deliver(i, j - i)
            i = j
            self.sent = i
        self.finished_ns = now_ns()

    cdef void _flood(self, uint64_t end) noexcept nogil:
        cdef uint64_t i = self.sent, n
        if i == 0:
            self.started_ns = now_ns()
        if end > self.count:
            end = self.count
        while i < end and not self.stopping:
            n = BATCH if end - i > BATCH else end - i
            self._deliver(i, n)
            i += n
            self.sent = i
        self.finished_ns = now_ns()

    # -------------------------------------------------------------- Python API
    def play(self, source):
        """Start playing ``source`` in real time on a background thread; returns at once."""
        self._load(source)
        self.stopping = False
        self._thread = threading.Thread(target=self._run, name=f"wire-sim:{self.dev.index}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self):
        with nogil:
            self._pace()

    def send(self, source=None, count=None):
        """Put frames of ``source`` on the port now, unpaced, in this thread: all of them, or
        the next ``count``. Without a source, continue the one loaded last."""
        if source is not None:
            self._load(source)
        elif self.sched == NULL:
            raise WirecapError("no source loaded: give send() a profile or a Pcap")
        elif self.running:
            raise WirecapError("the wire is still playing: stop() or wait() first")
        cdef uint64_t end = self.count if count is None else self.sent + count
        self.stopping = False
        with nogil:
            self._flood(end)
        return self.sent

    def inject(self, frames):
        """Put the given frames (bytes, no FCS) on the port now, in order."""
        return self.dev.deliver(frames)

    def wait(self, timeout=None):
        """Wait until the source is played out; True if it finished."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self):
        self.stopping = True
        self.wait()

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def due_ns(self, uint64_t i):
        """When frame i of the loaded source is due on the wire, in ns after the first."""
        if self.sched == NULL:
            raise WirecapError("no source loaded: play() or send() one first")
        return self._due(i)

    def stats(self):
        """sent frames, elapsed seconds, achieved rate, and the worst lag behind schedule."""
        end = self.finished_ns if not self.running else now_ns()
        elapsed = max(end - self.started_ns, 1) / 1e9 if self.started_ns else 0.0
        return {"sent": self.sent, "elapsed_s": elapsed,
                "rate_pps": self.sent / elapsed if elapsed else 0.0,
                "max_lag_ns": self.max_lag_ns}
