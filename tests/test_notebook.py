"""notebooks/ring_stats.ipynb runs headless, top to bottom, with a real kernel."""
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "ring_stats.ipynb")


def test_ring_stats_notebook_runs_and_draws():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    client.execute()                    # raises CellExecutionError on any failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 2                               # occupancy grid and drops
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert html.count("<table") >= 3                    # two snapshots and the summary
    assert "capture_queue" in html and "nic_dropped" in html
