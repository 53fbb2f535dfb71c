import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
# our own tests never touch an offset where no 82599 register is: make that an error
os.environ.setdefault("WIRECAP_MODEL_STRICT", "1")


@pytest.fixture
def dev():
    """A fresh model port (not the process-wide sim:N registry) with its wire."""
    from wirecap.sim import Device, Wire
    d = Device(0)
    d.wire = Wire(d)
    yield d
    d.wire.stop()


@pytest.fixture
def make_driver(dev):
    """Build and initialize the independent datasheet driver on ``dev``."""
    from datasheet_driver import DatasheetDriver

    def make(**kw):
        drv = DatasheetDriver(dev, **kw)
        drv.init()
        return drv
    return make


@pytest.fixture
def fresh_model():
    """Power-on model ports for each test (wirecap.sim.reset closes what drove the old ones)."""
    from wirecap import sim
    sim.reset()
    yield
