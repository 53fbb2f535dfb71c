"""The AF_PACKET device against real kernel traffic: a veth pair whose far end lives in a
network namespace of its own, fed by tcpreplay from pcap files the tests write.

No test asserts on timing: every wait has a deadline and checks a count or a counter.
"""
import json
import os
import struct
import subprocess
import sys
import threading
import time

import pytest

from wirecap import _pcap, pcap
from wirecap._bpf import FilterError
from wirecap.afpacket import veth
from wirecap.devices import open_device
from wirecap.dump import PcapWriter, open_writer, read_pcap
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim.traffic import TrafficProfile

pytestmark = pytest.mark.skipif(veth.missing() is not None, reason=str(veth.missing()))

SEQ = TrafficProfile().stamp_offset     # where a profile frame carries its sequence number
# tcpreplay mostly runs to the end before a test reads: rings of 8 x 1 MiB hold each test's
# traffic, and blocks are retired when full, not after 1 ms with a few packets in
RING = dict(block_size=1 << 20, chunks=8, flush_us=200_000)
PACKET_HOST, PACKET_OUTGOING = 0, 4         # <linux/if_packet.h> packet types
SMALL = 64 << 10                        # small rings: bursts that overflow them stay short


@pytest.fixture
def net():
    pair = veth.VethPair()
    try:
        pair.__enter__()
    except WirecapError as e:
        if "not supported" in str(e) or "Unknown device type" in str(e):
            pytest.skip(f"this kernel has no veth or network namespaces: {e}")
        raise
    try:
        yield pair
    finally:
        pair.__exit__()


def frames_for(v, count, **profile):
    prof = TrafficProfile(count=count, **profile)
    return [prof.frame(i, v.mac) for i in range(count)]


def write_pcap(path, frames):
    with PcapWriter(str(path)) as w:
        for i, f in enumerate(frames):
            w.write(1_700_000_000_000_000_000 + i * 1000, f)
    return path


def seq(frame):
    return struct.unpack_from("<Q", frame, SEQ)[0]


class Replay(threading.Thread):
    """tcpreplay in the background, for consumers that read while it sends."""

    def __init__(self, net, path):
        super().__init__(daemon=True)
        self.net, self.path, self.sent, self.error = net, path, None, None
        self.start()

    def run(self):
        try:
            self.sent = self.net.replay(self.path)
        except Exception as e:          # reported by join()
            self.error = e

    def join(self, timeout=300):
        super().join(timeout)
        if self.error is not None:
            raise self.error
        return self.sent


def collect(eng, want, timeout=30.0, queues=None, until=None):
    """Frames per queue until ``want`` in all, or the deadline (counted from the end of
    ``until``, a Replay, if given)."""
    queues = range(len(eng.workers)) if queues is None else queues
    got = {q: [] for q in queues}
    end = time.monotonic() + timeout
    while sum(map(len, got.values())) < want and (time.monotonic() < end or
                                                   until is not None and until.is_alive()):
        if until is not None and until.is_alive():
            end = time.monotonic() + timeout
        for q in queues:
            c = eng.next_chunk(q, timeout=0.02)
            if c is not None:
                got[q] += [bytes(p) for p in c]
                c.release()
    return got


def wait_counter(dev, key, value, timeout=10.0):
    """The kernel's statistics are updated as packets are placed: wait until ``key``
    reaches ``value`` (or the deadline); the totals."""
    end = time.monotonic() + timeout
    while True:
        t = dev.counters()
        if t.get(key, 0) >= value or time.monotonic() > end:
            return t
        time.sleep(0.01)


def wait_until_reading(p, run, timeout=60):
    """A ``wirecap capture`` publishes its first stats snapshot in ``run`` once it reads."""
    end = time.monotonic() + timeout
    while not (run / f"capture-{p.pid}.json").exists() and p.poll() is None and \
            time.monotonic() < end:
        time.sleep(0.02)


# ----------------------------------------------------------------------------- capture
@pytest.mark.parametrize("threads", [True, False], ids=["threads", "inline"])
def test_every_frame_is_captured_byte_exact(net, tmp_path, threads):
    frames = frames_for(net, 3000, sizes=(64, 200, 1518), flows=16)
    with Engine(f"afpacket:{net.capture}", threads=threads, **RING) as eng:
        assert net.replay(write_pcap(tmp_path / "sent.pcap", frames)) == len(frames)
        got = collect(eng, len(frames))[0]
        assert got == frames
        s = eng.stats()[0]
        assert (s["packets"], s["nic_delivered"], s["nic_dropped"]) == (len(frames),) * 2 + (0,)
        assert s["captured_chunks"] == s["deliveries"] and s["refused"] == 0


def test_chunk_metadata_and_kernel_timestamps(net, tmp_path):
    frames = frames_for(net, 500, sizes=(64, 1000), flows=2)
    with Engine(f"afpacket:{net.capture}", **RING) as eng:
        before = time.time_ns()
        net.replay(write_pcap(tmp_path / "sent.pcap", frames))
        seen = []
        end = time.monotonic() + 30
        while len(seen) < len(frames) and time.monotonic() < end:
            c = eng.next_chunk(0, timeout=0.1)
            if c is None:
                continue
            assert list(c.lengths) == [len(p) for p in c]
            assert list(c.wire_lengths) == list(c.lengths)      # nothing cut short
            seen += list(c.timestamps)
            c.release()
        assert len(seen) == len(frames)
        assert before <= min(seen) and max(seen) <= time.time_ns()
        assert seen == sorted(seen)         # one socket: the kernel stamps in arrival order


def test_open_live_loop_dispatch_and_stats(net, tmp_path):
    frames = frames_for(net, 1000, sizes=(64, 700), flows=4)
    h = pcap.open_live(f"afpacket:{net.capture}", 65535, True, 100, **RING)
    try:
        net.replay(write_pcap(tmp_path / "sent.pcap", frames))
        got = []
        assert h.loop(len(frames), lambda hdr, d: got.append((hdr.getlen(), bytes(d)))) == \
            len(frames)
        assert got == [(len(f), f) for f in frames]
        recv, drop, ifdrop = h.stats()
        assert (recv, drop, ifdrop) == (len(frames), 0, 0)
    finally:
        h.close()


# ----------------------------------------------------------------------------- idle, stop
def test_one_idle_thread_serving_four_queues_sleeps_until_frames_come(net, tmp_path):
    # a thread that napped and polled would run thousands of rounds while nothing arrives;
    # one that sleeps in epoll on the sockets runs a few dozen per wake-up (a block retired,
    # a chunk back), and wakes for frames on any of its queues
    with Engine(f"afpacket:{net.capture}", queues=4, capture_cpus=1, fanout="lb",
                **RING) as eng:
        ct, = eng.capture_threads
        for _ in range(2):
            deadline = time.monotonic() + 10          # until it has gone to sleep once
            while ct.sleeps == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ct.sleeps > 0
            rounds, captured = ct.rounds, sum(w.stats()["captured_chunks"] for w in eng.workers)
            time.sleep(0.3)
            woken = sum(w.stats()["captured_chunks"] for w in eng.workers) - captured
            assert ct.rounds - rounds <= 200 * (1 + woken)
            frames = frames_for(net, 400, flows=8)
            net.replay(write_pcap(tmp_path / "sent.pcap", frames))
            got = collect(eng, len(frames))
            assert sorted(f for q in got.values() for f in q) == sorted(frames)
            assert all(got[q] for q in range(4))        # round robin: every queue woke it


STOP_WAKES = r"""
import sys, time
from wirecap.engine import Engine
eng = Engine(f"afpacket:{sys.argv[1]}", queues=4, capture_cpus=1, block_size=1 << 20,
             chunks=4, flush_us=200_000).start()
ct, = eng.capture_threads
while ct.sleeps == 0:
    time.sleep(0.01)
time.sleep(0.2)                 # asleep in epoll_wait on four sockets and four eventfds
eng.stop()                      # joins the capture thread: it must wake
eng.close()
print("stopped")
"""


def test_a_socket_is_not_a_polled_device(net):
    # its capture threads sleep in epoll, so a waiting reader does not keep polling either
    with Engine(net.capture, queues=1, **RING) as eng:
        assert eng.workers[0].rxq.polled is False


def test_stop_wakes_a_capture_thread_asleep_on_several_queues(net):
    r = subprocess.run([sys.executable, "-c", STOP_WAKES, net.capture], capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "stopped"), r.stderr


@pytest.mark.parametrize("threads", [True, False], ids=["threads", "inline"])
def test_stop_counts_the_frames_of_a_block_the_kernel_has_not_retired(net, tmp_path, threads):
    # a retire timeout of 2 s: the block holding the burst is still open when stop() comes
    # (the kernel retires a non-empty block at the first tick of its timer that finds it
    # current twice), and only the kernel can close it: stop() waits for that, then counts
    # its frames as discarded
    frames = frames_for(net, 700, flows=4)
    eng = Engine(f"afpacket:{net.capture}", threads=threads, block_size=1 << 20, chunks=4,
                 flush_us=2_000_000).start()
    try:
        assert net.replay(write_pcap(tmp_path / "sent.pcap", frames)) == len(frames)
        wait_counter(eng.nics[0], "packets", len(frames))
        eng.stop()
        s = eng.stats()[0]
        assert s["nic_delivered"] + s["nic_dropped"] == len(frames)
        assert s["nic_dropped"] == 0 and s["packets"] == len(frames)
        assert eng.discarded == len(frames)             # nobody read: all taken at stop
        assert eng.workers[0].accounting() == (0, 4, 0)  # every block back with the kernel
    finally:
        eng.close()


DELETED = r"""
import sys, time
from wirecap.engine import Engine
from wirecap.errors import WirecapError
eng = Engine(f"afpacket:{sys.argv[1]}", threads=sys.argv[2] == "threads", block_size=1 << 20,
             chunks=4, flush_us=100_000).start()
print("ready", flush=True)
n = 0
try:
    for c in eng.chunks(0):
        n += len(c)
        c.release()
    print("ended without an error")
except WirecapError as e:
    print(f"read {n}; WirecapError: {e}")
finally:
    eng.close()
"""


@pytest.mark.parametrize("threads", ["threads", "inline"])
@pytest.mark.parametrize("how,says", [("del", "was deleted"), ("down", "went down")])
def test_an_interface_deleted_or_down_mid_capture_ends_it_with_an_error(net, tmp_path, threads,
                                                                       how, says):
    frames = frames_for(net, 300)
    p = subprocess.Popen([sys.executable, "-c", DELETED, net.capture, threads],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        assert net.replay(write_pcap(tmp_path / "sent.pcap", frames)) == len(frames)
        veth._run("ip", "link", "del" if how == "del" else "set", net.capture,
                  *(() if how == "del" else ("down",)))
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and "Traceback" not in err, err
    assert f"WirecapError: afpacket:{net.capture}: interface {net.capture} {says}" in out, out


def test_cli_capture_on_a_deleted_interface_ends_with_one_error_line(net, tmp_path):
    frames = frames_for(net, 300)
    out = tmp_path / "out.pcap"
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    p = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "-i",
                          f"afpacket:{net.capture}", "-w", str(out)],
                         env={**os.environ, "WIRECAP_RUN_DIR": str(run)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_reading(p, run)
        assert net.replay(write_pcap(tmp_path / "sent.pcap", frames)) == len(frames)
        veth._run("ip", "link", "del", net.capture)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    lines = [line for line in err.splitlines() if "listening on" not in line]
    assert lines == [f"wirecap capture: afpacket:{net.capture}: interface {net.capture} was "
                     f"deleted during the capture: nothing more can arrive, the capture "
                     f"ended"], err
    assert p.returncode == 2
    assert [f for _, f, _ in read_pcap(out)[1]] == frames      # what came before is written


# ----------------------------------------------------------------------------- fanout
@pytest.mark.parametrize("fanout", ["hash", "lb", "rollover"])
def test_fanout_over_four_queues_delivers_each_frame_once(net, tmp_path, fanout):
    frames = frames_for(net, 4000, sizes=(64, 300), flows=32)
    with Engine(f"afpacket:{net.capture}", queues=4, fanout=fanout, **RING) as eng:
        net.replay(write_pcap(tmp_path / "sent.pcap", frames))
        got = collect(eng, len(frames))
        every = [f for q in got.values() for f in q]
        assert sorted(map(seq, every)) == list(range(len(frames)))     # once each
        assert sorted(every, key=seq) == frames                         # byte-exact
        stats = eng.stats()
        assert [s["packets"] for s in stats] == [len(got[q]) for q in range(4)]
        assert sum(s["nic_delivered"] for s in stats) == len(frames)
        assert sum(s["nic_dropped"] for s in stats) == 0
    if fanout == "hash":                # a flow stays on one queue
        where = {}
        for q, fs in got.items():
            for f in fs:
                where.setdefault(f[26:30] + f[34:36], set()).add(q)
        assert all(len(qs) == 1 for qs in where.values())
        assert len({q for qs in where.values() for q in qs}) > 1
    if fanout == "lb":                  # round robin: every queue has a share
        assert all(got[q] for q in range(4))


def test_advanced_mode_offloads_a_slow_queues_chunks(net, tmp_path):
    with Engine(f"afpacket:{net.capture}", queues=4, mode="advanced", threshold=0.25,
                block_size=SMALL, chunks=8, flush_us=1000) as eng:
        # one flow: the hash puts every frame on one queue; find which with a probe
        net.replay(write_pcap(tmp_path / "probe.pcap", frames_for(net, 1)))
        probe = None
        end = time.monotonic() + 30
        while probe is None and time.monotonic() < end:
            for q in range(4):
                probe = probe or eng.next_chunk(q, timeout=0.02)
        assert probe is not None
        slow = probe.owner.index
        probe.release()
        frames = frames_for(net, 20000, sizes=(64,), flows=1)
        sender = Replay(net, write_pcap(tmp_path / "sent.pcap", frames))
        fast = [q for q in range(4) if q != slow]
        got = collect(eng, len(frames), queues=fast, timeout=10, until=sender)  # not slow ...
        sent = sender.join()
        got[slow] = collect(eng, sent, queues=[slow], timeout=5)[slow]  # ... until the end
        every = [f for fs in got.values() for f in fs]
        w = eng.workers[slow].stats()
        dropped = sum(s["nic_dropped"] for s in eng.stats())
    assert w["offloaded_out"] > 0
    assert sum(len(got[q]) for q in fast) > 0
    assert len(set(map(seq, every))) == len(every)                      # never twice
    assert len(every) + dropped == sent                                 # loss is counted


# ----------------------------------------------------------------------------- bursts
def test_burst_up_to_ring_capacity_is_loss_free_beyond_it_loss_is_counted(net, tmp_path):
    # the consumer does not read during the burst (the slowest one there is); a long retire
    # timeout keeps blocks full even if the sender is descheduled mid-burst
    kw = dict(block_size=SMALL, chunks=4, flush_us=3_000_000)
    with Engine(f"afpacket:{net.capture}", **kw) as eng:
        P = eng.workers[0].rxq.capacity(60)
        frames = frames_for(net, P, sizes=(64,), flows=4)
        assert net.replay(write_pcap(tmp_path / "fit.pcap", frames)) == P
        got = collect(eng, P)[0]
        s = eng.stats()[0]
        assert got == frames and s["nic_dropped"] == 0
    with Engine(f"afpacket:{net.capture}", **kw) as eng:
        P = 3 * eng.workers[0].rxq.capacity(60) + 123
        frames = frames_for(net, P, sizes=(64,), flows=4)
        assert net.replay(write_pcap(tmp_path / "over.pcap", frames)) == P
        wait_counter(eng.nics[0], "packets0", P)
        got = collect(eng, P, timeout=5)[0]
        s = eng.stats()[0]
        assert s["nic_dropped"] > 0
        assert len(got) + s["nic_dropped"] == P
        assert got == [f for f in frames if seq(f) in set(map(seq, got))]  # in order, exact


# ----------------------------------------------------------------------------- filters
FILTERS = ["udp", "tcp", "arp", "greater 600", "src net 198.18.0.0/16 and udp dst port 5001",
           "tcp[tcpflags] & tcp-push != 0", "not ip", "ether broadcast"]


def mixed_frames(v):
    arp = (b"\xff" * 6 + bytes.fromhex("025743fffffe0806") + bytes.fromhex("0001080006040001") +
           bytes.fromhex("025743fffffe") + bytes([198, 18, 0, 1]) + bytes(6) +
           bytes([198, 18, 0, 2]) + bytes(18))
    frames = frames_for(v, 300, sizes=(64, 700, 1518), flows=8) + \
        frames_for(v, 200, sizes=(80, 900), flows=4, proto="tcp") + [arp] * 7
    return frames


@pytest.mark.parametrize("expression", FILTERS)
def test_kernel_filter_agrees_with_tcpdump(net, tmp_path, expression):
    sent = write_pcap(tmp_path / "mixed.pcap", mixed_frames(net))
    want_file = tmp_path / "want.pcap"
    subprocess.run(["tcpdump", "-Z", "root", "-r", str(sent), "-w", str(want_file),
                    expression], check=True, capture_output=True)
    want = [f for _, f, _ in read_pcap(want_file)[1]]
    h = pcap.open_live(f"afpacket:{net.capture}", 65535, True, 100, **RING)
    try:
        h.setfilter(expression)
        net.replay(sent)
        dev = h.engine.nics[0]
        totals = wait_counter(dev, "packets0", len(want))
        got = []
        h.setnonblock(True)
        end = time.monotonic() + 30
        while len(got) < len(want) and time.monotonic() < end:
            h.dispatch(-1, lambda hdr, d: got.append(bytes(d)))
        # the kernel took only the matching frames into the ring ...
        assert dev.queue_counters(0, totals)["nic_delivered"] == len(want)
        # ... and they are tcpdump's, byte for byte
        assert got == want
    finally:
        h.close()


def test_a_bad_filter_raises_libpcaps_message_and_keeps_the_old_one(net, tmp_path):
    h = pcap.open_live(f"afpacket:{net.capture}", 65535, True, 100, **RING)
    try:
        h.setfilter("udp")
        with pytest.raises(FilterError, match="port 99999"):
            h.setfilter("udp port 99999")
        frames = mixed_frames(net)
        net.replay(write_pcap(tmp_path / "mixed.pcap", frames))
        udp = sum(1 for f in frames if f[12:14] == b"\x08\x00" and f[23] == 17)
        assert wait_counter(h.engine.nics[0], "packets0", udp)["packets0"] == udp
    finally:
        h.close()


# ----------------------------------------------------------------------------- device
def test_recycle_checks_handles_and_blocks_may_come_back_in_any_order(net, tmp_path):
    with open_device(f"afpacket:{net.capture}") as dev:
        q = dev.rx_queue(0, block_size=4 << 12, chunks=4, flush_us=1_000_000)
        other = dev.rx_queue(1, block_size=4 << 12, chunks=4)
        dev.start()
        frames = frames_for(net, 3 * q.capacity(60), sizes=(64,))
        net.replay(write_pcap(tmp_path / "a.pcap", frames))
        held, end = [], time.monotonic() + 30
        while len(held) < 3 and time.monotonic() < end:
            c = q.poll()
            held += [c] if c is not None else []
        assert len(held) == 3 and q.accounting() == (0, 1, 3)
        with pytest.raises(WirecapError, match="another queue's pool"):
            other.recycle(held[0].token)
        with pytest.raises(WirecapError, match="names no chunk"):
            q.recycle(held[0].token | (99 << 32))
        for i in (2, 0, 1):                     # out of order
            held[i].release()
        with pytest.raises(WirecapError, match="not outstanding"):
            q.recycle(held[2].token)
        with pytest.raises(WirecapError, match="was released"):
            held[0].packet(0)
        assert q.accounting() == (0, 4, 0)
        assert (q.stats()["refused"], other.stats()["refused"]) == (2, 1)
        # the kernel has every block again: a second burst fills the whole ring
        while (c := q.poll()) is not None:
            c.release()
        dev.counters(reset=True)
        net.replay(write_pcap(tmp_path / "b.pcap", frames[:q.capacity(60)]))
        assert wait_counter(dev, "packets0", q.capacity(60))["drops0"] == 0


def test_promiscuous_on_request_only_while_open(net):
    def promisc():
        with open(f"/sys/class/net/{net.capture}/flags") as f:
            return bool(int(f.read(), 16) & 0x100)      # IFF_PROMISC
    assert not promisc()
    with Engine(f"afpacket:{net.capture}", promiscuous=False, **RING):
        assert not promisc()
    with Engine(f"afpacket:{net.capture}", promiscuous=True, **RING):
        assert promisc()
    assert not promisc()


def test_transmit_send_and_forward(net, tmp_path):
    frames = frames_for(net, 200, sizes=(64, 1000), flows=2)
    with Engine(f"afpacket:{net.capture}", **RING) as eng:
        tx = eng.tx_queue()             # the engine's forwarding path
        for f in frames[:50]:
            tx.send(f)                  # outgoing frames: the capture sees them, as tcpdump
        assert collect(eng, 50)[0] == frames[:50]
        net.replay(write_pcap(tmp_path / "in.pcap", frames))
        forwarded, end = 0, time.monotonic() + 30
        back, kinds = [], []
        while len(back) < 2 * len(frames) and time.monotonic() < end:
            c = eng.next_chunk(0, timeout=0.05)
            if c is None:
                continue
            for i in range(len(c)):
                back.append(bytes(c.packet(i)))
                kinds.append(int(c.packet_info[i]))     # the kernel's packet type
                if forwarded < len(frames) and seq(back[-1]) == seq(frames[forwarded]) and \
                        len(back) - 1 < len(frames) + forwarded:
                    tx.forward(c, i)
                    forwarded += 1
            c.release()
        assert forwarded == len(frames)
        assert sorted(back, key=seq) == sorted(frames + frames, key=seq)
        assert sorted(kinds) == [PACKET_HOST] * len(frames) + [PACKET_OUTGOING] * len(frames)
        assert tx.stats()["sent"] == 50 + len(frames)


def test_outgoing_false_ignores_what_the_host_sends(net):
    with open_device(f"afpacket:{net.capture}", outgoing=False) as dev:
        q = dev.rx_queue(0, **RING)
        dev.start()
        tx = dev.tx_queue()
        for f in frames_for(net, 20):
            tx.send(f)
        time.sleep(0.05)                # a negative: give the kernel a moment to misbehave
        assert dev.counters()["packets"] == 0 and q.poll() is None


def test_loopback_shows_each_frame_once_as_libpcap_does():
    import socket
    with Engine("afpacket:lo", **RING) as eng:
        eng.nics[0].set_filter("udp and dst port 9")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(5):
            s.sendto(b"wirecap%d" % i, ("127.0.0.1", 9))
        s.close()
        got, end = [], time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < end:
            c = eng.next_chunk(0, timeout=0.05)
            if c is not None:
                got += [bytes(p)[42:] for p in c]
                c.release()
        time.sleep(0.3)                 # a second copy would come in the same block: wait
        while (c := eng.next_chunk(0, timeout=0.2)) is not None:
            got += [bytes(p)[42:] for p in c]
            c.release()
    assert got == [b"wirecap%d" % i for i in range(5)]
    with open_device("afpacket:lo") as dev, open_device("afpacket:lo", outgoing=True) as both:
        assert not dev.outgoing and both.outgoing               # asked for: both directions


# ----------------------------------------------------------------------------- errors
def test_no_such_interface():
    with pytest.raises(WirecapError, match="no interface 'wcnope0'.*ip link"):
        Engine("afpacket:wcnope0")


def test_interface_down(net):
    subprocess.run(["ip", "link", "set", net.capture, "down"], check=True)
    with pytest.raises(WirecapError, match=f"{net.capture} is down.*ip link set"):
        Engine(f"afpacket:{net.capture}")


def test_without_cap_net_raw():
    code = ("from wirecap.devices import open_device\nopen_device('afpacket:lo')")
    p = subprocess.run(["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw",
                        sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
    assert p.returncode != 0
    # the advice grants CAP_NET_RAW to one run, never `setcap` on a shared interpreter
    assert "needs CAP_NET_RAW" in p.stderr and "setcap" not in p.stderr


@pytest.mark.parametrize("geometry, message", [
    (dict(block_size=1000), "whole number of pages"),
    (dict(block_size=3 << 31), "below 2 GiB"),
    (dict(block_size=1 << 20, chunks=0), "at least one block"),
    (dict(block_size=4096, mtu=9000), "whole frame of the interface's MTU"),
    (dict(flush_us=-1), "retire timeout"),
])
def test_ring_geometry_refused_names_the_limit(net, geometry, message):
    mtu = geometry.pop("mtu", None)
    if mtu:
        subprocess.run(["ip", "link", "set", net.capture, "mtu", str(mtu)], check=True)
    dev = open_device(f"afpacket:{net.capture}")      # the device's own limits (the engine
    try:                                                # checks only the C types first)
        with pytest.raises(WirecapError, match=message):
            dev.rx_queue(0, **geometry)
    finally:
        dev.close()


def test_bad_names_and_options():
    with pytest.raises(WirecapError, match="afpacket: needs what follows.*afpacket:eth0"):
        open_device("afpacket:")
    with pytest.raises(WirecapError, match="fanout 'spray'"):
        Engine("afpacket:lo", fanout="spray")


def _tcpdump_lengths(path):
    """The link-level length tcpdump reads for each record of ``path`` (its header's len)."""
    out = subprocess.run(["tcpdump", "-Z", "root", "-nn", "-e", "-r", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [int(line.split(", length ")[1].split(":")[0]) for line in out.splitlines()]


def test_a_frame_cut_short_by_the_snap_length_keeps_its_wire_length(net, tmp_path):
    frames = frames_for(net, 20, sizes=(1000,), flows=1)
    wire = len(frames[0])
    sent = write_pcap(tmp_path / "sent.pcap", frames)
    # the kernel keeps 100 bytes of each frame (the filter's return value): the ring says so
    with Engine(f"afpacket:{net.capture}", **RING) as eng:
        eng.nics[0].set_filter("udp", snaplen=100)
        net.replay(sent)
        chunks, end = [], time.monotonic() + 30
        while sum(len(c) for c in chunks) < len(frames) and time.monotonic() < end:
            chunks += [c] if (c := eng.next_chunk(0, timeout=0.1)) is not None else []
        assert [(int(a), int(b)) for c in chunks for a, b in zip(c.lengths, c.wire_lengths)] \
            == [(100, wire)] * len(frames)
        with PcapWriter(str(tmp_path / "records.pcap"), snaplen=100) as w:
            for c in chunks:
                w.write_records(_pcap.pcap_records(c, 100, False)[0])
                c.release()
    # the pcap API: callback headers, a pcap dump and a pcapng file
    with pcap.open_live(f"afpacket:{net.capture}", 100, True, 100, **RING) as h:
        h.setfilter("udp")
        dump = h.dump_open(str(tmp_path / "api.pcap"))
        ng = open_writer(str(tmp_path / "api.pcapng"), "pcapng", snaplen=100)
        got = []

        def keep(hdr, data):
            got.append((hdr.getcaplen(), hdr.getlen(), len(data)))
            dump.dump(hdr, data)
            ng.write(hdr.ts_ns, data, hdr.getlen())
        net.replay(sent)
        end = time.monotonic() + 30
        while len(got) < len(frames) and time.monotonic() < end:
            h.dispatch(-1, keep)
        dump.close()
        ng.close()
    assert got == [(100, wire, 100)] * len(frames)
    for name in ("records.pcap", "api.pcap", "api.pcapng"):
        assert _tcpdump_lengths(tmp_path / name) == [wire] * len(frames), name


# ----------------------------------------------------------------------------- the CLI
def test_wirecap_capture_writes_what_tcpreplay_sent(net, tmp_path):
    frames = frames_for(net, 2000, sizes=(64, 400, 1518), flows=8)
    sent = write_pcap(tmp_path / "sent.pcap", frames)
    out, run = tmp_path / "out.pcap", tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "wirecap.cli", "capture", "-i",
                          f"afpacket:{net.capture}", "-c", str(len(frames)), "-w", str(out),
                          "-q"], cwd=os.path.dirname(os.path.dirname(__file__)),
                         env={**os.environ, "WIRECAP_RUN_DIR": str(run)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_reading(p, run)
        assert p.poll() is None, p.communicate()[1]
        assert net.replay(sent) == len(frames)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    linktype, records = read_pcap(out)
    assert linktype == 1
    assert [(f, n) for _, f, n in records] == [(f, len(f)) for f in frames]


def test_bench_afpacket_json():
    p = subprocess.run([sys.executable, "-m", "wirecap.cli", "bench", "afpacket", "--frames",
                        "2000", "--bursts", "1000", "--repeats", "1", "--json"],
                       cwd=os.path.dirname(os.path.dirname(__file__)), capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert [c["capturer"] for c in r["cpu"]] == ["tcpdump", "pcapy", "wirecap-loop",
                                                 "wirecap-chunks"]
    assert all(c["cpu_s_per_million"]["n"] == 1 for c in r["cpu"])
    wirecap = [b for b in r["burst"] if b["capturer"].startswith("wirecap")]
    assert wirecap and all(b["lost"]["max"] == 0 for b in wirecap)   # 1000 fit any ring
