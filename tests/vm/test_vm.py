"""The guest's scenarios, seen from the host: one boot runs them all (tests/vm/harness.py);
each scenario file is one test here, which fails with the guest's own report."""
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import harness

pytestmark = pytest.mark.vm
SCENARIOS = sorted(p.name for p in harness.GUEST.glob("scenario_*.py"))


@pytest.fixture(scope="session")
def guest(tmp_path_factory):
    reason = harness.missing()
    if reason:
        pytest.skip(f"cannot run the VM tests: {reason}")
    out = Path(os.environ.get("WIRECAP_VM_OUT") or tmp_path_factory.mktemp("vm"))
    result = harness.run(SCENARIOS, out, float(os.environ.get("WIRECAP_VM_TIMEOUT", harness.TIMEOUT)))
    junit = out / "junit.xml"
    assert not result["timed_out"], f"the guest overran; its console:\n{result['console'][-6000:]}"
    assert junit.exists(), f"the guest ran no scenario; its console:\n{result['console'][-6000:]}"
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        problems = [f"{child.tag}: {child.get('message', '')}\n{child.text or ''}" for child in case
                    if child.tag in ("failure", "error", "skipped")]
        cases[(case.get("classname"), case.get("name"))] = problems
    info = json.loads((out / "guest.json").read_text())
    print(f"\nguest: kernel {info['kernel']}, {info['seconds']} s inside "
          f"({info['seconds_to_pytest']} s to pytest), {result['seconds']:.0f} s with boot; "
          f"results in {out}")
    return cases


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_passes_in_the_guest(guest, scenario):
    module = scenario.removesuffix(".py")
    ran = {name: problems for (cls, name), problems in guest.items() if cls.split(".")[-1] == module}
    assert ran, f"no test of {scenario} ran in the guest"
    failed = {name: problems for name, problems in ran.items() if problems}
    assert not failed, "\n".join(f"{name}:\n" + "\n".join(p) for name, p in failed.items())
