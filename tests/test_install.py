"""A regular (non-editable) install finds the bundled AOIs and sample tiles, from any folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("geo_evidence-*.whl")
    return whl


def test_wheel_carries_the_bundled_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "geo_evidence/_bundled/aoi/tumangang.geojson" in names
    assert "geo_evidence/_bundled/sample_tiles/tumangang/catalog.json" in names
    assert any(n.startswith("geo_evidence/_bundled/sample_tiles/tumangang/") and n.endswith(".tif") for n in names)


def test_installed_package_lists_aois_and_scenes_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    code = (
        "import json, geo_evidence\n"
        "from geo_evidence.aoi import list_aois, load_aoi\n"
        "from geo_evidence.imagery import default_scene_source, list_scenes\n"
        "aoi = load_aoi('tumangang')\n"
        "scenes = list_scenes(default_scene_source('tumangang'), aoi=aoi)\n"
        "print(json.dumps({'pkg': geo_evidence.__file__, 'aois': list_aois(), 'scenes': len(scenes),\n"
        "                  'source': str(default_scene_source('tumangang'))}))\n"
    )
    # Only the unpacked wheel on the path (first), run from an unrelated folder.
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert info["pkg"].startswith(str(site))
    assert info["source"].startswith(str(site))
    assert {"tumangang", "khasan"} <= set(info["aois"])
    assert info["scenes"] >= 16
