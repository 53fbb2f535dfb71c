"""notebooks/ring_stats.ipynb runs headless, top to bottom, with a real kernel; it uses only
the public API, keeps warnings, labels every axis and draws the offloading threshold T·R."""
import os
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "ring_stats.ipynb")

# run after the notebook's own cells, in its kernel: what its figures show
CHECK_FIGURES = """
unlabelled = [(fig, i) for fig in (occupancy, drops) for i, ax in enumerate(fig.axes)
              if not ax.get_xlabel() or not ax.get_ylabel()]
assert not unlabelled, f"axes without a label: {unlabelled}"
advanced = occupancy.axes[1]            # top right: the advanced run's capture queues
assert any(list(line.get_ydata()) == [T * R, T * R] for line in advanced.get_lines()), \\
    "no line at T·R on the advanced run's capture-queue plot"
print("figures checked")
"""


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_ring_stats_notebook_uses_public_api_and_keeps_warnings():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(c.source for c in code_cells(nb))
    private = re.findall(r"(?:\.|\bimport |\bfrom \S+ import )_[A-Za-z]\w*", source)
    assert not private, f"the notebook reaches into private names: {private}"
    assert ".nics[" not in source and ".model" not in source
    assert "simplefilter" not in source and "filterwarnings" not in source


def test_ring_stats_notebook_runs_and_draws():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK_FIGURES))
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    client.execute()                    # raises CellExecutionError on any failing cell
    outputs = [o for c in code_cells(nb) for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "figures checked" in "".join(o.get("text", "") for o in outputs)
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 2                               # occupancy grid and drops
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert html.count("<table") >= 3                    # two snapshots and the summary
    assert "capture_queue" in html and "nic_dropped" in html and "drop_%" in html
