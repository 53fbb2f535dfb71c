"""Generate wirecap/ixgbe.pxd (the driver's register map) from the register table.

setup.py calls ``write()`` before Cython runs; ``python -m wirecap.registers.pxd`` does the same
by hand. The file is rewritten only when its text changes, so that a build does not recompile
every module that cimports it.
"""
import pathlib
import sys

from .table import load

HERE = pathlib.Path(__file__).parent
TARGET = HERE.parent / "ixgbe.pxd"

HEADER = """\
# GENERATED from wirecap/registers/82599.txt by wirecap/registers/pxd.py: edit those, not this.
#
# The Intel 82599 register map shared by the driver (cimport) and the model and tests (import):
# each datasheet group is an enum of its single registers and an enum of their bit fields
# (<REG>_<FIELD>); each register with entries is a function of the entry index that rejects
# indices the datasheet does not define (C-level here; ixgbe.pyx builds the Python-level ones
# from the same table). Named enums keep bit-31 masks unsigned on the Python side; ixgbe.pyx
# re-exports every member as a plain int at module level.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

cdef int _bad_index(int i, str name, int n) except -1
"""


def _enum(name, members):
    if not members:
        return []
    out = [f"cpdef enum {name}:"]
    for member, value, comment in members:
        line = f"    {member} = {value:#x}"
        out.append(f"{line:<44}# {comment}" if comment else line)
    return out + [""]


def _function(name, reg, pieces):
    out = [f"cdef inline int {name}(int i) except -1:" + (f"    # {reg.desc}" if reg.desc else "")]
    for p in pieces:
        rel = "i" if p.lo == 0 else f"(i - {p.lo})"
        out.append(f"    if {p.lo} <= i <= {p.hi}:\n        return {p.base:#07x} + {p.stride:#x} * {rel}")
    out.append(f"    return _bad_index(i, \"{name}\", {pieces[-1].hi + 1})")
    return out


def render(table=None):
    table = table or load()
    out = [HEADER]
    functions = []
    for g in table.groups:
        out.append(f"# {'-' * 64} {g.section} {g.title}")
        if g.consts is not None:
            out += _enum(g.name, g.consts)
            continue
        singles = [(r.name, r.offset(), r.desc) for r in g.registers if not r.indexed]
        fields = [f for r in g.registers for f in r.fields]
        out += _enum(g.name, singles) + _enum(g.name + "Bits", fields)
        for r in g.registers:
            if r.indexed:
                functions += _function(r.name, r, r.pieces)
                if r.aliases:
                    functions += _function(r.name + "_ALIAS", r, r.aliases)
    out.append((HERE / "descriptors.pxi").read_text())
    out.append(f"# {'-' * 64} registers with entries")
    out += functions
    return "\n".join(out) + "\n"


def write(target=TARGET):
    text = render()
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
        return True
    return False


if __name__ == "__main__":
    print(f"{TARGET}: {'written' if write() else 'unchanged'}", file=sys.stderr)
