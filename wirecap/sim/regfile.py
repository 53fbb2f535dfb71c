"""The model's register file, laid out from the register table (wirecap/registers/82599.txt).

``layout()`` gives one entry per 32-bit word of BAR0: the access mode the table declares (as an
index into ``MODES``; 0 where no register is), the word that holds the register's storage (an
alias points at its register's entry), the entry index, the reset value and the bits software
may write (self-clearing bits are never stored). The model's dispatch starts from this generic
storage and overrides the registers whose behaviour it models (``modelled_words``).
"""
import functools

import numpy as np

from wirecap.registers.table import BAR0_SIZE, MODES, load

NWORDS = BAR0_SIZE // 4


class Layout:
    __slots__ = ("mode", "canon", "entry", "reset", "wmask")


@functools.lru_cache(maxsize=None)
def layout():
    table = load()
    out = Layout()
    out.mode = np.zeros(NWORDS, np.uint8)
    out.canon = np.arange(NWORDS, dtype=np.uint32)
    out.entry = np.zeros(NWORDS, np.uint32)
    out.reset = np.zeros(NWORDS, np.uint32)
    out.wmask = np.zeros(NWORDS, np.uint32)
    for off, reg, n, is_alias in table.instances():
        w = off >> 2
        out.mode[w] = MODES.index(reg.mode) + 1
        out.canon[w] = reg.offset(n) >> 2
        out.entry[w] = n
        out.wmask[w] = reg.wmask & ~reg.sc
        if not is_alias:
            out.reset[w] = reg.reset(n)
    return out


def modelled_words(handlers):
    """(word, handler, entry, canonical word) of every address of the registers named in
    ``handlers`` (name -> handler code), aliases included."""
    table = load()
    for name, h in handlers.items():
        reg = table[name]
        for n in range(reg.count):
            for off in (reg.offset(n), reg.alias(n)):
                if off is not None:
                    yield off >> 2, h, n, reg.offset(n) >> 2
