"""``wirecap bench afpacket``: wirecap on AF_PACKET against tcpdump and pcapy-ng (libpcap).

All capturers listen on the same veth interface, one at a time, each in a process of its own;
tcpreplay plays the same pcap of 64-byte frames into the other end from a network namespace.

(a) cpu: frames at tcpreplay's top speed, consumers that do nothing: CPU time (user + system,
    all threads, from getrusage) of the capturing process per million frames it captured.
    tcpdump writes to /dev/null; pcapy and ``wirecap loop`` call a trivial Python callback per
    packet; ``wirecap chunks`` reads chunks and counts their packets (the vectorized API).
(b) burst: a burst of P frames into a consumer that spends a fixed busy cost per packet (the
    same Python busy-wait in every consumer): frames lost, for P from 10^3 to 10^6. libpcap
    keeps its default 2 MiB buffer; wirecap its default ring (32 blocks of 1 MiB). Both retire
    a partly filled block after the same timeout (libpcap's read timeout, wirecap's flush).
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time

from ..errors import WirecapError
from . import report

TIMEOUT_MS = 100                # block retire timeout for libpcap (to_ms) and wirecap (flush)
IDLE_S = 1.0                    # a consumer that got nothing for this long has drained


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _busy(ns):
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


# ----------------------------------------------------------------------------- consumers
def _consume(kind, iface, cost_ns):
    """Run in a child process: capture until idle after the first packet (or SIGTERM);
    print JSON."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))

    def cb(hdr, data):
        if cost_ns:
            _busy(cost_ns)
    if kind == "pcapy":
        import pcapy
        p = pcapy.open_live(iface, 65535, 1, TIMEOUT_MS)
        # libpcap's TPACKET_V3 read timeout only runs once a packet came: poll the fd instead
        p.setnonblock(1)
        fd = p.getfd()

        def read():
            select.select([fd], [], [], TIMEOUT_MS / 1000)
            return p.dispatch(-1, cb)
        result = _read_until_idle(read, stop)
        result["drops"] = p.stats()[1]
    else:
        from ..engine import Engine
        from ..pcap import Handle
        eng = Engine(f"afpacket:{iface}", flush_us=TIMEOUT_MS * 1000).start()
        try:
            if kind == "wirecap-loop":
                h = Handle(eng, 0, timeout_ms=TIMEOUT_MS)

                def read():
                    return h.dispatch(-1, cb)
            else:
                def read():
                    c = eng.next_chunk(0, timeout=TIMEOUT_MS / 1000)
                    if c is None:
                        return 0
                    n = len(c)
                    if cost_ns:
                        for _ in range(n):
                            _busy(cost_ns)
                    c.release()
                    return n
            result = _read_until_idle(read, stop)
            result["drops"] = eng.stats()[0]["nic_dropped"]
            if kind == "wirecap-loop":
                h.close()
        finally:
            eng.close()
    print(json.dumps(result), flush=True)


def _read_until_idle(read, stop):
    """Call ``read()`` (packets it handled) until SIGTERM or IDLE_S without packets after the
    first; CPU time is counted from readiness to the last packet."""
    seen, cpu_last = 0, None
    print("ready", flush=True)
    cpu0, idle_since = _cpu(), time.monotonic()
    while not stop:
        n = read()
        now = time.monotonic()
        if n > 0:
            seen += n
            cpu_last, idle_since = _cpu(), now
        elif seen and now - idle_since > IDLE_S:
            break
    return {"seen": seen, "cpu_s": (cpu_last - cpu0) if cpu_last is not None else 0.0}


def _tcpdump(iface, net, pcap):
    """tcpdump -w /dev/null: CPU from getrusage of the child (its whole life)."""
    p = subprocess.Popen(["tcpdump", "-Z", "root", "-n", "-i", iface, "-w", "/dev/null",
                          "-B", "2048"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_line(p.stderr, "listening on", p)
    net.replay(pcap)
    time.sleep(IDLE_S)                  # tcpdump cannot say it drained: give it the same idle
    p.send_signal(signal.SIGINT)
    _, status, ru = os.wait4(p.pid, 0)
    err = p.stderr.read()
    p.returncode = os.waitstatus_to_exitcode(status)
    seen = _stat(err, "packets captured")
    return {"seen": seen, "drops": _stat(err, "packets dropped by kernel"),
            "cpu_s": ru.ru_utime + ru.ru_stime}


def _stat(text, what):
    for line in text.splitlines():
        if line.strip().endswith(what):
            return int(line.split()[0])
    raise WirecapError(f"tcpdump did not report '{what}': {text!r}")


def _wait_line(stream, word, proc, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([stream], [], [], 0.5)
        if r:
            line = stream.readline()
            if word in line:
                return
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise WirecapError(f"capturer did not start (waited for {word!r})")


def _python_capturer(kind, iface, net, pcap, cost_ns):
    p = subprocess.Popen([sys.executable, "-m", "wirecap.bench.afpacket", kind, iface,
                          str(cost_ns)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        _wait_line(p.stdout, "ready", p)
        frames = net.replay(pcap)
        try:                            # the slowed consumer needs frames x cost to drain
            out, err = p.communicate(timeout=60 + 2 * frames * cost_ns / 1e9)
        except subprocess.TimeoutExpired:
            p.terminate()               # it reports what it has seen and exits
            out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode:
        raise WirecapError(f"{kind} capturer failed: {err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


def _run_one(kind, iface, net, pcap, cost_ns=0):
    if kind == "tcpdump":
        return _tcpdump(iface, net, pcap)
    return _python_capturer(kind, iface, net, pcap, cost_ns)


# ----------------------------------------------------------------------------- the benchmark
def _write_pcap(path, count, mac):
    from ..dump import PcapWriter
    from ..sim.traffic import TrafficProfile
    prof = TrafficProfile(count=count, sizes=(64,), flows=16)
    with PcapWriter(str(path)) as w:
        for i in range(count):
            w.write(i * 1000, prof.frame(i, mac))
    return path


CPU_KINDS = ("tcpdump", "pcapy", "wirecap-loop", "wirecap-chunks")
BURST_KINDS = ("pcapy", "wirecap-loop", "wirecap-chunks")


def run(args):
    from ..afpacket import veth
    why = veth.missing()
    if why:
        raise WirecapError(f"bench afpacket: {why}")
    result = {"title": "AF_PACKET capture: wirecap vs tcpdump and pcapy-ng (libpcap)",
              "machine": report.machine(), "repeats": args.repeats, "frame_bytes": 64,
              "timeout_ms": TIMEOUT_MS, "cpu": [], "burst": []}
    with tempfile.TemporaryDirectory() as tmp, veth.VethPair() as net:
        pcaps = {}

        def pcap_of(n):
            if n not in pcaps:
                pcaps[n] = _write_pcap(os.path.join(tmp, f"{n}.pcap"), n, net.mac)
            return pcaps[n]

        rows = []
        for kind in CPU_KINDS:
            runs = [_run_one(kind, net.capture, net, pcap_of(args.frames))
                    for _ in range(args.repeats)]
            per_m = [r["cpu_s"] / r["seen"] * 1e6 for r in runs if r["seen"]]
            s = report.spread(per_m)
            lost = report.spread([args.frames - r["seen"] for r in runs])
            result["cpu"].append({"capturer": kind, "frames": args.frames,
                                  "cpu_s_per_million": s, "lost": lost, "runs": runs})
            rows.append([kind, f"{s['min']:.3f}", f"{s['median']:.3f}", f"{s['max']:.3f}",
                         f"{lost['median']:,}"])
        text = (f"(a) CPU seconds per million frames captured ({args.frames:,} frames at "
                f"tcpreplay's top speed, {args.repeats} repeats)\n" +
                report.table(["capturer", "min", "median", "max", "lost (median)"], rows))
        rows = []
        for P in args.bursts:
            row = [f"{P:,}"]
            for kind in BURST_KINDS:
                runs = [_run_one(kind, net.capture, net, pcap_of(P), args.cost_ns)
                        for _ in range(args.repeats)]
                lost = report.spread([P - r["seen"] for r in runs])
                result["burst"].append({"capturer": kind, "frames": P, "cost_ns": args.cost_ns,
                                        "lost": lost, "runs": runs})
                row.append(f"{lost['min']:,}/{lost['median']:,}/{lost['max']:,}")
            rows.append(row)
        text += (f"\n\n(b) frames lost (min/median/max of {args.repeats}) in a burst of P "
                 f"frames into a consumer spending {args.cost_ns / 1000:g} µs per packet\n" +
                 report.table(["P", *BURST_KINDS], rows))
        text += ("\n\ntcpdump: -w /dev/null, libpcap's default 2 MiB buffer, CPU over its whole "
                 "life; pcapy-ng: libpcap, 2 MiB, to_ms=%d; wirecap: afpacket ring of 32 x "
                 "1 MiB blocks, flush %d ms, a capture thread; Python capturers' CPU from "
                 "the first call to the last packet" % (TIMEOUT_MS, TIMEOUT_MS))
    report.emit(result, text, args.json)
    return result


def add_arguments(p):
    p.add_argument("--frames", type=int, default=500_000, help="frames for the CPU runs")
    p.add_argument("--bursts", type=lambda t: [int(float(x)) for x in t.split(",")],
                   default=[1000, 10_000, 100_000, 1_000_000],
                   help="burst sizes P, e.g. 1e3,1e4,1e5,1e6")
    p.add_argument("--cost-ns", type=int, default=5000,
                   help="busy time per packet of the slowed consumer (ns)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


if __name__ == "__main__":              # a capturer process: KIND IFACE COST_NS
    _consume(sys.argv[1], sys.argv[2], int(sys.argv[3]))
