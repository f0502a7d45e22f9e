"""The quickstart notebook runs end to end in the repository's interpreter and shows its tour."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
#: Printed by a cell the test appends, so the kernel's interpreter can be compared with ours.
EXECUTABLE_MARK = "kernel executable: "


def _texts(nb: nbformat.NotebookNode) -> list[str]:
    """Every text a code cell showed: streams and the plain-text form of rich outputs."""
    out = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                out.append(output["text"])
            elif "data" in output:
                out.append(output["data"].get("text/plain", ""))
    return out


def test_notebook_is_stored_without_outputs() -> None:
    # Outputs (tables, base64 plots, temp paths) would make every diff of the notebook noise.
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    # Overrides go in a cell after the parameter cell, as papermill does, so the stored
    # defaults are what the test runs apart from where files go.
    work = tmp_path_factory.mktemp("quickstart")
    nb.cells.insert(params[0] + 1, nbformat.v4.new_code_cell(f"WORK_DIR = {str(work)!r}"))
    nb.cells.append(nbformat.v4.new_code_cell(f"import sys\nprint({EXECUTABLE_MARK!r} + sys.executable)"))
    # "python3" is ipykernel's kernel, which jupyter_client starts with sys.executable, i.e.
    # this venv's interpreter and the Radar installed in it; the appended cell checks that.
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    return nb


@pytest.mark.timeout(600)
def test_notebook_runs_in_this_interpreter(executed: nbformat.NotebookNode) -> None:
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    shown = [t.removeprefix(EXECUTABLE_MARK).strip() for t in _texts(executed) if t.startswith(EXECUTABLE_MARK)]
    assert shown and os.path.samefile(shown[0], sys.executable), shown


@pytest.mark.timeout(600)
def test_notebook_shows_the_tour(executed: nbformat.NotebookNode) -> None:
    texts = _texts(executed)

    def shown(*words: str) -> bool:
        return any(all(w in t for w in words) for t in texts)

    # Validation: per-table counts and identity merges.
    assert shown("leads", "accepted", "rejected")
    assert shown("records linked through", "email")
    # Comparison tables: the model against each target's baselines.
    assert shown("model", "auc", "channel_rate", "logistic")
    assert shown("model", "auc", "rf_rule", "bgnbd")
    assert shown("model", "c_index", "stage_cif", "cox")
    # Explanations: two SHAP figures and Radar's sentences with their arrows.
    images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2
    assert shown("(↑)") or shown("(↓)")
    # MLflow: the command to browse the store and the registered models with aliases.
    assert shown("mlflow ui --backend-store-uri sqlite:///")
    assert shown("radar-purchase_probability", "champion")
