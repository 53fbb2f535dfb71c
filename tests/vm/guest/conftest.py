# The scenarios' fixtures; their helpers are in guestlib (a module of its own: several
# conftest.py files share the name "conftest", so none of them is importable by it).
import pytest

from guestlib import bound, hugepage_pool  # noqa: F401
from wirecap import _vfio


@pytest.fixture(autouse=True)
def no_device_left_open():
    """A device a failed test left open would make the kernel wait for it at the next unbind
    (vfio-pci's remove blocks until the group is released): close it, and fail the test."""
    yield
    left = list(_vfio._open_devices.values())
    for dev in left:
        dev.close()
    assert not left, f"left open: {', '.join(d.address for d in left)}"


def pytest_runtest_logreport(report):
    """Each failure on the console at once: the report at the end may never come if the guest
    runs out of time."""
    if report.failed:
        print(f"\n--- {report.nodeid} ({report.when}) failed:\n{report.longreprtext}\n---", flush=True)
