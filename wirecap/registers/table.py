"""The 82599 register table (82599.txt) as Python data: the one reader of that file.

``load()`` gives a ``Table``: its registers (name, offsets of every entry, access mode, reset
values, self-clearing and writable bits, aliases, datasheet section), their bit fields and the
plain constants. ``wirecap/registers/pxd.py`` turns it into ``wirecap/ixgbe.pxd``; the model builds
its register file from it. Plain Python with no imports from wirecap, so that setup.py can use it
before anything is built.
"""
import functools
import pathlib
import re

TABLE_PATH = pathlib.Path(__file__).with_name("82599.txt")
MODES = ("RW", "RO", "WO", "RC", "RCW1C", "W1C", "RWS", "RC64L", "RC64H")
BAR0_SIZE = 0x20000

_PIECE = re.compile(r"^(0x[0-9A-Fa-f]+)(?:\+(0x[0-9A-Fa-f]+|\d+)\*(\d+)\.\.(\d+))?$")
_RANGE = re.compile(r"^(\d+)(?:\.\.(\d+))?$")
_VALUE = re.compile(r"^[0-9A-Fa-fx<>|()~]+$")


class TableError(ValueError):
    """82599.txt does not follow its grammar (the message names the line)."""


class Piece:
    """Entries lo..hi of a register at base + stride * (n - lo)."""
    __slots__ = ("base", "stride", "lo", "hi")

    def __init__(self, base, stride, lo, hi):
        self.base, self.stride, self.lo, self.hi = base, stride, lo, hi

    def offset(self, n):
        return self.base + self.stride * (n - self.lo)


class Register:
    __slots__ = ("name", "group", "section", "mode", "pieces", "aliases", "resets", "sc",
                 "wmask", "nvm", "desc", "fields", "line")

    @property
    def indexed(self):
        return self.pieces[0].stride != 0

    @property
    def count(self):
        return self.pieces[-1].hi + 1

    def offset(self, n=0):
        for p in self.pieces:
            if p.lo <= n <= p.hi:
                return p.offset(n)
        raise IndexError(f"{self.name}({n}): the 82599 defines {self.name}(0) to "
                         f"{self.name}({self.count - 1})")

    def alias(self, n):
        """The 82598-compatible address of entry n, or None."""
        for p in self.aliases:
            if p.lo <= n <= p.hi:
                return p.offset(n)
        return None

    def reset(self, n=0):
        for lo, hi, v in self.resets:
            if lo <= n <= hi:
                return v
        return self.resets[-1][2]


class Group:
    __slots__ = ("name", "section", "title", "registers", "consts")

    def __init__(self, name, section, title):
        self.name, self.section, self.title = name, section, title
        self.registers, self.consts = [], []     # consts: (name, value, comment)


class Table:
    def __init__(self, groups):
        self.groups = groups
        self.registers = {r.name: r for g in groups for r in g.registers}

    def __getitem__(self, name):
        return self.registers[name]

    def instances(self):
        """Every addressable word: (offset, register, entry index, is_alias)."""
        for reg in self.registers.values():
            for p in reg.pieces:
                for n in range(p.lo, p.hi + 1):
                    yield p.offset(n), reg, n, False
            for p in reg.aliases:
                for n in range(p.lo, p.hi + 1):
                    yield p.offset(n), reg, n, True

    def constants(self):
        """Every named constant (fields and plain constants): name -> value."""
        out = {}
        for g in self.groups:
            for r in g.registers:
                for name, v, _ in r.fields:
                    out[name] = v
            for name, v, _ in g.consts or ():
                out[name] = v
        return out


def _int(tok, where):
    if not _VALUE.match(tok):
        raise TableError(f"{where}: {tok!r} is not a value (hex, decimal, <<, |, parentheses)")
    try:
        v = eval(tok, {"__builtins__": {}})       # the grammar above admits integers only
    except Exception:
        raise TableError(f"{where}: {tok!r} is not a value") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise TableError(f"{where}: {tok!r} does not fit 32 bits")
    return v


def _pieces(spec, where):
    pieces = []
    for part in spec.split(","):
        m = _PIECE.match(part)
        if not m:
            raise TableError(f"{where}: {part!r} is not BASE or BASE+STRIDE*LO..HI")
        base = int(m.group(1), 16)
        if m.group(2):
            stride, lo, hi = int(m.group(2), 0), int(m.group(3)), int(m.group(4))
            if lo > hi or stride < 4 or stride % 4:
                raise TableError(f"{where}: {part!r}: empty range or stride not a word multiple")
        else:
            stride, lo, hi = 0, 0, 0
        if base % 4 or base + stride * (hi - lo) >= BAR0_SIZE:
            raise TableError(f"{where}: {part!r} is not an aligned BAR0 offset")
        if pieces and lo != pieces[-1].hi + 1:
            raise TableError(f"{where}: {part!r} does not continue at entry {pieces[-1].hi + 1}")
        pieces.append(Piece(base, stride, lo, hi))
    return pieces


def _range(spec, where):
    m = _RANGE.match(spec)
    if not m:
        raise TableError(f"{where}: {spec!r} is not LO or LO..HI")
    lo = int(m.group(1))
    return lo, int(m.group(2) or lo)


def _resets(spec, where):
    out = []
    for part in spec.split(","):
        m = re.match(r"^([^\[]+)\[([0-9.]+)\]$", part)
        if m:
            out.append((*_range(m.group(2), where), _int(m.group(1), where)))
        else:
            out.append((0, 1 << 30, _int(part, where)))
    if out[-1][1] != 1 << 30:
        raise TableError(f"{where}: the reset list must end with the value of the other entries")
    return out


def parse(text, source="82599.txt"):
    groups, group, reg = [], None, None
    seen = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        body, _, comment = raw.partition("#")
        comment = comment.strip()
        if not body.strip():
            continue
        if body.startswith("=="):
            words = body[2:].split()
            is_const = words[:1] == ["const"]
            words = words[1:] if is_const else words
            if len(words) < 2:
                raise TableError(f"{where}: a group header is '== [const] Name SECTION Title'")
            group = Group(words[0], words[1], " ".join(words[2:]))
            group.consts = [] if is_const else None
            groups.append(group)
            reg = None
            continue
        if group is None:
            raise TableError(f"{where}: a register before the first '==' group header")
        words = body.split()
        if group.consts is not None:
            if len(words) != 2:
                raise TableError(f"{where}: a constant is 'NAME VALUE'")
            _unique(seen, words[0], where)
            group.consts.append((words[0], _int(words[1], where), comment))
            continue
        if body[0].isspace():
            if reg is None or len(words) != 2:
                raise TableError(f"{where}: a field is an indented 'SUFFIX VALUE' under a register")
            name = f"{reg.name}_{words[0]}"
            _unique(seen, name, where)
            reg.fields.append((name, _int(words[1], where), comment))
            continue
        if len(words) < 4:
            raise TableError(f"{where}: a register is 'NAME OFFSETS MODE RESET [opts]'")
        reg = Register()
        reg.name, reg.group, reg.section, reg.desc, reg.line = words[0], group, group.section, \
            comment, where
        _unique(seen, reg.name, where)
        reg.pieces = _pieces(words[1], where)
        reg.mode = words[2]
        if reg.mode not in MODES:
            raise TableError(f"{where}: mode {reg.mode!r} is not one of {', '.join(MODES)}")
        reg.resets = _resets(words[3], where)
        reg.aliases, reg.sc, reg.wmask, reg.nvm, reg.fields = [], 0, 0xFFFFFFFF, (1, 0), []
        for opt in words[4:]:
            key, eq, val = opt.partition("=")
            if not eq:
                raise TableError(f"{where}: option {opt!r} is not KEY=VALUE")
            if key == "alias":
                reg.aliases = _pieces(val, where)
            elif key == "sc":
                reg.sc = _int(val, where)
            elif key == "wmask":
                reg.wmask = _int(val, where)
            elif key == "sec":
                reg.section = val
            elif key == "nvm":
                reg.nvm = _range(val, where)
            else:
                raise TableError(f"{where}: unknown option {key!r} (alias, sc, wmask, sec, nvm)")
        group.registers.append(reg)
    table = Table(groups)
    _check_overlaps(table, source)
    return table


def _unique(seen, name, where):
    if name in seen:
        raise TableError(f"{where}: {name} is already declared at {seen[name]}")
    seen[name] = where


def _check_overlaps(table, source):
    owner = {}
    for off, reg, n, _ in table.instances():
        if off in owner:
            other = owner[off]
            raise TableError(f"{source}: offset {off:#07x} is both {other[0].name}({other[1]}) "
                             f"and {reg.name}({n})")
        owner[off] = (reg, n)


@functools.lru_cache(maxsize=None)
def load(path=TABLE_PATH):
    return parse(pathlib.Path(path).read_text(), pathlib.Path(path).name)
