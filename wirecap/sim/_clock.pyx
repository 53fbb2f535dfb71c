"""The driver's clock (DESIGN §3 "Time"): the model has no thread; its time moves when the
driver touches the device.

The port's Arrivals (a wire's schedule) tell when the next frame is due. At every sync point
the frames due by then are delivered first, in arrival order, so each meets the state silicon
would have shown it:

- ``sync(now)``, the driver's poll hook: nothing due (or due less than SYNC_SLACK_NS ago),
  nothing done (one load and compare). Otherwise whoever gets the clock lock delivers
  everything due; a thread that finds the lock taken leaves a request that the holder serves
  before it leaves.
- ``enter``/``leave`` around a register access: the access waits for the lock, the frames due
  before it are delivered and counted (the wire counts in bulk: Arrivals.settle), then it
  takes effect. Its time is read under the lock, so accesses
  and deliveries form one order in time: an RDT write at t is seen by exactly the frames due
  after t, as on silicon, whichever threads poll.

What catching up costs (ns, frames, rounds) is counted here, apart from the driver's work.
"""
from libc.stdint cimport uint32_t, uint64_t, int64_t

from wirecap.includes.atomics cimport ld32, ld64, st32, st64
from wirecap.includes.clocks cimport mono_ns
from wirecap.sim._state cimport DeviceState, Arrivals, NOTHING_DUE, pthread_mutex_t

cdef extern from "<pthread.h>" nogil:
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_trylock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)

cdef extern from "Python.h" nogil:
    ctypedef struct PyThreadState
    int PyGILState_Check()
    PyThreadState* PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState*)


cdef enum:
    # A poll delivers the frames due at least this long before it (about 30 at line rate), as
    # silicon writes descriptors back in bursts (WTHRESH, 7.1.5): a driver that polls every
    # 100 ns would otherwise pay a catch-up's fixed cost for one or two frames each time.
    # Register accesses are exact, so no frame's fate depends on it; only when DD shows.
    SYNC_SLACK_NS = 2000


cdef inline int64_t catch_up(DeviceState s) noexcept nogil:
    """With the clock lock held: deliver what is due now; returns now."""
    cdef int64_t t = mono_ns()
    cdef uint64_t n
    if t >= <int64_t>ld64(&s.next_due):
        n = s.arrivals.deliver(s, t)
        s.catchup_ns += mono_ns() - t
        s.catchup_frames += n
        s.catchups += 1
    return t


cdef void serve(DeviceState s) noexcept nogil:
    # while someone asked and nobody else is delivering, deliver
    while ld32(&s.sync_pending) and pthread_mutex_trylock(&s.clock_lock) == 0:
        st32(&s.sync_pending, 0)
        catch_up(s)
        pthread_mutex_unlock(&s.clock_lock)


cdef void sync(DeviceState s, int64_t now) noexcept nogil:
    if now - SYNC_SLACK_NS < <int64_t>ld64(&s.next_due):
        return
    st32(&s.sync_pending, 1)
    serve(s)


cdef void lock_clock(DeviceState s) noexcept nogil:
    # A register access may come from a thread that holds the GIL (a driver's Python-level
    # register read), and attach/detach hold the clock lock while they take the GIL back: such
    # a thread must not block on the lock with the GIL, so it lets the GIL go while it waits.
    cdef PyThreadState* ts
    if not PyGILState_Check():
        pthread_mutex_lock(&s.clock_lock)
        return
    while pthread_mutex_trylock(&s.clock_lock) != 0:
        ts = PyEval_SaveThread()
        pthread_mutex_lock(&s.clock_lock)       # until the holder is done, without the GIL
        pthread_mutex_unlock(&s.clock_lock)     # then take it again with the GIL held
        PyEval_RestoreThread(ts)


cdef bint enter(DeviceState s, int64_t* now, bint settle=True) noexcept nogil:
    """Before a register access: deliver what is due, count it unless ``settle`` is false (an
    access that reads no counter and changes nothing they depend on: a tail doorbell), and
    give the access its time. Returns whether the lock was taken (pass it to leave)."""
    if s.arrivals is None:
        now[0] = mono_ns()
        return 0
    lock_clock(s)
    st32(&s.sync_pending, 0)
    now[0] = catch_up(s)
    if settle and s.arrivals is not None:   # (a detach may have come before the lock)
        s.arrivals.settle(s)
    return 1


cdef void leave(DeviceState s, bint locked) noexcept nogil:
    if locked:
        pthread_mutex_unlock(&s.clock_lock)
        serve(s)


cdef void attach(DeviceState s, Arrivals a, int64_t first_due):
    """Put a schedule on the port's clock (with the GIL; the lock holders never need it)."""
    with nogil:
        pthread_mutex_lock(&s.clock_lock)
    s.arrivals = a
    st64(&s.next_due, first_due)
    pthread_mutex_unlock(&s.clock_lock)


cdef void detach(DeviceState s, Arrivals a):
    """Take schedule ``a`` off the port's clock, if it is on: frames not yet due never come."""
    with nogil:
        pthread_mutex_lock(&s.clock_lock)
    if s.arrivals is a:
        with nogil:
            a.settle(s)
        s.arrivals = None
        st64(&s.next_due, NOTHING_DUE)
    pthread_mutex_unlock(&s.clock_lock)


cdef void settle(DeviceState s) noexcept nogil:
    """Count what the schedule on the clock left to count, for a reader that is not a
    register access."""
    pthread_mutex_lock(&s.clock_lock)
    if s.arrivals is not None:
        s.arrivals.settle(s)
    pthread_mutex_unlock(&s.clock_lock)
