"""The tutorials (docs/tutorials/*.py, Jupytext percent format) run: every cell, in order, in a Jupyter kernel.

Each notebook is read with jupytext and executed with nbclient, as mkdocs-jupyter does when
it builds the site, so a tutorial that the site shows is one that runs. The notebooks
check their own numbers with ``assert`` cells against truths they compute independently
(mode masses counted with plain NumPy from the stored positions, the initial mean
position from the initial masses, the file read back eagerly and lazily); a failing
assertion fails the cell and so this test. Sizes are the notebooks' defaults (small);
the environment variables they read run them bigger by hand.
"""

import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TUTORIALS = sorted((pathlib.Path(__file__).resolve().parents[1] / "docs" / "tutorials").glob("[0-9]*.py"))


def test_three_tutorials_exist():
    assert len(TUTORIALS) >= 3, TUTORIALS


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("WGFSIM_TUTORIAL_OUT", str(tmp_path))
    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name}: no code cells"
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first failing cell
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert all(c.get("execution_count") for c in code), "a code cell did not run"
