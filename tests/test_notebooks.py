"""The analyst notebooks run top to bottom in a real Jupyter kernel (nbclient + ipykernel).

The kernel is this interpreter (a kernelspec written into tmp_path), its working folder is
tmp_path and every output goes to GEOEV_NOTEBOOK_OUT under tmp_path: nothing is written
into the repository. The committed notebooks must carry no outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
REPO = NOTEBOOKS.parent

pytestmark = pytest.mark.slow


def _kernel(tmp_path: Path, monkeypatch) -> str:
    spec_dir = tmp_path / "jupyter" / "kernels" / "geoev-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "geo_evidence test kernel", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core otherwise warns about its path migration
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    return "geoev-test"


def _repo_state() -> tuple:
    # What a stray relative path in a notebook would create: files beside the notebooks or a
    # new entry at the top of the checkout (e.g. geoev-out/). Other folders are left out
    # because other tools may legitimately be rebuilding them while the test runs.
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "notebooks"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout
    return untracked, sorted(p.name for p in REPO.iterdir())


def _run(name: str, tmp_path: Path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name} is committed with outputs; strip them"
    out = tmp_path / "out"
    monkeypatch.setenv("GEOEV_NOTEBOOK_OUT", str(out))
    before = _repo_state()
    client = NotebookClient(nb, kernel_name=_kernel(tmp_path, monkeypatch), timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert _repo_state() == before, "the notebook wrote into the repository"
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs) + "\n".join(
        str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    return nb, out, text, images


def test_tumangang_walkthrough(tmp_path, monkeypatch):
    nb, out, text, images = _run("tumangang_claims.ipynb", tmp_path, monkeypatch)
    assert len(images) >= 3  # detections, series chart, evidence panels
    assert "railcars (" in text  # the one-scene count with its interval
    counts = json.loads((out / "tumangang" / "counts.json").read_text())
    assert counts["simulated"] is True and len(counts["records"]) >= 10
    verdicts = json.loads((out / "tumangang" / "verdicts.json").read_text())["verdicts"]
    assert {v["verdict"] for v in verdicts} <= {"supported", "contradicted", "inconclusive", "not_assessable"}
    for v in verdicts:
        assert v["claim_id"] in text and v["verdict"] in text


def test_new_aoi(tmp_path, monkeypatch):
    nb, out, text, images = _run("new_aoi.ipynb", tmp_path, monkeypatch)
    assert len(images) >= 2
    assert (out / "demo-yard.geojson").is_file() and (out / "demo-yard.claims.json").is_file()
    (rec,) = json.loads((out / "demo-yard" / "counts.json").read_text())["records"]
    assert rec["simulated"] is True and rec["status"] in ("ok", "partial") and rec["count"] is not None
    assert "counted" in text and "truth" in text
    assert any(w in text for w in ("supported", "contradicted", "inconclusive"))
