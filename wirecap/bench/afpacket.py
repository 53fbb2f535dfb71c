"""``wirecap bench afpacket``: wirecap on AF_PACKET against tcpdump and pcapy-ng (libpcap).

All capturers listen on the same veth interface, one at a time, each in a process of its own;
tcpreplay plays the same pcap of 64-byte frames into the other end from a network namespace.

(a) cpu: frames at tcpreplay's top speed, consumers that do nothing: CPU time of the capturing
    process (every thread, user and system, from /proc/PID/task/*/schedstat) per million
    frames it captured, over the same window for every capturer: from the moment it is ready
    to SETTLE_S after tcpreplay finished (idle time counts: a capturer that polls pays for it;
    start-up and exit do not). tcpdump writes to /dev/null; pcapy and ``wirecap loop`` call a
    trivial Python callback per packet; ``wirecap chunks`` reads chunks and counts their
    packets (the vectorized API). The capturers take turns within each repeat (in a rotating
    order) and each one's ratio to tcpdump is taken per repeat, so that a machine whose speed
    drifts compares like with like.
(b) burst: a burst of P frames into a consumer that spends a fixed busy cost per packet (the
    same Python busy-wait in every consumer): frames lost, for P from 10^3 to 10^6. libpcap
    keeps its default 2 MiB buffer; wirecap its default ring (32 blocks of 1 MiB). Both retire
    a partly filled block after the same timeout (libpcap's read timeout, wirecap's flush).
"""
from __future__ import annotations

import json
import os
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
# after tcpreplay ends, until the CPU window closes: tcpdump's 1 s read timeout (its last,
# partly filled block is retired 1 to 2 timeouts after it opened) and wirecap's 100 ms flush
# both pass
SETTLE_S = 2.2


def _task_cpu(pid):
    """CPU seconds every live thread of process ``pid`` has run (user and system): the
    schedulers' ns counters, read from outside, so every capturer is measured alike."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            pass                        # a thread that ended meanwhile
    return total / 1e9


def _busy(ns):
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


# ----------------------------------------------------------------------------- consumers
def _consume(kind, iface, cost_ns):
    """Run in a child process: capture until SIGTERM, or (with a per-packet cost) until idle
    after the first packet; print JSON."""
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
        result = _read_until(read, stop, cost_ns)
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
            result = _read_until(read, stop, cost_ns)
            result["drops"] = eng.stats()[0]["nic_dropped"]
            if kind == "wirecap-loop":
                h.close()
        finally:
            eng.close()
    print(json.dumps(result), flush=True)


def _read_until(read, stop, until_idle):
    """Call ``read()`` (packets it handled) until SIGTERM or, if ``until_idle``, IDLE_S
    without packets after the first."""
    seen = 0
    print("ready", flush=True)
    idle_since = time.monotonic()
    while not stop:
        n = read()
        now = time.monotonic()
        if n > 0:
            seen, idle_since = seen + n, now
        elif until_idle and seen and now - idle_since > IDLE_S:
            break
    return {"seen": seen}


def _tcpdump(iface, net, pcap):
    """tcpdump -w /dev/null; what it captured from its summary."""
    p = subprocess.Popen(["tcpdump", "-Z", "root", "-n", "-i", iface, "-w", "/dev/null",
                          "-B", "2048"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_line(p.stderr, "listening on", p)
        cpu = _cpu_window(p, net, pcap)
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=60)[1]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return {"seen": _stat(err, "packets captured"),
            "drops": _stat(err, "packets dropped by kernel"), "cpu_s": cpu}


def _cpu_window(p, net, pcap):
    """The capturer's CPU seconds while ``pcap`` is replayed into it, and SETTLE_S after."""
    cpu0 = _task_cpu(p.pid)
    net.replay(pcap)
    time.sleep(SETTLE_S)
    return _task_cpu(p.pid) - cpu0


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
    cpu = None
    try:
        _wait_line(p.stdout, "ready", p)
        if cost_ns:
            frames = net.replay(pcap)
            try:                        # the slowed consumer needs frames x cost to drain
                out, err = p.communicate(timeout=60 + 2 * frames * cost_ns / 1e9)
            except subprocess.TimeoutExpired:
                p.terminate()           # it reports what it has seen and exits
                out, err = p.communicate(timeout=60)
        else:
            cpu = _cpu_window(p, net, pcap)
            p.terminate()
            out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if p.returncode:
        raise WirecapError(f"{kind} capturer failed: {err.strip()}")
    result = json.loads(out.strip().splitlines()[-1])
    if cpu is not None:
        result["cpu_s"] = cpu
    return result


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

        kinds = ["tcpdump"] + [k for k in args.capturers if k != "tcpdump"]
        runs = {kind: [] for kind in kinds}
        for r in range(args.repeats):   # every capturer once per repeat, in a rotating order
            for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
                runs[kind].append(_run_one(kind, net.capture, net, pcap_of(args.frames)))
        base = [t["cpu_s"] / t["seen"] * 1e6 if t["seen"] else None for t in runs["tcpdump"]]
        rows = []
        for kind in kinds:
            per_m = [t["cpu_s"] / t["seen"] * 1e6 if t["seen"] else None for t in runs[kind]]
            s = report.spread([x for x in per_m if x is not None])
            ratio = report.spread([x / b for x, b in zip(per_m, base) if x and b])
            lost = report.spread([args.frames - t["seen"] for t in runs[kind]])
            result["cpu"].append({"capturer": kind, "frames": args.frames,
                                  "cpu_s_per_million": s, "vs_tcpdump": ratio, "lost": lost,
                                  "runs": runs[kind]})
            rows.append([kind, f"{s['min']:.3f}", f"{s['median']:.3f}", f"{s['max']:.3f}",
                         f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})",
                         f"{lost['median']:,}"])
        text = (f"(a) CPU seconds per million frames captured ({args.frames:,} frames at "
                f"tcpreplay's top speed, {args.repeats} repeats, capturers in turns)\n" +
                report.table(["capturer", "min", "median", "max",
                              "x tcpdump, median (min-max)", "lost (median)"], rows))
        if args.bursts:
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
        text += ("\n\ntcpdump: -w /dev/null, libpcap's default 2 MiB buffer; pcapy-ng: "
                 "libpcap, 2 MiB, to_ms=%d; wirecap: afpacket ring of 32 x 1 MiB blocks, "
                 "flush %d ms, a capture thread; CPU of every thread of the capturing "
                 "process, from ready to %.1f s after the replay ended"
                 % (TIMEOUT_MS, TIMEOUT_MS, SETTLE_S))
    report.emit(result, text, args.json)
    return result


def _capturers(text):
    import argparse
    names = [x for x in text.split(",") if x]
    bad = [x for x in names if x not in CPU_KINDS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{','.join(bad) or text!r}: choose from "
                                         f"{','.join(CPU_KINDS)}")
    return names


def add_arguments(p):
    p.add_argument("--frames", type=int, default=500_000, help="frames for the CPU runs")
    p.add_argument("--capturers", type=_capturers, default=list(CPU_KINDS),
                   help=f"capturers for the CPU runs (tcpdump always runs: it is the "
                        f"baseline), from {','.join(CPU_KINDS)}")
    p.add_argument("--bursts", type=lambda t: [int(float(x)) for x in t.split(",") if x],
                   default=[1000, 10_000, 100_000, 1_000_000],
                   help="burst sizes P, e.g. 1e3,1e4,1e5,1e6 ('' for none)")
    p.add_argument("--cost-ns", type=int, default=5000,
                   help="busy time per packet of the slowed consumer (ns)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


if __name__ == "__main__":              # a capturer process: KIND IFACE COST_NS
    _consume(sys.argv[1], sys.argv[2], int(sys.argv[3]))
