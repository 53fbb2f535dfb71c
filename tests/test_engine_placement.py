"""Where the engine's threads run: capture threads on their CPUs, the application's thread
(the one that calls start()) on the others, as DPDK pins its main lcore."""
import os
import threading

import pytest

from wirecap import sim
from wirecap.engine import Engine
from wirecap.errors import WirecapError

ALLOWED = os.sched_getaffinity(0)
two_cpus = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs 2 CPUs to keep one for the "
                              "application")


@pytest.fixture(autouse=True)
def fresh_ports():
    sim.reset()
    yield
    sim.reset()
    os.sched_setaffinity(0, ALLOWED)


@two_cpus
def test_start_moves_the_calling_thread_off_the_capture_cpus_and_stop_gives_them_back():
    cap = max(ALLOWED)
    with Engine("sim:0", queues=2, capture_cpus=[cap]) as eng:     # starts it
        assert os.sched_getaffinity(0) == ALLOWED - {cap}
        eng.stop()
        assert os.sched_getaffinity(0) == ALLOWED


@two_cpus
def test_stop_from_another_thread_restores_the_starting_thread():
    eng = Engine("sim:0", capture_cpus=[max(ALLOWED)])
    eng.start()
    t = threading.Thread(target=eng.stop)
    t.start()
    t.join()
    assert os.sched_getaffinity(0) == ALLOWED
    eng.close()


def test_app_cpus_false_leaves_the_thread_alone():
    with Engine("sim:0", capture_cpus=[max(ALLOWED)], app_cpus=False) as eng:
        assert os.sched_getaffinity(0) == ALLOWED


def test_inline_capture_has_no_capture_cpus_to_avoid():
    with Engine("sim:0", threads=False) as eng:
        assert os.sched_getaffinity(0) == ALLOWED


def test_explicit_app_cpus_are_used():
    cpu = min(ALLOWED)
    with Engine("sim:0", capture_cpus=[max(ALLOWED)], app_cpus=[cpu]) as eng:
        assert os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == ALLOWED       # close() stops


@pytest.mark.parametrize("bad", [[4096], [], "x", [True]])
def test_bad_app_cpus_are_one_clear_error(bad):
    with pytest.raises(WirecapError, match="app_cpus"):
        Engine("sim:0", app_cpus=bad)
