"""The Intel 82599 register map, generated into ixgbe.pxd from wirecap/registers/82599.txt.

Python sees every register and bit as a plain int (``ixgbe.CTRL``, ``ixgbe.RXDCTL_ENABLE``) and
every register with entries as a function (``ixgbe.RDT(3)``) that rejects indices the datasheet
does not define.
"""
import enum as _enum


cdef int _bad_index(int i, str name, int n) except -1:
    raise IndexError(f"{name}({i}): the 82599 defines {name}(0) to {name}({n - 1})")


def indices(fn):
    """The indices a per-index register function accepts, e.g. ``indices(RDT) == range(128)``."""
    n = 0
    while True:
        try:
            fn(n)
        except IndexError:
            return range(n)
        n += 1


GROUPS = tuple(v for v in list(globals().values())
               if isinstance(v, type) and issubclass(v, _enum.Enum))
# __members__ includes aliases (members with equal values, e.g. LINKS_SPEED_MASK and _10G)
globals().update({name: int(m) for g in GROUPS for name, m in g.__members__.items()})
