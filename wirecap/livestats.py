"""Live counters of running captures: ``capture`` publishes, ``wirecap stats`` shows.

A capture writes its stats snapshot every second as ``capture-PID.json`` in a private run
directory: ``$WIRECAP_RUN_DIR``, else ``/run/wirecap`` for root, else
``$XDG_RUNTIME_DIR/wirecap``, else ``/tmp/wirecap-UID``. The directory must be ours and closed
to everyone else (mode 0700): in a shared /tmp another user could otherwise pre-create it and
plant links that make our capture overwrite our own files, or files that crash the reader.
Files are written through a directory descriptor with O_EXCL|O_NOFOLLOW and renamed into
place; the reader opens them with O_NOFOLLOW and checks owner, type, size and content.
"""
from __future__ import annotations

import json
import os
import re
import stat
import sys
import time

from . import stats
from .errors import WirecapError

MAX_SNAPSHOT = 16 << 20            # bytes: a snapshot of 256 queues is well below this
_NAME = re.compile(r"capture-([1-9][0-9]{0,9})\.json")


def run_dir():
    if os.environ.get("WIRECAP_RUN_DIR"):
        return os.environ["WIRECAP_RUN_DIR"]
    if os.geteuid() == 0:
        return "/run/wirecap"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "wirecap")
    return f"/tmp/wirecap-{os.geteuid()}"


def _open_private(path, create):
    """A descriptor on ``path``, a directory we own that nobody else may enter (created 0700
    when ``create``); None if it does not exist and ``create`` is false."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise WirecapError(f"stats directory {path}: {e.strerror}; set WIRECAP_RUN_DIR to "
                               f"a directory of yours") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise WirecapError(f"stats directory {path}: not a directory of yours ({e.strerror}): "
                           f"remove it, or set WIRECAP_RUN_DIR to a directory of yours") from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        owner = "you" if st.st_uid == os.geteuid() else f"uid {st.st_uid}"
        raise WirecapError(f"stats directory {path} is owned by {owner} with mode "
                           f"{stat.S_IMODE(st.st_mode):o}: it must be yours with mode 700 "
                           f"(`chmod 700 {path}` if it is yours, else remove it or set "
                           f"WIRECAP_RUN_DIR)")
    return fd


class Publisher:
    """Writes the engine's snapshot where `wirecap stats` finds it (atomically). Publishing is
    a convenience: a directory that cannot be used gives one warning, never a failed capture."""

    def __init__(self, engine, interval=1.0):
        self.engine, self.interval, self.next = engine, interval, 0.0
        self.name = f"capture-{os.getpid()}.json"
        self.tmp = self.name + ".tmp"
        try:
            self.dir = _open_private(run_dir(), create=True)
        except WirecapError as e:
            print(f"wirecap capture: warning: no live stats: {e}", file=sys.stderr)
            self.dir = None

    def maybe(self, extra, force=False):
        now = time.monotonic()
        if self.dir is None or (now < self.next and not force):
            return
        self.next = now + self.interval
        doc = stats.snapshot(self.engine).to_dict()
        doc.update(extra, pid=os.getpid())
        data = json.dumps(doc).encode()
        self._unlink(self.tmp)          # ours, left by a write an exception cut short
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(self.tmp, self.name, src_dir_fd=self.dir, dst_dir_fd=self.dir)
        finally:
            self._unlink(self.tmp)

    def _unlink(self, name):
        try:
            os.unlink(name, dir_fd=self.dir)
        except FileNotFoundError:
            pass

    def close(self):
        if self.dir is not None:
            self._unlink(self.tmp)
            self._unlink(self.name)
            os.close(self.dir)
            self.dir = None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _valid(doc):
    """Whether ``doc`` has the shape of a published snapshot (stats renders it)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("t"), (int, float)):
        return False
    queues, devices = doc.get("queues"), doc.get("devices")
    if not isinstance(queues, list) or not queues or not isinstance(devices, list):
        return False
    keys = {"queue", *stats.QUEUE_COLUMNS}
    return all(isinstance(q, dict) and keys <= set(q) and
               all(isinstance(q[k], (int, str)) for k in keys) for q in queues) and \
        all(isinstance(d, dict) for d in devices)


def _read(dfd, name):
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dfd)
    except OSError:
        return None                     # being replaced right now, or a planted link
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > MAX_SNAPSHOT:
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            doc = json.loads(f.read(MAX_SNAPSHOT + 1))
        except (ValueError, UnicodeDecodeError):
            return None
    return doc if _valid(doc) else None


def published():
    """Snapshots of running captures, by pid (stale files of dead ones are removed; files
    that are not snapshots are skipped)."""
    out = {}
    dfd = _open_private(run_dir(), create=False)
    if dfd is None:
        return out
    try:
        for name in sorted(os.listdir(dfd)):
            m = _NAME.fullmatch(name)
            if m is None:
                continue
            pid = int(m.group(1))
            if not _alive(pid):
                try:
                    os.unlink(name, dir_fd=dfd)
                except OSError:
                    pass
                continue
            doc = _read(dfd, name)
            if doc is not None:
                out[pid] = doc
    finally:
        os.close(dfd)
    return out


def add_commands(sub):
    s = sub.add_parser("stats", help="live per-queue counters of running captures")
    s.add_argument("--json", action="store_true", help="print one JSON snapshot and exit")
    s.add_argument("--once", action="store_true", help="print the table once and exit")
    s.add_argument("--wide", action="store_true",
                   help="every column (by default the table fits 100 characters)")
    s.add_argument("--interval", type=float, default=1.0, help="refresh period in seconds")
    s.add_argument("--pid", type=int, help="only the capture of this process")
    s.set_defaults(func=show_stats)


def show_stats(args):
    if not args.interval > 0 or args.interval == float("inf"):
        raise WirecapError(f"--interval {args.interval}: give seconds > 0")
    while True:
        snaps = published()
        if args.pid is not None:
            snaps = {p: s for p, s in snaps.items() if p == args.pid}
        if not snaps:
            who = f"process {args.pid}" if args.pid is not None else "any process"
            raise WirecapError(f"no running capture of {who} publishes stats in {run_dir()}: "
                               f"start one with `wirecap capture -i DEVICE ...`")
        if args.json:
            json.dump(snaps, sys.stdout, indent=2)
            print()
            return 0
        text = []
        for pid, doc in snaps.items():
            snap = stats.Snapshot(doc["t"], doc["queues"], doc["devices"])
            kept = doc.get("delivered", 0)
            text.append(f"capture pid {pid}  ({time.strftime('%H:%M:%S', time.localtime(doc['t']))}"
                        f", {kept if isinstance(kept, int) else 0:,} packets kept)\n"
                        f"{snap.table(wide=args.wide)}\n")
        if args.once or not sys.stdout.isatty():
            print("\n".join(text))
            return 0
        sys.stdout.write("\033[H\033[J" + "\n".join(text))
        sys.stdout.flush()
        time.sleep(args.interval)
