"""The model needs nothing of the host: `wirecap demo` and `wirecap capture -i sim:0` run as an
ordinary user under the default 8 MiB locked-memory limit (issue 16, item 6)."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WIRECAP = Path(sys.executable).with_name("wirecap")
DEFAULT_MEMLOCK = 8 << 20               # what Linux gives a login by default


def as_nobody(*argv, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "WIRECAP_RUN_DIR": str(tmp_path / "run")}
    return subprocess.run(["prlimit", f"--memlock={DEFAULT_MEMLOCK}", "setpriv", "--reuid=nobody",
                           "--regid=nogroup", "--clear-groups", str(WIRECAP), *argv],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)


@pytest.fixture
def nobody_dir():
    """A directory the user may write (pytest's own sit in a directory private to root)."""
    if os.geteuid() != 0:
        pytest.skip("becoming another user needs root")
    if not os.access(WIRECAP, os.X_OK):
        pytest.skip(f"no {WIRECAP}: `make build` installs it")
    path = Path(tempfile.mkdtemp(prefix="wirecap-nobody-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


@pytest.mark.root
def test_demo_as_a_user_under_the_default_memlock_limit(nobody_dir):
    done = as_nobody("demo", "--frames", "20000", "--queues", "2", "--burst", "2000", "--chunks", "20",
                     tmp_path=nobody_dir)
    assert done.returncode == 0, done.stderr
    assert "setup --persist" not in done.stdout + done.stderr and "20,000" in done.stdout


@pytest.mark.root
def test_capture_from_the_model_as_a_user_under_the_default_memlock_limit(nobody_dir):
    out = nobody_dir / "out.pcap"
    done = as_nobody("capture", "-i", "sim:0", "--traffic", "count=300,size=128", "-c", "300", "-q",
                     "-w", str(out), tmp_path=nobody_dir)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size == 24 + 300 * (16 + 124)     # the NIC strips the 4-byte FCS
