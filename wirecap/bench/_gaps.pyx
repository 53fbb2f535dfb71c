"""The probe of `wirecap bench gaps`: a loop that only reads the clock, as a capture thread
polls, timing how long the machine takes the CPU away between two reads."""
from libc.stdint cimport int64_t, uint64_t
from wirecap.includes.clocks cimport mono_ns

# gap lengths counted, us: 275 is how long a 4,096-descriptor ring holds 10 GbE line rate
LIMITS_US = (20, 50, 100, 275, 1000, 5000)
DEF NLIMITS = 6


def spin(double seconds):
    """Read CLOCK_MONOTONIC in a loop for ``seconds`` without the GIL. Returns the number of
    gaps between two reads longer than each of LIMITS_US, the longest gap (ns), the time
    spent in gaps longer than the first limit (ns) and the time the loop ran (ns)."""
    cdef int64_t lim[NLIMITS]
    cdef uint64_t cnt[NLIMITS]
    cdef int64_t t0, last, now, gap, longest = 0, lost = 0, end
    cdef int i
    for i in range(NLIMITS):
        lim[i], cnt[i] = LIMITS_US[i] * 1000, 0
    with nogil:
        t0 = last = mono_ns()
        end = t0 + <int64_t>(seconds * 1e9)
        while last < end:
            now = mono_ns()
            gap = now - last
            last = now
            if gap > lim[0]:
                lost += gap
                if gap > longest:
                    longest = gap
                for i in range(NLIMITS):
                    if gap > lim[i]:
                        cnt[i] += 1
    return [cnt[i] for i in range(NLIMITS)], longest, lost, last - t0
