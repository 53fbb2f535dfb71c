"""Random interleavings of traffic, capture, flush, recycle and transmit keep the pool
invariant and never hand out a buffer twice."""
import struct

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wirecap import sim
from wirecap.devices import open_device
from wirecap.errors import WirecapError
from wirecap.sim import TrafficProfile

PROFILE = TrafficProfile(count=1 << 40, flows=1)


class Driver(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        sim.reset()                                         # closes a failed run's port
        self.nic = open_device("sim:0")
        self.mac = bytes.fromhex(self.nic.mac.replace(":", ""))
        self.rx = None

    @rule(chunks=st.integers(9, 14), segment=st.sampled_from([8, 16]))
    @precondition(lambda self: self.rx is None)
    def open_queue(self, chunks, segment):
        self.rx = self.nic.rx_queue(0, ndesc=64, segment=segment, chunks=chunks, flush_us=0)
        self.tx = self.nic.tx_queue(0, ndesc=64)
        self.nic.start()
        self.injected = 0
        self.delivered = []             # sequence numbers, in delivery order
        self.held = []                  # chunks the application holds
        self.buffers_out = set()        # (chunk, packet) the application or the NIC's TX holds
        self.tx_pending = set()

    @rule(n=st.integers(1, 40))
    @precondition(lambda self: self.rx is not None)
    def traffic(self, n):
        frames = [PROFILE.frame(self.injected + i, self.mac) for i in range(n)]
        self.nic.port.wire.inject(frames)
        self.injected += n

    @rule()
    @precondition(lambda self: self.rx is not None)
    def capture(self):
        c = self.rx.poll()
        if c is None:
            return
        bufs = {(c.index, c.first + i) for i in range(len(c))}
        assert not bufs & self.buffers_out, "a buffer was handed out twice"
        self.buffers_out |= bufs
        self.held.append(c)
        self.delivered += [struct.unpack_from("<Q", bytes(p), PROFILE.stamp_offset)[0] for p in c]

    @rule(pick=st.integers(0, 1000))
    @precondition(lambda self: self.rx is not None and self.held)
    def recycle(self, pick):
        c = self.held.pop(pick % len(self.held))
        c.release()
        self.buffers_out -= {(c.index, c.first + i) for i in range(len(c))} - self.tx_pending

    @rule(pick=st.integers(0, 1000), pkt=st.integers(0, 1000))
    @precondition(lambda self: self.rx is not None and self.held)
    def forward(self, pick, pkt):
        c = self.held[pick % len(self.held)]
        i = pkt % len(c)
        try:
            self.tx.forward(c, i)
        except WirecapError as e:
            assert "full" in str(e)
            return
        self.tx_pending.add((c.index, c.first + i))

    @rule()
    @precondition(lambda self: self.rx is not None)
    def complete(self):
        self.tx.collect()
        held = {(c.index, c.first + i) for c in self.held for i in range(len(c))}
        self.buffers_out = held             # completed sends no longer hold their buffers
        self.tx_pending = set()

    @rule(token=st.integers(0, (1 << 128) - 1))
    @precondition(lambda self: self.rx is not None)
    def forged_recycle(self, token):
        if any(c.token == token for c in self.held):
            return
        before = (self.rx.accounting(), self.rx.stats()["recycled"])
        try:
            self.rx.recycle(token)
        except WirecapError:
            pass
        else:
            raise AssertionError(f"forged token {token:#x} was accepted")
        assert (self.rx.accounting(), self.rx.stats()["recycled"]) == before

    @invariant()
    def pool_balances(self):
        if self.rx is not None:
            free, armed, captured = self.rx.accounting()
            assert free + armed + captured == self.rx.chunks
            assert armed <= self.rx.nseg

    @invariant()
    def every_frame_delivered_once_in_order_or_dropped(self):
        if self.rx is None:
            return
        assert self.delivered == sorted(set(self.delivered))
        c = self.nic.counters()
        # what was not delivered yet was dropped by the NIC or is in the ring, undelivered
        assert len(self.delivered) + c["QPRDC0"] <= self.injected
        assert c["QPRC0"] + c["QPRDC0"] == self.injected

    def teardown(self):
        if self.rx is not None:
            for c in self.held:
                c.release()
            while (c := self.rx.poll()) is not None:
                self.delivered += [struct.unpack_from("<Q", bytes(p), PROFILE.stamp_offset)[0]
                                   for p in c]
                c.release()
            self.tx.collect()
            c = self.nic.counters()
            assert len(self.delivered) + c["QPRDC0"] == self.injected
            free, armed, captured = self.rx.accounting()
            assert captured == 0 and free + armed == self.rx.chunks
        self.nic.close()


TestDriver = Driver.TestCase
TestDriver.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
