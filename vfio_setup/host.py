"""The host as vfio_setup sees it: sysfs, /proc, /dev, /etc and /run under configurable roots.

Every change to the system goes through `Host.write`, `Host.write_file` or `Host.run`, so that
a dry run prints exactly those changes and makes none, and tests can emulate the kernel by
overriding them.
"""
import os
import shlex
import subprocess
from pathlib import Path

from .errors import WirecapError

REAL_SYSFS = Path("/sys")
# The group that kernel/etc/udev gives access to /dev/vfio/*: its members capture without root.
WIRECAP_GROUP = "wirecap"


class Host:
    """One machine: the real one (sysfs at /sys) or a fake tree built by tests."""

    def __init__(self, sysfs=REAL_SYSFS, root="/", *, dry_run=False, netns=None, out=print,
                 euid=None):
        self.sysfs = Path(sysfs)
        self.root = Path(root)
        self.dry_run = dry_run
        self.netns = netns          # network namespace whose interfaces we inspect (None: ours)
        self.out = out
        self.euid = os.geteuid() if euid is None else euid

    @classmethod
    def from_sysfs_root(cls, sysfs_root, **kwargs):
        """A host whose sysfs is `sysfs_root`; a fake tree keeps proc/, dev/, etc/, run/ beside it."""
        sysfs = Path(sysfs_root)
        root = Path("/") if sysfs == REAL_SYSFS else sysfs.parent
        return cls(sysfs, root, **kwargs)

    @property
    def fake(self):
        return self.sysfs != REAL_SYSFS

    def sys(self, *parts):
        return self.sysfs.joinpath(*parts)

    def path(self, *parts):
        """A path outside sysfs, e.g. host.path("proc", "mounts")."""
        return self.root.joinpath(*parts)

    @staticmethod
    def read(path, default=None):
        try:
            return Path(path).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return default

    def group_id(self, name):
        """The gid of group `name` in the host's /etc/group, or None."""
        for line in (self.read(self.path("etc/group"), "") or "").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name:
                return int(fields[2])
        return None

    def require_root(self, action):
        if self.euid != 0 and not self.dry_run:
            raise WirecapError(
                f"{action} changes the system (sysfs, /etc, /run), which only root may do. "
                f"Fix: run it as root (sudo wirecap ...), or add --dry-run to see the writes.")

    def write(self, path, text):
        """One write to a sysfs attribute (a single write(2), as sysfs expects)."""
        if self.dry_run:
            self.out(f"would write {text!r} to {path}")
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def write_file(self, path, content):
        """Create or replace a configuration file (under /etc, /run)."""
        path = Path(path)
        if self.dry_run:
            self.out(f"would write {path}:")
            for line in content.splitlines():
                self.out(f"    {line}")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".wirecap-tmp")
        tmp.write_text(content)
        os.replace(tmp, path)     # readers never see a half-written file

    def mkdir(self, path):
        path = Path(path)
        if path.is_dir():
            return
        if self.dry_run:
            self.out(f"would create directory {path}")
            return
        path.mkdir(parents=True)

    def remove_file(self, path):
        if not Path(path).exists():
            return
        if self.dry_run:
            self.out(f"would remove {path}")
            return
        Path(path).unlink(missing_ok=True)

    def run(self, argv):
        """Run a command that changes the system; returns the CompletedProcess."""
        command = shlex.join(argv)
        if self.dry_run:
            self.out(f"would run: {command}")
            return subprocess.CompletedProcess(argv, 0, "", "")
        if self.fake:
            raise WirecapError(
                f"not running `{command}`: --sysfs-root points at a fake tree ({self.sysfs}), "
                f"and the command would change the real machine. Fix: use --dry-run with a fake tree.")
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
