"""The wire in front of a model port: plays a traffic profile or a pcap file into it.

Three ways to play (docs/model.md, "Time"):

- ``play(source)``, on the driver's clock (the default): the wire is a schedule of arrival
  times counted from the instant play starts, and the port delivers the frames due whenever
  the driver touches it (_clock). No thread, no core of its own.
- ``play(source, concurrent=True)``: a thread without the GIL paces frames in real time,
  as silicon's MAC would, concurrently with the driver (race and stress tests).
- ``send(source)``: every frame now, unpaced, in the caller's thread (deterministic tests).

Templates are parsed once; a frame is a template plus its sequence number, so the per-frame
cost is a copy, a lookup of the cached RSS hash and the DMA. A pcap is streamed record by
record (_pcapfile), never held whole.
"""
import math
import threading
import time

import numpy as np
cimport cython
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy
from posix.time cimport timespec, nanosleep

from wirecap.sim._clock cimport attach, detach
from wirecap.sim._device cimport Device
from wirecap.sim._frame cimport FrameInfo, parse_frame
from wirecap.sim._iommu cimport model_lock, model_unlock
from wirecap.sim._pcapfile cimport PcapFile, pcap_next, pcap_rewind
from wirecap.sim._receive cimport (rx_frame, rx_fast, count_rx_fast, count_ring_full,
                                   FAST_NONE, FAST_DMA)
from wirecap.includes.atomics cimport st64
from wirecap.includes.clocks cimport mono_ns
from wirecap.sim._state cimport Arrivals, DeviceState, NOTHING_DUE
from wirecap.sim.traffic import TrafficProfile, line_rate_pps
from wirecap.errors import WirecapError

cnp.import_array()

cdef enum:
    BATCH = 64                  # frames per model-lock acquisition


class Pcap:
    """A pcap file as a wire source.

    rate     frames/s instead of the file's timing (None: the file's timing)
    loops    times the file is played
    speed    the file's timing sped up by this factor (tcpreplay's --multiplier)
    max_gap  seconds: a longer gap between two records is cut to this (None: keep every gap);
             on the driver's clock a gap costs no CPU, but it still takes its wall time
    """

    def __init__(self, path, rate=None, loops=1, speed=1.0, max_gap=1.0):
        f = PcapFile(path)
        if f.linktype != 1:
            raise WirecapError(f"{path}: link type {f.linktype} is not Ethernet (1); the model's "
                               f"wire carries Ethernet frames only")
        f.check()
        if f.records == 0:
            raise WirecapError(f"{path}: the file holds no frames to play")
        for name, v in (("rate", rate), ("speed", speed), ("max_gap", max_gap)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or
                                  not 0 < v < math.inf):
                raise WirecapError(f"pcap {name}={v!r}: must be a positive finite number"
                                   + (" of frames/s" if name == "rate" else
                                      " of seconds, or None" if name == "max_gap" else ""))
        if speed is None:
            raise WirecapError("pcap speed=None: give a positive factor (1.0: the file's timing)")
        if not (isinstance(loops, int) and not isinstance(loops, bool) and loops >= 1):
            raise WirecapError(f"pcap loops={loops!r}: must be an integer >= 1")
        self.path, self.rate, self.loops = str(path), rate, loops
        self.speed, self.max_gap = float(speed), max_gap
        self.records, self.first_ns, self.last_ns = f.records, f.first_ns, f.last_ns

    @property
    def count(self):
        return self.records * self.loops

    def _open(self):
        f = PcapFile(self.path)
        f.check()                       # the file may have changed since
        if f.records != self.records:
            raise WirecapError(f"{self.path}: changed since it was opened ({f.records} "
                               f"records, was {self.records})")
        return f


@cython.final
cdef class Wire(Arrivals):
    """Traffic into one model port (``Device``)."""
    cdef Device dev
    # a profile: templates and their schedule
    cdef uint8_t* blob
    cdef uint64_t* offs
    cdef uint32_t* lens
    cdef FrameInfo* infos
    cdef uint32_t* sched
    cdef uint32_t nsched, ntempl
    cdef uint32_t si                    # sched[si] is the template of frame ``sent``
    # per template: frames rx_fast wrote to a ring, and frames that met a full one, not yet
    # counted (settle); the templates with a count
    cdef uint64_t* got
    cdef uint64_t* full
    cdef uint32_t* touched
    cdef uint32_t ntouched
    cdef int stamp
    cdef double interval_ns, line_ns
    cdef uint64_t burst
    # a pcap: the open file, its timing
    cdef PcapFile pcap
    cdef FrameInfo pcap_fi
    cdef uint64_t pcap_records
    cdef int64_t prev_ts, loop_gap_ns, max_gap_ns
    cdef double speed
    cdef readonly uint64_t gaps_shortened
    # progress: frame ``sent`` is the next one, due ``next_ns`` after the start
    cdef uint64_t count
    cdef int64_t next_ns
    cdef int64_t t0
    cdef volatile bint stopping
    cdef bint on_clock
    cdef public bint concurrent         # play()'s default: a wire thread instead of the clock
    cdef readonly uint64_t sent
    cdef readonly int64_t started_ns, finished_ns, max_lag_ns
    cdef readonly uint64_t max_lag_frame    # the frame that waited max_lag_ns
    cdef int64_t last_ns                # when the last frame sent arrived, ns after the first
    cdef object _keep, _thread

    def __cinit__(self, Device device, bint concurrent=False):
        self.dev = device
        self.concurrent = concurrent

    def __dealloc__(self):
        self._free()

    cdef void _free(self):
        if self.ntouched:                   # the templates' counts go first
            with nogil:
                self.settle(self.dev)
        free(self.blob); free(self.offs); free(self.lens); free(self.infos)
        free(self.sched); free(self.got); free(self.full); free(self.touched)
        self.blob = NULL; self.offs = NULL; self.lens = NULL; self.infos = NULL
        self.sched = NULL; self.got = NULL; self.full = NULL; self.touched = NULL

    # -------------------------------------------------------------- loading a source
    def _load(self, source):
        if self.running:
            raise WirecapError("the wire is still playing: stop() or wait() first")
        if self.on_clock:
            self._detach()
        if isinstance(source, str):
            source = TrafficProfile.parse(source)
        self._free()
        self.pcap = None
        if isinstance(source, TrafficProfile):
            self._load_profile(source)
        elif isinstance(source, Pcap):
            self.pcap = source._open()
            self.pcap_records = source.records
            self.stamp = -1
            self.burst = 0
            self.interval_ns = 1e9 / source.rate if source.rate else 0
            self.speed = source.speed
            self.max_gap_ns = -1 if source.max_gap is None else int(source.max_gap * 1e9)
            # a looped file restarts one mean inter-record gap after its last record
            span = source.last_ns - source.first_ns
            self.loop_gap_ns = span // (source.records - 1) if source.records > 1 else 1000
            self.gaps_shortened = 0
        else:
            raise WirecapError(f"wire source {source!r}: give a TrafficProfile, a profile "
                               f"string such as 'count=1000,size=64', or a Pcap")
        self.count = source.count
        self.sent = 0
        self.max_lag_ns = self.max_lag_frame = 0
        self.started_ns = self.finished_ns = self.last_ns = 0
        self._keep = source
        with nogil:
            self._first()

    def _load_profile(self, source):
        mac = bytes.fromhex(self.dev.mac.replace(":", ""))
        templates, sched = source.templates(mac), source.schedule()
        self.stamp = source.stamp_offset
        self.interval_ns = 1e9 / source.pps
        self.line_ns = 1e9 / line_rate_pps(source.mean_size)
        self.burst = source.burst
        total = sum(len(t) for t in templates)
        self.ntempl = len(templates)
        self.nsched = len(sched)
        self.blob = <uint8_t*>malloc(total)
        self.offs = <uint64_t*>malloc(8 * self.ntempl)
        self.lens = <uint32_t*>malloc(4 * self.ntempl)
        self.infos = <FrameInfo*>calloc(self.ntempl, sizeof(FrameInfo))
        self.sched = <uint32_t*>malloc(4 * self.nsched)
        self.got = <uint64_t*>calloc(self.ntempl, 8)
        self.full = <uint64_t*>calloc(self.ntempl, 8)
        self.touched = <uint32_t*>malloc(4 * self.ntempl)
        if not (self.blob and self.offs and self.lens and self.infos and self.sched and
                self.got and self.full and self.touched):
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

    # -------------------------------------------------------------- the schedule
    cdef inline int64_t _due(self, uint64_t i) noexcept nogil:
        """When profile frame i is due, ns after the first."""
        cdef uint64_t b, k
        if self.burst:             # bursts at line rate, spaced to keep the mean rate
            b = i // self.burst
            k = i % self.burst
            return <int64_t>(b * self.burst * self.interval_ns + k * self.line_ns)
        return <int64_t>(i * self.interval_ns)

    cdef void _first(self) noexcept nogil:
        """Position on frame 0."""
        self.next_ns = 0
        self.si = 0
        if self.pcap is not None:
            pcap_rewind(&self.pcap.stream)
            self._read_record()
            self.prev_ts = self.pcap.stream.ts

    cdef bint _read_record(self) noexcept nogil:
        # the next record, or the first again for the next loop; 0 when the file ends early
        cdef int rc = pcap_next(&self.pcap.stream)
        if rc == 0 and self.sent < self.count:
            pcap_rewind(&self.pcap.stream)
            rc = pcap_next(&self.pcap.stream)
        if rc != 1:
            self.count = self.sent      # the file changed under us: what was read was sent
            return 0
        parse_frame(self.pcap.stream.data, self.pcap.stream.len, &self.pcap_fi)
        return 1

    cdef uint64_t _due_by(self, int64_t T) noexcept nogil:
        """How many profile frames are due by T ns after the first (frame ``sent`` is):
        estimated from the rate, then made exact against _due's rounding."""
        cdef uint64_t i, b, k
        cdef double per
        if self.burst:
            per = self.burst * self.interval_ns
            b = <uint64_t>(T / per)
            k = <uint64_t>((T - b * per) / self.line_ns) + 1
            i = b * self.burst + (k if k < self.burst else self.burst)
        else:
            i = <uint64_t>(T / self.interval_ns) + 1
        if i > self.count:
            i = self.count
        while i > self.sent + 1 and self._due(i - 1) > T:
            i -= 1
        while i < self.count and self._due(i) <= T:
            i += 1
        return i

    cdef void _profile_frames(self, uint64_t m, int64_t now) noexcept nogil:
        """Deliver the next m profile frames, all due: each in rx_fast's few instructions when
        it can, counted later with the others of its template (settle), else by rx_frame.
        A frame arrives at its due time, or at ``now`` if that is earlier."""
        cdef uint64_t i = self.sent, end = self.sent + m
        cdef uint32_t si = self.si, t
        cdef FrameInfo* fi
        cdef int64_t at
        cdef int k
        while i < end:
            t = self.sched[si]
            fi = &self.infos[t]
            k = rx_fast(self.dev, self.blob + self.offs[t], self.lens[t], fi, self.stamp, i)
            if k == FAST_NONE:
                at = self.t0 + self._due(i)
                if self.stamp >= 0:         # the template carries this frame's number
                    memcpy(self.blob + self.offs[t] + self.stamp, &i, 8)  # little-endian
                rx_frame(self.dev, self.blob + self.offs[t], self.lens[t], fi,
                         at if at < now else now)
            else:
                if self.got[t] == 0 and self.full[t] == 0:
                    self.touched[self.ntouched] = t
                    self.ntouched += 1
                if k == FAST_DMA:
                    self.got[t] += 1
                else:
                    self.full[t] += 1
            i += 1
            si = si + 1 if si + 1 < self.nsched else 0
        self.sent, self.si = end, si
        at = self.t0 + self._due(end - 1)
        self.last_ns = (at if at < now else now) - self.t0
        if end < self.count:
            self.next_ns = self._due(end)

    cdef void _next_record(self) noexcept nogil:
        """Pcap frame ``sent`` went out: read the next record and compute when it is due."""
        cdef int64_t gap
        self.sent += 1
        if self.sent >= self.count or not self._read_record():
            return
        if self.interval_ns:
            self.next_ns = <int64_t>(self.sent * self.interval_ns)
            return
        if self.sent % self.pcap_records == 0:
            gap = self.loop_gap_ns
        else:
            gap = self.pcap.stream.ts - self.prev_ts
        self.prev_ts = self.pcap.stream.ts
        if gap < 0:                     # records out of time order: back to back
            gap = 0
        if self.max_gap_ns >= 0 and gap > self.max_gap_ns:
            gap = self.max_gap_ns
            self.gaps_shortened += 1
        self.next_ns += <int64_t>(gap / self.speed)

    cdef uint64_t _run(self, int64_t upto, int64_t now, uint64_t limit) noexcept nogil:
        """Deliver, in order, the frames due by ``upto`` (ns on the monotonic clock), at most
        ``limit``; a frame arrives at its due time, or at ``now`` if that is earlier."""
        cdef uint64_t n = 0, m
        cdef int64_t at
        if self.sent < self.count and upto - (self.t0 + self.next_ns) > self.max_lag_ns and \
                upto != NOTHING_DUE:
            self.max_lag_ns = upto - (self.t0 + self.next_ns)
            self.max_lag_frame = self.sent
        model_lock()
        while n < limit and self.sent < self.count and self.t0 + self.next_ns <= upto:
            if self.pcap is None:       # all that is due, up to the next lock release
                m = self._due_by(upto - self.t0) - self.sent
                m = min(m, limit - n, BATCH - (n & (BATCH - 1)))
                self._profile_frames(m, now)
                n += m
            else:
                at = self.t0 + self.next_ns
                if at > now:            # send(): ahead of its schedule, so it arrives now
                    at = now
                self.last_ns = at - self.t0
                rx_frame(self.dev, self.pcap.stream.data, self.pcap.stream.len,
                         &self.pcap_fi, at)
                self._next_record()
                n += 1
            if n & (BATCH - 1) == 0:          # let other ports' register accesses in
                if not self.on_clock:   # off the clock nothing settles before a read
                    self._count()
                model_unlock()
                model_lock()
        if not self.on_clock:
            self._count()
        model_unlock()
        if self.sent >= self.count and n:
            self.finished_ns = mono_ns()
        return n

    cdef void _count(self) noexcept nogil:
        # the bulk count of the frames rx_fast took; the caller holds the model lock
        cdef uint32_t k, t
        for k in range(self.ntouched):
            t = self.touched[k]
            if self.got[t]:
                count_rx_fast(self.dev, &self.infos[t], self.lens[t], self.got[t])
            if self.full[t]:
                count_ring_full(self.dev, &self.infos[t], self.lens[t], self.full[t])
            self.got[t] = self.full[t] = 0
        self.ntouched = 0

    cdef void settle(self, DeviceState s) noexcept nogil:
        if self.ntouched:
            model_lock()
            self._count()
            model_unlock()

    cdef uint64_t deliver(self, DeviceState s, int64_t upto) noexcept nogil:
        """On the driver's clock (called by _clock with the clock lock held)."""
        cdef uint64_t n = self._run(upto, upto, <uint64_t>-1)
        st64(&s.next_due, self.t0 + self.next_ns if self.sent < self.count else NOTHING_DUE)
        return n

    cdef void _pace(self) noexcept nogil:
        cdef int64_t now, wait
        cdef timespec ts
        while self.sent < self.count and not self.stopping:
            now = mono_ns()
            wait = self.t0 + self.next_ns - now
            if wait > 0:
                if wait > 100000:       # sleep through long gaps, spin through short ones
                    ts.tv_sec = 0
                    ts.tv_nsec = min(wait - 50000, 1000000)
                    nanosleep(&ts, NULL)
                continue
            self._run(now, now, BATCH)
        self.finished_ns = mono_ns()

    cdef void _flood(self, uint64_t end) noexcept nogil:
        cdef int64_t now = mono_ns()
        if self.sent == 0:
            self.started_ns = self.t0 = now
        while self.sent < end and self.sent < self.count and not self.stopping:
            self._run(NOTHING_DUE, now, BATCH if end - self.sent > BATCH else end - self.sent)
        self.finished_ns = mono_ns()

    # -------------------------------------------------------------- Python API
    def play(self, source, concurrent=None):
        """Start playing ``source``; returns at once. On the driver's clock (the default)
        frames are delivered as the driver touches the port; ``concurrent=True`` (or the
        wire's ``concurrent`` default) paces them from a thread of their own."""
        self._load(source)
        self.stopping = False
        self.started_ns = self.t0 = mono_ns()
        if not (self.concurrent if concurrent is None else concurrent):
            attach(self.dev, self, self.t0 + self.next_ns)
            self.on_clock = True
            return self
        self._thread = threading.Thread(target=self._run_thread,
                                        name=f"wire-sim:{self.dev.index}", daemon=True)
        self._thread.start()
        return self

    def _run_thread(self):
        with nogil:
            self._pace()

    def _detach(self):
        detach(self.dev, self)
        self.on_clock = False

    def send(self, source=None, count=None):
        """Put frames of ``source`` on the port now, unpaced, in this thread: all of them, or
        the next ``count``. Without a source, continue the one loaded last."""
        if source is not None:
            self._load(source)
        elif self.count == 0:
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
        """Wait until the source is played out; True if it finished. On the driver's clock
        the waiting thread polls the port (as a driver would) as frames fall due."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        end = None if timeout is None else time.monotonic() + timeout
        while self.running:
            ahead = (self.t0 + self.next_ns - mono_ns()) / 1e9
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                break
            time.sleep(min(max(ahead, 0.0002), 0.01, left if left is not None else 1))
            self.dev.sync()
        return not self.running

    def stop(self):
        """Stop playing: frames not yet due are never sent."""
        self.stopping = True
        if self.on_clock:
            self._detach()
        self.wait()

    @property
    def running(self):
        if self.on_clock:
            return self.sent < self.count
        return self._thread is not None and self._thread.is_alive()

    def due_ns(self, uint64_t i):
        """When frame i of the loaded profile is due on the wire, in ns after the first."""
        if self.sched == NULL:
            raise WirecapError("no profile loaded: play() or send() one first (a pcap's "
                               "timing is known only as it streams)")
        return self._due(i)

    def stats(self):
        """sent frames, elapsed seconds (wall clock, from play() to the last frame sent), the
        rate the port saw them arrive at (from their arrival times: on the driver's clock the
        schedule's, however late the driver caught up), the worst lag behind schedule (and the
        frame that had it), and for a pcap the gaps cut to max_gap."""
        end = self.finished_ns if self.finished_ns else mono_ns()
        elapsed = max(end - self.started_ns, 1) / 1e9 if self.started_ns else 0.0
        rate = (self.sent - 1) / (self.last_ns / 1e9) if self.sent > 1 and self.last_ns > 0 \
            else (self.sent / elapsed if elapsed else 0.0)
        return {"sent": self.sent, "elapsed_s": elapsed, "rate_pps": rate,
                "max_lag_ns": self.max_lag_ns,
                "max_lag_frame": self.max_lag_frame, "gaps_shortened": self.gaps_shortened}
