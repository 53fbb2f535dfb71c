"""The Intel 82599 register map, generated into ixgbe.pxd from wirecap/registers/82599.txt.

Python sees every register and bit as a plain int (``ixgbe.CTRL``, ``ixgbe.RXDCTL_ENABLE``) and
every register with entries as a function (``ixgbe.RDT(3)``) that rejects indices the datasheet
does not define.
"""
import enum as _enum

from wirecap.registers.table import load as _load


cdef int _bad_index(int i, str name, int n) except -1:
    raise IndexError(f"{name}({i}): the 82599 defines {name}(0) to {name}({n - 1})")


def _entry_function(name, reg, alias):
    pieces = reg.aliases if alias else reg.pieces
    count = pieces[len(pieces) - 1].hi + 1      # (no negative indexing: wraparound is off)

    def offset(int i):
        for p in pieces:
            if p.lo <= i <= p.hi:
                return p.offset(i)
        _bad_index(i, name, count)
    offset.__name__ = offset.__qualname__ = name
    offset.__doc__ = f"BAR0 offset of {name}(i): {reg.desc or reg.name} (datasheet {reg.section})"
    return offset


for _reg in _load().registers.values():
    if _reg.indexed:
        globals()[_reg.name] = _entry_function(_reg.name, _reg, False)
        if _reg.aliases:
            globals()[_reg.name + "_ALIAS"] = _entry_function(_reg.name + "_ALIAS", _reg, True)


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
