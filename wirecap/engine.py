"""The capture engine (DESIGN §5): devices, receive queues, capture threads, buddy groups.

    with Engine("sim:0", queues=4, mode="advanced", threshold=0.6) as eng:
        for chunk in eng.chunks(0):        # or wirecap.pcap.Handle(eng, 0), pcap-style
            ...
            chunk.release()

``threads=True`` runs capture threads without the GIL, each serving one or several receive
queues (``capture_cpus``); ``threads=False`` (inline) makes the reading threads capture for
themselves.
"""
from __future__ import annotations

import math
import os
import warnings
import threading
import time

from . import _engine
from .devices import device_class, open_device
from .errors import WirecapError

MODES = ("basic", "advanced")
# Frames a device drops before RSS gives them a queue, so counted per port and not per queue:
# by device kind, the counters of each place. The 82599 (datasheet 8.2.3.23): its packet
# buffer overflowing (MPC) and its MAC refusing frames too long (ROC; RJC with a bad CRC),
# too short (RUC; RFC with a bad CRC) or with a bad CRC (CRCERRS, 64 bytes and more). The
# kernel's drops on AF_PACKET are per queue, in nic_dropped.
PORT_DROPS = {"82599": {"buffer_dropped": tuple(f"MPC{i}" for i in range(8)),
                        "mac_dropped": ("ROC", "RUC", "RFC", "RJC", "CRCERRS")}}
DROPS = ("nic_dropped", "buffer_dropped", "mac_dropped")   # every place a frame can be lost
U32 = 0xFFFFFFFF
MAX_FLUSH_US = 1e12                 # about 11 days: longer is "never" (None)
MAX_COUNTER_INTERVAL = 60.0
SPIN_US = 50                        # a reader polls this long before it sleeps (wait())
# ... and this long while traffic flows on a device that must be polled (the 82599 driver):
# a core that goes idle between chunks is woken for each (on our VM the host then took the
# capture thread's vCPU away for 6.4 ms in every other 10^7-frame line-rate run; on silicon a
# deep C-state's exit latency); DPDK's readers never sleep at all
FLOW_SPIN_US = 2000
FLOW_S = 0.1                        # traffic flows: a chunk came less than this long ago


class Engine:
    """Capture from ``queues`` receive queues of each device.

    devices    a name or a list: "sim:0", "pci:0000:03:00.0" (all in one DMA domain), or
               "afpacket:IFACE" (any Linux interface, through TPACKET_V3 rings)
    queues     receive queues per device (RSS spreads flows over them; on afpacket, a
               packet fanout group)
    mode       "basic": each queue's chunks to its own capture queue; "advanced": a queue
               whose capture queue is longer than threshold x R offloads to the least-loaded
               buddy (all queues of the engine are buddies)
    segment, chunks, ndesc, bufsize, flush_us   the receive queue geometry (see RxQueue);
               chunks (R) defaults to the device's default_chunks (100 on 82599 devices, as
               in the paper's runs); each device takes the keywords in its rx_options
    block_size, fanout   afpacket only: ring block bytes (R = chunks blocks, default 32 of
               1 MiB) and the fanout mode ("hash", "lb", "cpu", "rollover", "rnd", "qm")
    threads    capture threads (True) or capture in the reading thread (False, inline)
    capture_cpus   the capture threads, each pinned to its CPUs and polling its queues in
               turn (queue i is served by thread i mod n): a list with one CPU (or a set of
               CPUs) per thread, or a number of threads (pinned to the highest-numbered CPUs
               this process may use). Default: one thread per queue on all CPUs but one, so
               that at least one core is left to the application (2 CPUs: one thread serves
               every queue)
    app_cpus   CPUs for the thread that calls start(), the application's own, as DPDK pins
               its main lcore: a list, or False to leave it alone. Default: the CPUs no
               capture thread uses, if there are any. Without it the kernel wakes a reader
               onto the capture thread's core (it is where the wake-up came from), and every
               such wake-up preempts capture for longer than a ring lasts at line rate. stop()
               gives the thread back its CPUs.
    rt_priority    run the capture threads under SCHED_FIFO at this priority (1-99), as
               ``chrt -f N`` would: ordinary tasks (kernel threads included) then never take
               their cores, which at line rate no ring outlasts (a 1,024-descriptor ring lasts
               69 us). Needs root (CAP_SYS_NICE), and CPUs left to the application: a
               real-time thread that polls would starve everything else on its core. Such a
               thread polls without ever napping, as DPDK's do: a nap's wake-up can come later
               than a ring lasts (in a VM, an idle vCPU goes back to the host). The kernel's
               real-time throttling (by default 950,000 of every 1,000,000 us) then stops it
               for 50 ms each second, which no ring outlasts: turn it off
               (``sysctl kernel.sched_rt_runtime_us=-1``) or leave this unset; Engine warns
               (ThrottleWarning). Default None: ordinary scheduling
    rss_key    the 40-byte Toeplitz key for 82599 devices (default: the datasheet's example)
    """

    def __init__(self, devices="sim:0", queues=1, mode="basic", threshold=0.6, segment=256,
                 chunks=None, ndesc=1024, bufsize=2048, flush_us=1000, threads=True,
                 capture_cpus=None, promiscuous=True, counter_interval=1.0, block_size=None,
                 fanout="hash", rss_key=None, app_cpus=None, rt_priority=None):
        if mode not in MODES:
            raise WirecapError(f"mode {mode!r}: choose 'basic' or 'advanced'")
        if not (_number(threshold) and 0 < threshold <= 1):
            raise WirecapError(f"threshold {threshold!r}: a fraction of the capture queue's "
                               f"capacity, 0 < T <= 1 (the paper uses e.g. 0.6)")
        if not _whole(queues) or not 1 <= queues <= 16:
            raise WirecapError(f"queues={queues!r}: RSS spreads over 1 to 16 queues per device")
        # whole numbers before they reach the devices' unsigned C arguments (each device
        # then checks its own ranges and names them)
        for name, v, top in (("segment", segment, U32), ("chunks", chunks, U32),
                             ("ndesc", ndesc, U32), ("bufsize", bufsize, U32),
                             ("block_size", block_size, None)):
            if v is not None and not (_whole(v) and 0 <= v <= (top or v)):
                raise WirecapError(f"{name}={v!r}: give a whole number from 1" +
                                   (f" to {top}" if top else "") +
                                   " (the device's range applies; see Engine's help)")
        if flush_us is not None and not (_number(flush_us) and flush_us <= MAX_FLUSH_US):
            raise WirecapError(f"flush_us={flush_us!r}: the µs after which a partly filled "
                               f"segment is delivered, 0 to {MAX_FLUSH_US:.0e}, or None (never)")
        if not (_number(counter_interval) and 0 < counter_interval <= MAX_COUNTER_INTERVAL):
            raise WirecapError(f"counter_interval={counter_interval!r}: seconds between counter "
                               f"readings, more than 0 and at most {MAX_COUNTER_INTERVAL} (a "
                               f"32-bit counter the NIC clears on read wraps in 4.8 minutes "
                               f"at line rate)")
        names = [devices] if isinstance(devices, str) else list(devices)
        if not names:
            raise WirecapError("no device given: name one, e.g. sim:0")
        self._cpus = _capture_cpus(capture_cpus, queues * len(names)) if threads else []
        self._app_cpus = _app_cpus(app_cpus, self._cpus)
        self._rt = _rt_priority(rt_priority, self._cpus, threads)
        self._app_thread = None         # (native id, its CPUs before start())
        self.mode, self.threshold, self.threads = mode, threshold, threads
        self.nics, self.workers = [], []
        self._threads, self._running, self._closed = [], False, False
        self._tx = []                   # transmit queues handed out: stop() reaps them
        self._lifecycle = threading.Lock()  # start(), stop() and close() one at a time
        self._run = 0                   # bumped by start() and stop(): readers notice
        self._chunk_at = -math.inf      # when wait() last found a chunk (time.monotonic())
        self.domain = None
        try:
            options = dict(domain=self.domain, promiscuous=promiscuous, fanout=fanout,
                           **({} if rss_key is None else {"rss_key": rss_key}))
            for name in names:
                cls = device_class(name)
                options["domain"] = self.domain
                nic = open_device(name, **{k: v for k, v in options.items()
                                           if k in cls.open_options})
                if self.domain is None:         # the first device's DMA domain, shared
                    self.domain = nic.domain
                geometry = {k: v for k, v in dict(
                    ndesc=ndesc, segment=segment, bufsize=bufsize, flush_us=flush_us,
                    block_size=block_size,
                    chunks=nic.default_chunks if chunks is None else chunks).items()
                    if k in nic.rx_options}
                self.nics.append(nic)
                nic.set_rss(queues)
                for q in range(queues):
                    rxq = nic.rx_queue(q, **geometry)
                    self.workers.append(_engine.Worker(len(self.workers), rxq))
        except MemoryError as e:          # pools are sized by the caller: say which knob
            self._close_nics()
            raise WirecapError(f"{e}: the receive pools do not fit in memory; give fewer "
                               f"chunks (or smaller segments, buffers or blocks)") from None
        except BaseException:
            self._close_nics()
            raise
        for w in self.workers:
            w.set_buddies(self.workers)
            w.advanced = mode == "advanced"
            w.threshold = threshold
        # queue i is served by capture thread i mod n, each thread polling its queues in turn
        n = len(self._cpus)
        self.capture_threads = [_engine.CaptureThread(self.workers[i::n]) for i in range(n)]
        for ct in self.capture_threads:     # a real-time core is the capture's: it never naps
            ct.poll_only = self._rt is not None
        self._counter_interval = counter_interval
        self._counter_stop = threading.Event()
        self.started_at = None

    @property
    def discarded(self):
        """Packets captured but never read: stop() took them back (queued, or still in the
        ring), or start() found them in the ring (they arrived while the engine was stopped
        and belong to no run)."""
        return sum(w.stats()["discarded"] for w in self.workers)

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        """Start capturing: enable the devices and start the capture threads, each pinned to
        its CPUs. If one cannot start, raise and leave nothing running."""
        with self._lifecycle:
            if self._closed:
                raise WirecapError("the engine is closed: open a new Engine")
            if self._running:
                raise WirecapError("the engine is already running")
            for nic in self.nics:
                nic.start()
            self._drain()
            for w in self.workers:
                w.resume()
            try:
                self._start_threads()
            except BaseException:
                self._stop_threads()
                raise
            if self._app_cpus and self._app_thread is None:
                # before the counter thread starts: it inherits the application's CPUs
                self._app_thread = (threading.get_native_id(), os.sched_getaffinity(0))
                os.sched_setaffinity(0, self._app_cpus)
            self._counter_stop.clear()
            self._counter_thread = threading.Thread(target=self._read_counters,
                                                    name="wirecap-counters", daemon=True)
            self._counter_thread.start()
            self._run += 1
            self._running = True
            self.started_at = time.time()

        return self

    def _start_threads(self):
        failed = []
        for i, (ct, cpus) in enumerate(zip(self.capture_threads, self._cpus)):
            ready = threading.Event()
            ct.resume()
            t = threading.Thread(target=_capture_thread, args=(ct, cpus, self._rt, ready,
                                                               failed),
                                 name=f"wirecap-capture-{i}", daemon=True)
            self._threads.append(t)
            t.start()
            ready.wait()
            if failed:
                raise WirecapError(f"capture thread {i} (queues "
                                   f"{', '.join(str(w.index) for w in ct.workers)}): "
                                   f"{failed[0]}; nothing was started")

    def _stop_threads(self):
        for w in self.workers:
            w.stop()
        for ct in self.capture_threads:
            ct.stop()
        for t in self._threads:
            t.join()
        self._threads = []

    def _read_counters(self):
        # the NIC's counters are 32 bits and clear on read: fold them into 64-bit totals
        while not self._counter_stop.wait(self._counter_interval):
            for nic in self.nics:
                nic.counters()

    def stop(self):
        """Stop capturing and take every chunk back: readers waiting in next_chunk() return
        None, chunks queued for the application and those it still holds go back to their
        pools (their handles become invalid), forwarded chunks come home once the NIC has sent
        them, and what the NIC already wrote into the rings is counted in ``discarded`` (on a
        stopped engine too: what arrived since), so that after every stop() each frame the
        device took is delivered, discarded or counted as dropped."""
        with self._lifecycle:
            if self._closed:
                return
            if self._app_thread is not None:
                tid, cpus = self._app_thread
                self._app_thread = None
                try:
                    os.sched_setaffinity(tid, cpus)
                except OSError:         # that thread has ended
                    pass
            if self._running:
                self._running = False
                self._run += 1
                self._stop_threads()    # capture threads joined; readers deliver nothing more
                self._counter_stop.set()
                self._counter_thread.join()
                for w in self.workers:  # inline readers out of their capture steps
                    w.quiesce()
                for w in self.workers:  # queued, never seen by the application
                    w.discard_queued()
                for w in self.workers:
                    w.reclaim()
                self._reap_tx()
            self._drain()
            for nic in self.nics:
                nic.counters()

    def _drain(self):
        # what the NIC wrote but nobody captured counts as discarded: at stop(), and at
        # start() what came while stopped (else it would surface with the new run's times)
        for w in self.workers:
            w.shutdown(w.rxq.chunks * w.rxq.segment)

    def _reap_tx(self, timeout=1.0):
        # forwarded chunks go home once their sends complete: hand the NIC what was queued
        # without a push and wait (bounded: a wedged port must not hang stop) for completion
        queues = [tx for tx in self._tx if hasattr(tx, "collect")]
        for tx in queues:
            tx.flush()
        deadline = time.monotonic() + timeout
        while True:
            for tx in queues:
                tx.collect()
            if not any(tx.in_flight for tx in queues) or time.monotonic() > deadline:
                break
            time.sleep(0.0005)

    def _close_nics(self):
        for nic in self.nics:
            nic.close()
        self.nics = []

    def close(self):
        self.stop()
        with self._lifecycle:
            self._closed = True
            self._close_nics()

    def __enter__(self):
        return self if self._running else self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ reading
    def next_chunk(self, queue=0, timeout=None):
        """The next chunk captured for ``queue`` (possibly offloaded from a buddy), or None
        after ``timeout`` seconds (None: wait forever; 0: do not wait) or as soon as another
        thread stops or closes the engine. Readers of different queues may run in parallel
        threads, also inline: each pool has one owner at a time."""
        if not self._running:
            raise WirecapError("the engine is closed" if self._closed else
                               "the engine is not running: start() it first")
        w = self._worker(queue)
        run = self._run
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            c = w.take()
            if c is None and not self.threads:
                for other in self.workers:      # inline: this thread is every capture thread
                    other.poll_inline()
                c = w.take()
            if c is not None:
                return c
            if self._run != run:                # stopped (and maybe restarted) meanwhile
                return None
            for nic in self.nics:               # what was captured is read first
                if getattr(nic, "failure", None):
                    raise WirecapError(nic.failure)
            for tx in self._tx:                 # forwarded chunks come home when sent
                if hasattr(tx, "collect"):
                    tx.collect()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            wait = 0.001 if not self.threads else (0.05 if left is None else min(left, 0.05))
            self.wait([queue], wait)

    def wait(self, queues=None, timeout=None):
        """Until a chunk waits on one of ``queues`` (default: every queue), at most
        ``timeout`` seconds (None: no limit): True if one does. It polls the capture queues
        first, as a DPDK reader polls (SPIN_US; FLOW_SPIN_US while traffic flows on a device
        that must be polled), and only then sleeps on their eventfds, so that a reader
        keeping up with line rate never sleeps."""
        ws = self.workers if queues is None else [self._worker(q) for q in queues]
        now = time.monotonic()
        end = None if timeout is None else now + max(timeout, 0)
        if self.threads:                # inline: nobody fills the queues while we spin
            spin = FLOW_SPIN_US if now - self._chunk_at < FLOW_S and \
                any(w.rxq.polled for w in ws) else SPIN_US
            if timeout is not None:
                spin = min(spin, max(timeout, 0) * 1e6)
            if _engine.spin_ready(ws, int(spin * 1000)):
                self._chunk_at = time.monotonic()
                return True
        ready = _engine.sleep_ready(ws, None if end is None else end - time.monotonic())
        if ready:
            self._chunk_at = time.monotonic()
        return ready

    def write_chunks(self, queue, dumpfile, snaplen):
        """Write every chunk waiting for ``queue`` into ``dumpfile`` (a _dumpfile.Dumpfile)
        and release them, all in C: the packets written (every one: filters and counts are
        next_chunk's and put_chunk's). A dump.py writer's put_waiting() calls it."""
        if not self._running:
            raise WirecapError("the engine is closed" if self._closed else
                               "the engine is not running: start() it first")
        w = self._worker(queue)
        if not self.threads:
            for other in self.workers:          # inline: this thread is every capture thread
                other.poll_inline()
        return w.write_chunks(dumpfile, snaplen)

    def chunks(self, queue=0, timeout=None):
        """Iterate over captured chunks of ``queue``; ends after ``timeout`` idle seconds or
        when the engine is stopped."""
        while (c := self.next_chunk(queue, timeout)) is not None:
            yield c

    def tx_queue(self, device=0, queue=0, ndesc=1024):
        """A transmit queue of ``device`` (index or name) for forwarding: ``forward(chunk, i)``
        sends captured packet i, possibly modified in place, zero copy (the chunk goes back to
        its pool once released and sent); ``send(frame)`` sends a copy. Every device of an
        engine shares one DMA domain, so any port can send any queue's packets."""
        tx = self._nic(device).tx_queue(queue, ndesc=ndesc)
        self._tx.append(tx)
        return tx

    def _nic(self, device):
        for i, nic in enumerate(self.nics):
            if device in (i, nic.name):
                return nic
        raise WirecapError(f"device {device!r}: this engine has "
                           f"{', '.join(n.name for n in self.nics)} (or their indexes)")

    def rx_queue(self, queue=0):
        """The receive queue (a wirecap._ring.RxRing: device, index, stats) behind ``queue``."""
        return self._worker(queue).rxq

    def fileno(self, queue=0):
        """A descriptor readable while captured chunks wait for ``queue`` (select, poll)."""
        return self._worker(queue).capture_q.fileno()

    def _worker(self, queue):
        if not 0 <= queue < len(self.workers):
            raise WirecapError(f"queue {queue}: this engine has queues 0 to "
                               f"{len(self.workers) - 1}")
        return self.workers[queue]

    # ------------------------------------------------------------------ statistics
    def stats(self, totals=None):
        """Per queue: driver, pool and work-queue counters, plus the NIC's drop counters
        (from ``totals``, one counters() reading per device, when the caller has them)."""
        if self._closed:
            raise WirecapError("the engine is closed: its counters went with its devices; "
                               "read stats() (or accounting()) before close()")
        if totals is None:
            totals = [nic.counters() for nic in self.nics]
        per_nic = len(self.workers) // len(self.nics)
        out = []
        for w in self.workers:
            nic_i, q = divmod(w.index, per_nic)
            hw = totals[nic_i]
            s = {"queue": w.index, "device": self.nics[nic_i].name, "rx_queue": q,
                 **w.rxq.stats(), **w.stats(), **self.nics[nic_i].queue_counters(q, hw)}
            out.append(s)
        return out

    def port_drops(self, totals=None):
        """Per device: the frames it dropped before any queue, by place (PORT_DROPS: e.g.
        ``buffer_dropped``, ``mac_dropped``; 0 where the device has no such place)."""
        if totals is None:
            totals = [nic.counters() for nic in self.nics]
        return [{place: sum(hw.get(c, 0) for c in PORT_DROPS.get(nic.kind, {}).get(place, ()))
                 for place in DROPS[1:]} for nic, hw in zip(self.nics, totals)]

    def accounting(self, totals=None):
        """Where the frames every device received went, per device (``devices``) and in
        total: ``captured`` into the pools, of which ``discarded`` (see there) and
        ``delivered`` (handed to the application; while running, also those still queued
        for it), and the drops by place (DROPS: the receive ring for want of a free
        descriptor, i.e. of chunks, the packet buffer, the MAC), ``dropped`` their sum and
        ``received`` = captured + dropped. After stop(), once the wire is quiet, received
        is exact: sent = delivered + discarded + dropped."""
        if totals is None:
            totals = [nic.counters() for nic in self.nics]
        queues = self.stats(totals)
        devices = []
        for nic, port in zip(self.nics, self.port_drops(totals)):
            mine = [q for q in queues if q["device"] == nic.name]
            d = {"device": nic.name, "captured": sum(q["packets"] for q in mine),
                 "discarded": sum(q["discarded"] for q in mine),
                 "nic_dropped": sum(q["nic_dropped"] for q in mine), **port}
            d["delivered"] = d["captured"] - d["discarded"]
            d["dropped"] = sum(d[k] for k in DROPS)
            d["received"] = d["captured"] + d["dropped"]
            devices.append(d)
        out = {k: sum(d[k] for d in devices) for k in
               ("received", "captured", "delivered", "discarded", *DROPS, "dropped")}
        out["devices"] = devices
        return out


def _app_cpus(spec, capture):
    """The application thread's CPUs, from Engine's ``app_cpus`` (see there), or None."""
    if spec is False:
        return None
    allowed = set(os.sched_getaffinity(0))
    if spec is None:
        rest = allowed - set().union(*capture) if capture else set()
        return rest or None
    try:
        cpus = set(spec)
    except TypeError:
        cpus = {None}
    if not cpus or any(not isinstance(c, int) or isinstance(c, bool) or c not in allowed
                       for c in cpus):
        raise WirecapError(f"app_cpus={spec!r}: a list of CPUs this process may use "
                           f"({_cpu_list(sorted(allowed))}), or False to leave the thread alone")
    return cpus


RT_RUNTIME, RT_PERIOD = "/proc/sys/kernel/sched_rt_runtime_us", "/proc/sys/kernel/sched_rt_period_us"


class ThrottleWarning(UserWarning):
    """Real-time capture threads will be throttled by the kernel: their rings will overflow."""


def rt_throttling():
    """The kernel's real-time throttling as (runtime, period) in us, or None if it is off."""
    try:
        with open(RT_RUNTIME) as f, open(RT_PERIOD) as g:
            runtime, period = int(f.read()), int(g.read())
    except (OSError, ValueError):
        return None
    return None if runtime < 0 or runtime >= period else (runtime, period)


def _rt_priority(spec, capture, threads):
    """The capture threads' SCHED_FIFO priority, from Engine's ``rt_priority``, or None."""
    if spec is None:
        return None
    top = os.sched_get_priority_max(os.SCHED_FIFO)
    if not _whole(spec) or not 1 <= spec <= top:
        raise WirecapError(f"rt_priority={spec!r}: a SCHED_FIFO priority from 1 to {top}, or "
                           f"None for ordinary scheduling")
    if not threads:
        raise WirecapError("rt_priority applies to capture threads; with threads=False there "
                           "are none: drop one of them")
    allowed = set(os.sched_getaffinity(0))
    if allowed <= set().union(*capture):
        raise WirecapError(f"rt_priority={spec}: the capture threads would poll on every CPU "
                           f"this process may use ({_cpu_list(sorted(allowed))}) and starve "
                           f"the rest; leave one to the application with capture_cpus")
    if (throttle := rt_throttling()) is not None:
        runtime, period = throttle
        warnings.warn(f"rt_priority={spec}: the kernel stops real-time threads for "
                      f"{(period - runtime) // 1000} ms of every {period // 1000} ms "
                      f"(kernel.sched_rt_runtime_us={runtime}), and a capture thread that polls "
                      f"never stops by itself: its rings overflow each time. Fix: `sysctl "
                      f"kernel.sched_rt_runtime_us=-1` as root, or leave rt_priority unset",
                      ThrottleWarning, stacklevel=3)
    return spec


def _capture_cpus(spec, nqueues):
    """One CPU set per capture thread, from Engine's ``capture_cpus`` (see there)."""
    allowed = sorted(os.sched_getaffinity(0))
    where = f"this process may use CPUs {_cpu_list(allowed)}"
    if spec is None:
        spec = max(1, len(allowed) - 1)
        spec = min(spec, nqueues)
    if isinstance(spec, bool) or not isinstance(spec, (int, list, tuple)):
        raise WirecapError(f"capture_cpus={spec!r}: give a number of capture threads or a "
                           f"list of CPUs, one (or a set) per thread")
    if isinstance(spec, int):
        if not 1 <= spec <= nqueues:
            raise WirecapError(f"capture_cpus={spec}: 1 to {nqueues} capture threads (one "
                               f"per queue at most)")
        return [{allowed[-1 - i % len(allowed)]} for i in range(spec)]
    if not 1 <= len(spec) <= nqueues:
        raise WirecapError(f"capture_cpus: {len(spec)} capture threads for {nqueues} queues; "
                           f"give 1 to {nqueues} CPUs (one per thread)")
    sets = []
    for entry in spec:
        cpus = {entry} if isinstance(entry, int) and not isinstance(entry, bool) else entry
        try:
            cpus = set(cpus)
        except TypeError:
            cpus = {None}
        bad = [c for c in cpus if not isinstance(c, int) or isinstance(c, bool) or
               c not in allowed]
        if bad or not cpus:
            raise WirecapError(f"capture_cpus: {entry!r} is not a CPU (or set of CPUs) this "
                               f"process may use; {where}")
        sets.append(cpus)
    return sets


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _cpu_list(cpus):
    return ",".join(str(c) for c in cpus)


def _capture_thread(ct, cpus, rt, ready, failed):
    # the body of a capture thread: pin it, say whether that worked, then poll until stop()
    try:
        ct.pin(cpus)
    except OSError as e:
        failed.append(f"cannot run on CPUs {_cpu_list(sorted(cpus))}: {e.strerror}")
        ready.set()
        return
    if rt:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(rt))     # this thread
        except OSError as e:
            failed.append(f"cannot run at real-time priority {rt} (SCHED_FIFO): {e.strerror}; "
                          f"run as root (CAP_SYS_NICE) or leave rt_priority unset")
            ready.set()
            return
    ready.set()
    ct.run()
