"""The capture engine (DESIGN §5): devices, receive queues, capture threads, buddy groups.

    with Engine("sim:0", queues=4, mode="advanced", threshold=0.6) as eng:
        for chunk in eng.chunks(0):        # or wirecap.pcap.Handle(eng, 0), pcap-style
            ...
            chunk.release()

``threads=True`` gives every receive queue a capture thread that runs without the GIL;
``threads=False`` (inline) makes the reading thread capture for itself, for small machines.
"""
from __future__ import annotations

import select
import threading
import time

from . import _engine
from .devices import device_class, open_device
from .errors import WirecapError

MODES = ("basic", "advanced")


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
    threads    a capture thread per queue (True) or capture in the reading thread (False)
    cpus       optional list of CPU sets, one per queue, to pin capture threads
    rss_key    the 40-byte Toeplitz key for 82599 devices (default: the datasheet's example)
    """

    def __init__(self, devices="sim:0", queues=1, mode="basic", threshold=0.6, segment=256,
                 chunks=None, ndesc=1024, bufsize=2048, flush_us=1000, threads=True, cpus=None,
                 promiscuous=True, counter_interval=1.0, block_size=None, fanout="hash",
                 rss_key=None):
        if mode not in MODES:
            raise WirecapError(f"mode {mode!r}: choose 'basic' or 'advanced'")
        if not 0 < threshold <= 1:
            raise WirecapError(f"threshold {threshold!r}: a fraction of the capture queue's "
                               f"capacity, 0 < T <= 1 (the paper uses e.g. 0.6)")
        if not isinstance(queues, int) or not 1 <= queues <= 16:
            raise WirecapError(f"queues={queues!r}: RSS spreads over 1 to 16 queues per device")
        names = [devices] if isinstance(devices, str) else list(devices)
        if not names:
            raise WirecapError("no device given: name one, e.g. sim:0")
        if cpus is not None and len(cpus) != queues * len(names):
            raise WirecapError(f"cpus: give one CPU set per queue ({queues * len(names)})")
        self.mode, self.threshold, self.threads = mode, threshold, threads
        self.nics, self.workers = [], []
        self._threads, self._running = [], False
        self.discarded = 0              # packets stop() took back before anyone read them
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
        except BaseException:
            self._close_nics()
            raise
        for w in self.workers:
            w.set_buddies(self.workers)
            w.advanced = mode == "advanced"
            w.threshold = threshold
        self._cpus = cpus
        self._counter_interval = counter_interval
        self._counter_stop = threading.Event()
        self.started_at = None

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        if self._running:
            raise WirecapError("the engine is already running")
        if not self.nics:
            raise WirecapError("the engine is closed: make a new Engine")
        for nic in self.nics:
            nic.start()
        for w in self.workers:
            w.resume()
        if self.threads:
            for i, w in enumerate(self.workers):
                t = threading.Thread(target=w.run, args=(self._cpus[i] if self._cpus else None,),
                                     name=f"wirecap-capture-{i}", daemon=True)
                t.start()
                self._threads.append(t)
        self._counter_stop.clear()
        self._counter_thread = threading.Thread(target=self._read_counters,
                                                name="wirecap-counters", daemon=True)
        self._counter_thread.start()
        self._running = True
        self.started_at = time.time()
        return self

    def _read_counters(self):
        # the NIC's counters are 32 bits and clear on read: fold them into 64-bit totals
        while not self._counter_stop.wait(self._counter_interval):
            for nic in self.nics:
                nic.counters()

    def stop(self):
        """Stop the capture threads and return every chunk to its pool: those queued for the
        application and those it still holds (their handles become invalid)."""
        if not self._running:
            return
        for w in self.workers:
            w.stop()
        for t in self._threads:
            t.join()
        self._threads = []
        self._counter_stop.set()
        self._counter_thread.join()
        for w in self.workers:
            while (c := w.take()) is not None:  # queued, never seen by the application
                self.discarded += len(c)
        for w in self.workers:
            w.drain()
            w.rxq.reclaim()
        for nic in self.nics:
            nic.counters()
        self._running = False

    def _close_nics(self):
        for nic in self.nics:
            nic.close()
        self.nics = []

    def close(self):
        self.stop()
        self._close_nics()

    def __enter__(self):
        return self if self._running else self.start()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ reading
    def next_chunk(self, queue=0, timeout=None):
        """The next chunk captured for ``queue`` (possibly offloaded from a buddy), or None
        after ``timeout`` seconds (None: wait forever; 0: do not wait)."""
        if not self._running:
            raise WirecapError("the engine is not running: start() it first")
        w = self._worker(queue)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            c = w.take()
            if c is None and not self.threads:
                for other in self.workers:      # inline: this thread is every capture thread
                    other.poll_inline()
                c = w.take()
            if c is not None:
                return c
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            wait = 0.001 if not self.threads else (0.05 if left is None else min(left, 0.05))
            select.select([w.capture_q], [], [], wait)

    def chunks(self, queue=0, timeout=None):
        """Iterate over captured chunks of ``queue``; stops after ``timeout`` idle seconds."""
        while (c := self.next_chunk(queue, timeout)) is not None:
            yield c

    def tx_queue(self, device=0, queue=0, ndesc=1024):
        """A transmit queue of ``device`` (index or name) for forwarding: ``forward(chunk, i)``
        sends captured packet i, possibly modified in place, zero copy (the chunk goes back to
        its pool once released and sent); ``send(frame)`` sends a copy. Every device of an
        engine shares one DMA domain, so any port can send any queue's packets."""
        return self._nic(device).tx_queue(queue, ndesc=ndesc)

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

