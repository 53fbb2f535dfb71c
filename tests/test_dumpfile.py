"""The C-level capture file writer (wirecap._dumpfile): the same bytes as the records
_pcap builds, every record on disk after close(), and a failed write that leaves exactly the
records it reports."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from wirecap import _pcap, sim
from wirecap._dumpfile import Dumpfile, WriteError
from wirecap.dump import open_writer, read_pcap
from wirecap.engine import Engine
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = ("pcap", "pcap-ns", "pcapng")


@pytest.fixture
def chunks():
    """Chunks of the model (held, not released): frames of several sizes, some longer than
    the snaplen the tests cut them to."""
    sim.reset()
    eng = Engine("sim:0", queues=1, threads=False, segment=32, chunks=40, ndesc=128)
    eng.start()
    wire = eng.nics[0].port.wire
    wire.send(TrafficProfile(count=32 * 8, sizes=(64, 65, 67, 200, 1518), flows=4), 0)
    held = []
    while len(held) < 8:
        wire.send(None, 32)
        while (c := eng.next_chunk(0, timeout=0)) is not None:
            held.append(c)
    yield held
    for c in held:
        c.release()
    eng.stop()
    eng.close()


def _reference(path, fmt, chunks, snaplen, masks, limit):
    """The file as it was written before Dumpfile: header, then pcap_records' bytes."""
    with open_writer(str(path), fmt, snaplen=snaplen) as w:
        left = limit
        for c, mask in zip(chunks, masks):
            records, n, _ = _pcap.pcap_records(c, snaplen, _pcap.FORMATS[fmt], mask, left)
            w.write_records(records, n)
            left -= n


@pytest.mark.parametrize("fmt", FORMATS)
def test_put_chunk_writes_the_bytes_pcap_records_builds(tmp_path, chunks, fmt):
    rng = np.random.default_rng(7)
    masks = [None if i % 3 == 0 else (rng.random(len(c)) < 0.6).astype(np.uint8)
             for i, c in enumerate(chunks)]
    limit = sum(len(c) for c in chunks) - 50        # the limit stops inside a chunk
    ref, ours = tmp_path / f"ref.{fmt}", tmp_path / f"ours.{fmt}"
    _reference(ref, fmt, chunks, 100, masks, limit)
    with open_writer(str(ours), fmt, snaplen=100) as w:
        n = 0
        for c, mask in zip(chunks, masks):
            n += w.put_chunk(c, mask, limit=limit - n)[1]
        assert w.records == n
    assert n < limit and n == sum(int(m.sum()) if m is not None else len(c)
                                  for c, m in zip(chunks, masks))
    assert ours.read_bytes() == ref.read_bytes()


def test_put_chunk_stops_at_the_limit_and_after_the_record_that_crosses_max_bytes(
        tmp_path, chunks):
    c = chunks[0]
    lengths = [min(int(x), 100) for x in c.lengths]
    with open_writer(str(tmp_path / "x.pcap"), "pcap", snaplen=100) as w:
        assert w.put_chunk(c, limit=3) == (3, 3)
        budget = 16 + lengths[3] + 1                # one record and a byte: two records
        assert w.put_chunk(c, start=3, max_bytes=budget) == (5, 2)
        assert w.put_chunk(c, start=5) == (len(c), len(c) - 5)
    assert [r[1] for r in read_pcap(str(tmp_path / "x.pcap"))[1]] == \
        [bytes(p)[:100] for p in c]


def test_close_writes_everything_and_the_file_refuses_more(tmp_path, chunks):
    path = tmp_path / "x.pcap"
    w = open_writer(str(path), "pcap-ns")
    for c in chunks:
        w.put_chunk(c)
    w.write(123, b"\x01" * 70)
    assert os.path.getsize(path) == 24             # all of it still in the buffer
    w.close()
    records = read_pcap(str(path))[1]
    assert len(records) == sum(len(c) for c in chunks) + 1 == w.records
    assert os.path.getsize(path) == w.tell()
    with pytest.raises(WirecapError, match="closed"):
        w.write(124, b"\x02" * 60)
    w.close()                                       # twice: harmless


def test_short_and_interrupted_writes_lose_nothing():
    """A pipe read slowly while a timer interrupts the writer: write() returns short counts
    (or EINTR, when a signal finds it waiting with nothing written), and every byte still
    arrives, in order."""
    r, wfd = os.pipe()
    data = np.random.default_rng(1).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    got = []

    def read():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})     # the writer gets them
        while chunk := os.read(r, 7000):
            got.append(chunk)
            time.sleep(0.0002)          # slower than the writer: it waits on a full pipe

    reader = threading.Thread(target=read)
    reader.start()
    old = signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    try:
        f = Dumpfile(f"/proc/self/fd/{wfd}", _pcap.FORMATS["pcap"], 1 << 20)
        f.write(data[:1000])
        f.write(data[1000:])                        # larger than the buffer: straight out
        f.close()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(wfd)
    reader.join()
    os.close(r)
    assert b"".join(got) == data


def test_a_full_device_is_one_error_naming_the_file():
    f = Dumpfile("/dev/full", _pcap.FORMATS["pcap"])
    f.write(b"\x00" * 24)
    f.put(1, b"\x01" * 60, 60)
    with pytest.raises(WriteError) as e:
        f.flush()
    assert str(e.value) == ("/dev/full: No space left on device: the file ends after its "
                            "last whole record (0 packets); free space or write elsewhere")
    assert isinstance(e.value, WirecapError) and isinstance(e.value, OSError)
    assert e.value.records == 0 and f.records == 0
    with pytest.raises(WriteError):                 # the file takes nothing more
        f.put(2, b"\x02" * 60, 60)
    f.close()                                       # the failure was raised already


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs: it fills after a few buffers of records."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_leaves_the_records_it_counts(small_fs, chunks, fmt):
    path = small_fs / "x"
    w = open_writer(str(path), fmt, snaplen=1000)
    with pytest.raises(WriteError) as e:
        while True:
            for c in chunks:
                w.put_chunk(c)
    w.close()
    n = e.value.records
    assert n > 0 and n == w.records
    assert str(path) in str(e.value) and "No space left on device" in str(e.value)
    if fmt == "pcapng":
        assert _count_epbs(path.read_bytes()) == n
    else:
        assert len(read_pcap(str(path))[1]) == n    # whole records, no torn tail


def _count_epbs(data):
    off = n = 0
    while off < len(data):
        kind, size = np.frombuffer(data[off:off + 8], "<u4")
        assert size >= 12 and off + size <= len(data), "a torn block"
        n += kind == 6
        off += int(size)
    return n


def test_capture_w_on_a_full_disk_says_so_in_one_line(small_fs):
    path = small_fs / "x.pcap"
    r = subprocess.run([sys.executable, "-m", "wirecap.cli", "capture", "-i", "sim:0",
                        "--traffic", "count=8000,size=1518,rate=1e5", "-w", str(path)],
                       capture_output=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 2, err
    assert len([ln for ln in err if not ln.startswith("wirecap capture: listening")]) == 1
    line = err[-1]
    assert line.startswith(f"wirecap capture: {path}: No space left on device"), line
    n = int(line.split("(")[1].split()[0].replace(",", ""))
    assert n > 0 and len(read_pcap(str(path))[1]) == n


def _inline_run(take):
    """Frames of the model read inline by ``take(engine)`` after every segment's worth."""
    sim.reset()
    eng = Engine("sim:0", queues=1, threads=False, segment=32, chunks=40, ndesc=128)
    eng.start()
    wire = eng.nics[0].port.wire
    wire.send(TrafficProfile(count=32 * 20, sizes=(64, 65, 200, 1518), flows=4), 0)
    for _ in range(20):
        wire.send(None, 32)
        take(eng)
    return eng


@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns"])
def test_put_waiting_writes_every_waiting_chunk_and_releases_it(tmp_path, fmt):
    path = tmp_path / "x"
    w = open_writer(str(path), fmt, snaplen=300)
    written = []
    eng = _inline_run(lambda e: written.append(w.put_waiting(e)))
    eng.workers[0].poll_inline()                    # takes the last releases back
    free, armed, captured = eng.workers[0].accounting()
    eng.stop()
    eng.close()
    w.close()
    assert captured == 0 and free + armed == 40     # every chunk went back to the pool
    want = []

    def take(e):
        while (c := e.next_chunk(0, timeout=0)) is not None:
            want.extend((bytes(p)[:300], int(n)) for p, n in zip(c, c.wire_lengths))
            c.release()

    _inline_run(take).close()
    records = read_pcap(str(path))[1]
    assert sum(written) == len(records) == len(want) == 32 * 20
    assert [(data, orig) for _, data, orig in records] == want
    stamps = [ts for ts, _, _ in records]
    assert stamps == sorted(stamps) and stamps[0] > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_start_over_writes_the_file_again_from_its_header(tmp_path, chunks, fmt):
    path, ref = tmp_path / "x", tmp_path / "ref"
    w = open_writer(str(path), fmt)
    for c in chunks:                                # more than what comes after
        w.put_chunk(c)
    w.flush()
    longer = os.path.getsize(path)
    w.start_over()
    w.put_chunk(chunks[0])
    w.close()
    with open_writer(str(ref), fmt) as r:
        r.put_chunk(chunks[0])
    assert path.read_bytes() == ref.read_bytes()   # the old tail is cut at close
    assert os.path.getsize(path) < longer and w.records == len(chunks[0])


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a tmpfs at /dev/shm")
def test_reserve_sets_tmpfs_pages_aside_without_growing_the_file(chunks):
    path = f"/dev/shm/wirecap-test-reserve-{os.getpid()}"
    try:
        w = open_writer(path, "pcap")
        before = os.stat(path).st_blocks
        assert w.reserve(8 << 20)
        st = os.stat(path)
        assert st.st_size == 24 and st.st_blocks >= before + (8 << 20) // 512
        w.put_chunk(chunks[0])
        w.close()
        assert len(read_pcap(path)[1]) == len(chunks[0])
    finally:
        os.unlink(path)
