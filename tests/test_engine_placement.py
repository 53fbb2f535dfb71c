"""Where the engine's threads run: capture threads on their CPUs, the application's thread
(the one that calls start()) on the others, as DPDK pins its main lcore."""
import os
import subprocess
import sys
import threading

import pytest

from wirecap import sim
from wirecap.engine import Engine
from wirecap.errors import WirecapError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


# ----------------------------------------------------------------------------- rt_priority
def capture_thread_ids(eng):
    return [t.native_id for t in eng._threads]


@two_cpus
@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root (CAP_SYS_NICE)")
def test_rt_priority_puts_each_capture_thread_under_sched_fifo():
    with Engine("sim:0", queues=2, capture_cpus=[max(ALLOWED)], rt_priority=7) as eng:
        tids = capture_thread_ids(eng)
        assert tids
        for tid in tids:
            assert os.sched_getscheduler(tid) == os.SCHED_FIFO
            assert os.sched_getparam(tid).sched_priority == 7
        assert os.sched_getscheduler(0) == os.SCHED_OTHER     # the application's stays


@two_cpus
def test_without_rt_priority_capture_threads_are_scheduled_as_usual():
    with Engine("sim:0") as eng:
        assert all(os.sched_getscheduler(t) == os.SCHED_OTHER for t in capture_thread_ids(eng))


@pytest.mark.parametrize("bad, says", [(0, "from 1 to"), (100, "from 1 to"), ("5", "from 1 to"),
                                       (2.5, "from 1 to"), (True, "from 1 to")])
def test_bad_rt_priority_is_one_clear_error(bad, says):
    with pytest.raises(WirecapError, match=says):
        Engine("sim:0", rt_priority=bad)


def test_rt_priority_needs_capture_threads():
    with pytest.raises(WirecapError, match="threads=False"):
        Engine("sim:0", threads=False, rt_priority=5)


def test_rt_priority_refuses_capture_threads_on_every_cpu():
    with pytest.raises(WirecapError, match="leave one to the application"):
        Engine("sim:0", capture_cpus=[ALLOWED], rt_priority=5)


@two_cpus
@pytest.mark.skipif(os.geteuid() != 0, reason="drops a capability root has")
def test_rt_priority_refused_by_the_kernel_starts_nothing():
    # without CAP_SYS_NICE (and RLIMIT_RTPRIO 0) sched_setscheduler fails: start() must say so
    # in one line and leave no capture thread running
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))\n"
            "from wirecap.engine import Engine\nfrom wirecap.errors import WirecapError\n"
            "eng = Engine('sim:0', rt_priority=5)\n"
            "try:\n    eng.start()\nexcept WirecapError as e:\n"
            "    print('ERR', e, len(eng._threads), eng._running)\n    eng.close()\n")
    p = subprocess.run(["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice",
                        sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0, p.stderr
    assert "ERR capture thread 0" in p.stdout and "real-time priority 5" in p.stdout
    assert p.stdout.strip().endswith("0 False")
