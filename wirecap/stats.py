"""Capture statistics (DESIGN §5): per device, per receive queue and per pool, as plain data.

    snap = wirecap.stats.snapshot(engine)     # or engine.stats() for the per-queue dicts
    print(snap)                                # a text table; in Jupyter an HTML table
    df = snap.to_pandas()

    with wirecap.stats.Sampler(engine, interval=0.01) as s:
        ...                                    # capture
    s.to_pandas()                              # ring occupancy over time, one row per queue

Reading statistics never touches the capture fast path: the counters are plain integers the
capture threads own, read racily (a value may lag by one poll, never tear a chunk's state).
"""
from __future__ import annotations

import html
import threading
import time

# per-queue columns, in display order, with what they count
QUEUE_COLUMNS = {
    "device": "the device the queue belongs to",
    "rx_queue": "receive queue index on that device",
    "packets": "packets captured into the queue's pool",
    "bytes": "bytes captured",
    "nic_dropped": "packets the NIC (or kernel) dropped on this queue for lack of buffers",
    "captured_chunks": "deliveries (runs of packets in one chunk) the capture thread handed out",
    "recycled": "deliveries given back to the pool",
    "offloaded_out": "deliveries this queue's thread placed on a buddy's capture queue",
    "offloaded_in": "deliveries buddies placed on this queue's capture queue",
    "flushes": "partial segments delivered by the flush timeout",
    "capture_queue": "deliveries waiting for the application now",
    "capture_queue_peak": "the longest the capture queue has been",
    "free": "pool chunks free",
    "armed": "pool chunks attached to descriptor segments",
    "captured": "pool chunks holding captured packets",
    "discarded": "packets captured but never read (taken back by stop(), or come while stopped)",
}
_COLUMN_HELP = dict(QUEUE_COLUMNS, queue="the engine's queue index", **{"drop_%": "nic_dropped as a share of the packets the "
                                              "queue was offered (packets + nic_dropped)"})
# the text table's columns by priority: as many as fit in TABLE_WIDTH characters
NARROW_COLUMNS = ("queue", "device", "packets", "nic_dropped", "drop_%", "capture_queue_peak",
                  "free", "armed", "captured", "offloaded_out", "offloaded_in", "capture_queue",
                  "flushes", "bytes", "rx_queue", "captured_chunks", "recycled")
TABLE_WIDTH = 100
SAMPLE_COLUMNS = ("t", "queue", "capture_queue", "free", "armed", "captured", "packets",
                  "nic_dropped")
_SUMMED = ("packets", "bytes", "nic_dropped", "captured_chunks", "recycled", "offloaded_out",
           "offloaded_in", "flushes", "capture_queue", "free", "armed", "captured", "discarded")
# per device only: drops before any queue (the engine's PORT_DROPS), then every drop's sum
_PORT = ("buffer_dropped", "mac_dropped", "dropped")


def table(headers, rows):
    """Rows under headers, right-aligned, numbers with thousands separators (the text form
    of a table; the benchmarks print theirs with it too)."""
    cells = [[_format(v) for v in r] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(map(str, headers), *cells)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


class Snapshot:
    """Counters at one instant: ``queues`` (one dict per engine queue), ``devices`` (per
    device sums plus the device's own counters) and ``t`` (time.time())."""

    def __init__(self, t, queues, devices):
        self.t, self.queues, self.devices = t, queues, devices

    @property
    def totals(self):
        t = {k: sum(q[k] for q in self.queues) for k in _SUMMED}
        t.update({k: sum(d.get(k, 0) for d in self.devices) for k in _PORT[:-1]})
        t["dropped"] = sum(t[k] for k in ("nic_dropped", *_PORT[:-1]))
        return t

    def to_dict(self):
        return {"t": self.t, "queues": self.queues, "devices": self.devices,
                "totals": self.totals}

    def to_pandas(self, level="queues"):
        """A DataFrame of the per-queue rows (``level="devices"``: one row per device)."""
        import pandas as pd
        if level == "queues":
            return pd.DataFrame(self.queues, columns=["queue", *QUEUE_COLUMNS]).set_index("queue")
        if level == "devices":
            return pd.DataFrame([{k: v for k, v in d.items() if k != "counters"}
                                 for d in self.devices]).set_index("device")
        raise ValueError(f"level={level!r}: 'queues' or 'devices'")

    def rows(self, columns=None):
        """Header and rows of the per-queue table (``columns``: every one by default, in
        QUEUE_COLUMNS order, with ``drop_%``), a total line when there are several queues.
        Values stay numbers; table() and the HTML table format them."""
        cols = ["queue", *QUEUE_COLUMNS, "drop_%"] if columns is None else list(columns)
        out = [[_value(q, c) for c in cols] for q in self.queues]
        if len(self.queues) > 1:
            tot = dict(self.totals, queue="all", device="", rx_queue="")
            out.append([_value(tot, c) for c in cols])
        return cols, out

    def table(self, wide=False, width=TABLE_WIDTH):
        """The per-queue table as text: the longest prefix of NARROW_COLUMNS that fits in
        ``width`` characters (``wide``: every column, however wide)."""
        cols, rows = self.rows()
        if not wide:
            keep = []
            for c in NARROW_COLUMNS:
                if _text_width(*self.rows([*keep, c])) > width:
                    break
                keep.append(c)
            cols, rows = self.rows(keep)
        return table(cols, rows)

    def __str__(self):
        return self.table()

    def __repr__(self):
        tot = self.totals
        when = time.strftime("%H:%M:%S", time.localtime(self.t))
        devices = ", ".join(d["device"] for d in self.devices)
        return (f"<Snapshot {when} of {devices}, {len(self.queues)} queue"
                f"{'s' if len(self.queues) != 1 else ''}: {tot['packets']:,} packets, "
                f"{tot['dropped']:,} dropped ({_drop_pct(tot, 'dropped'):.2f} %), "
                f"{tot['capture_queue']:,} chunks waiting>")

    def _repr_html_(self):
        cols, rows = self.rows()
        head = "".join(f'<th title="{html.escape(_COLUMN_HELP.get(c, c))}">{html.escape(c)}</th>'
                       for c in cols)
        body = "".join("<tr>" + "".join(
            f'<td style="text-align:{"left" if isinstance(v, str) else "right"}">'
            f"{html.escape(_format(v))}</td>" for v in r) + "</tr>" for r in rows)
        return (f"<table><caption>{html.escape(repr(self))}</caption><thead><tr>{head}</tr>"
                f"</thead><tbody>{body}</tbody></table>")


def _drop_pct(counts, dropped="nic_dropped"):
    offered = counts["packets"] + counts[dropped]
    return 100.0 * counts[dropped] / offered if offered else 0.0


def _value(row, column):
    return round(_drop_pct(row), 2) if column == "drop_%" else row.get(column, "")


def _format(v):
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _text_width(cols, rows):
    return sum(max(len(_format(x)) for x in col) for col in zip(cols, *rows)) + 2 * (len(cols) - 1)


def snapshot(engine):
    """Read every counter of ``engine`` (running or stopped)."""
    counters = [nic.counters() for nic in engine.nics]      # one register sweep per device
    queues = engine.stats(counters)
    devices = []
    for nic, hw, port in zip(engine.nics, counters, engine.port_drops(counters)):
        mine = [q for q in queues if q["device"] == nic.name]
        d = {"device": nic.name, "queues": len(mine)}
        d.update({k: sum(q[k] for q in mine) for k in _SUMMED})
        d.update(port, dropped=d["nic_dropped"] + sum(port.values()))
        d["counters"] = hw
        devices.append(d)
    return Snapshot(time.time(), queues, devices)


class Sampler:
    """Record ring occupancy every ``interval`` seconds from a background thread: per queue
    the capture-queue length and the pool's free/armed/captured chunks, with the packet and
    drop counts so far. Keeps the last ``limit`` samples per queue."""

    def __init__(self, engine, interval=0.01, limit=1_000_000):
        if interval <= 0:
            raise ValueError(f"interval={interval!r}: give a sampling period in seconds > 0")
        self.engine, self.interval, self.limit = engine, interval, limit
        self.samples = []               # tuples in SAMPLE_COLUMNS order
        self._stop = threading.Event()
        self._thread = None
        self._t0 = None

    def sample(self):
        """Take one sample now (the thread calls this; call it yourself between steps)."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        t = now - self._t0
        self.samples += [(t, *(q[c] for c in SAMPLE_COLUMNS[1:])) for q in self.engine.stats()]
        if len(self.samples) > self.limit * len(self.engine.workers):
            del self.samples[:len(self.engine.workers)]

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self):
        if self._thread is not None:
            raise RuntimeError("the sampler is already running")
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="wirecap-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def to_pandas(self):
        import pandas as pd
        return pd.DataFrame(self.samples, columns=list(SAMPLE_COLUMNS))
