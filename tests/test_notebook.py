"""docs/example.ipynb runs from top to bottom and shows what it says it shows.

The notebook is executed as a user runs it: by a Jupyter kernel (nbclient, the
``python3`` kernel of this interpreter), in a temporary working folder, with no
display. It is stored without outputs (a stored output could pass for a result).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "example.ipynb"
#: Seconds one cell may run (the fine-tune cell trains an epoch on a loaded 2-core machine).
CELL_TIMEOUT_S = 600


def _installed_python3():
    """The installed ``python3`` kernelspec, or None."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return None


def _kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed=_installed_python3) -> str:
    """``python3``, made to run this interpreter when no such kernel is installed (a kernelspec in a temp folder)."""
    spec = installed()
    # jupyter_client runs a spec whose argv starts with "python" with sys.executable itself.
    if spec is None or spec.argv[0] not in ("python", "python3", sys.executable):
        folder = tmp_path / "jupyter" / "kernels" / "python3"
        folder.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec_json = {"argv": argv, "display_name": "Python 3", "language": "python"}
        (folder / "kernel.json").write_text(json.dumps(spec_json), encoding="utf-8")
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


def _text(cell) -> str:
    """Everything a code cell printed or displayed as plain text."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def test_the_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    for cell in code:
        assert not cell.outputs and cell.execution_count is None, f"stored output in cell {cell.id}"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.timeout(CELL_TIMEOUT_S * 2)
def test_the_example_notebook_runs(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=_kernel_name(tmp_path, monkeypatch),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first failing one

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    printed = "\n".join(_text(c) for c in code)
    # Keras' own evaluate of the model given back equals what WeightLab measured.
    assert "same accuracy: True" in printed
    assert "ablated filters still zero: True" in printed
    # The rich displays: the session, a diff, the metrics and the fine-tune result show as HTML.
    html = [o for c in code for o in c.outputs if "text/html" in o.get("data", {})]
    assert len(html) >= 4, f"{len(html)} HTML displays"
    assert any("dense/kernel" in o["data"]["text/html"] for o in html)
    # The histogram cell drew a figure.
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)


@pytest.mark.slow
def test_without_an_installed_kernel_the_test_makes_one_for_this_interpreter(tmp_path, monkeypatch):
    name = _kernel_name(tmp_path, monkeypatch, installed=lambda: None)
    from jupyter_client.kernelspec import KernelSpecManager

    # the kernel Jupyter now finds by that name is the one made here, ahead of any installed one
    found = KernelSpecManager().get_kernel_spec(name)
    assert Path(found.resource_dir) == tmp_path / "jupyter" / "kernels" / name
    assert found.argv[0] == sys.executable
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    nbclient.NotebookClient(nb, kernel_name=name, timeout=CELL_TIMEOUT_S).execute()
    assert _text(nb.cells[0]).strip() == sys.executable
