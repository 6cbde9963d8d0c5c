"""The committed SIMULATED sample tiles: readable, honest about being simulated, in sync
with the simulator, and reproducing the claim scenario."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from geo_evidence._resources import sample_tiles_dir
from geo_evidence.aoi import load_aoi
from geo_evidence.simulate import simulate_scene
from geo_evidence.simulate.samples import SAMPLE_AOIS, readme_text, sample_specs, sample_truth_text

ROOT = sample_tiles_dir()
SUMMIT = dt.datetime(2023, 9, 13, tzinfo=dt.timezone.utc)


def _items(aoi_id: str) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(ROOT / aoi_id / "catalog.json"))
    return sorted(catalog.get_items(recursive=True), key=lambda it: it.datetime)


def _truth(item: pystac.Item) -> dict:
    return json.loads(Path(item.assets["truth"].get_absolute_href()).read_text())


def _by_type(fc: dict) -> dict:
    out: dict[str, int] = {}
    for f in fc["features"]:
        out[f["properties"]["type"]] = out.get(f["properties"]["type"], 0) + 1
    return out


@pytest.mark.parametrize("aoi_id", SAMPLE_AOIS)
def test_catalog_is_self_contained_and_says_simulated(aoi_id):
    items = _items(aoi_id)
    assert len(items) == len(sample_specs(aoi_id))
    for item in items:
        assert item.properties["simulated"] is True
        for asset in item.assets.values():
            assert asset.href.startswith("./"), "hrefs must be relative so the folder can move"
            assert Path(asset.get_absolute_href()).is_file()
        image = Path(item.assets["image"].get_absolute_href())
        assert item.assets["image"].extra_fields["file:checksum"] == "1220" + hashlib.sha256(image.read_bytes()).hexdigest()
    for path in (ROOT / aoi_id).rglob("*.json"):
        assert str(ROOT) not in path.read_text(), f"{path} holds an absolute path"


@pytest.mark.parametrize("aoi_id", SAMPLE_AOIS)
def test_committed_truth_matches_the_simulator_byte_for_byte(aoi_id):
    aoi = load_aoi(aoi_id)
    for spec in sample_specs(aoi_id):
        committed = (ROOT / aoi_id / spec["scene_id"] / f"{spec['scene_id']}.truth.geojson").read_text(encoding="utf-8")
        assert sample_truth_text(spec, aoi) == committed, f"{spec['scene_id']}: run `geoev simulate samples`"


def test_tumangang_series_reproduces_the_claim_scenario():
    items = _items("tumangang")
    assert len(items) >= 16
    counts = {it.datetime.date().isoformat(): len(_truth(it)["features"]) for it in items}
    pre = [len(_truth(it)["features"]) for it in items if it.datetime < SUMMIT]
    assert len(pre) >= 10 and max(pre) <= 20 and max(pre) >= 18
    assert min(it.datetime for it in items).year == 2018
    assert counts["2023-10-05"] == 73
    assert 20 < counts["2023-09-20"] < counts["2023-09-28"] < 73
    june = next(it for it in items if it.datetime.date() == dt.date(2024, 6, 17))
    assert _by_type(_truth(june)) == {"gondola": 175, "box": 14, "tank": 66, "locomotive": 6}
    # The STAC item's own summary agrees with its truth file.
    for it in items:
        assert it.properties["sim:n_cars"] == len(_truth(it)["features"])


def test_series_varies_resolution_season_clouds_and_registration():
    items = _items("tumangang")
    gsds = sorted({it.properties["gsd"] for it in items})
    assert 0.5 in gsds and 3.0 in gsds and 10.0 in gsds
    assert sum(it.properties["gsd"] == 0.5 for it in items) >= 14
    assert any(it.properties["sim:season"] == "snow" for it in items)
    cloudy = [it for it in items if "cloud_mask" in it.assets]
    assert cloudy, "one partly cloudy scene with a cloud mask"
    assert any(not f["properties"]["visible"] for it in cloudy for f in _truth(it)["features"])
    shifts = [np.hypot(*it.properties["sim:misregistration_m"]) for it in items]
    assert max(shifts) <= 5.0 * np.sqrt(2) and len({round(s, 2) for s in shifts}) > 5
    assert len({it.properties["view:sun_elevation"] for it in items}) > 5
    for it in items:
        # Late morning local time: around 02:00 UTC.
        assert dt.time(1, 30) <= it.datetime.time() <= dt.time(2, 30)


def test_cog_tags_match_the_items():
    for aoi_id in SAMPLE_AOIS:
        for it in _items(aoi_id):
            with rasterio.open(it.assets["image"].get_absolute_href()) as src:
                assert src.tags()["TIFFTAG_DATETIME"] == it.datetime.strftime("%Y:%m:%d %H:%M:%S")
                assert src.tags()["SIMULATED"] == "yes"
                assert src.crs.to_epsg() == 32652
                assert src.res[0] == pytest.approx(it.properties["gsd"])


def test_total_size_stays_small():
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert total <= 40 * 1024 * 1024


def test_readme_says_simulated_and_lists_every_scene():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text == readme_text()
    assert "SIMULATED" in text and "geoev simulate samples" in text
    for aoi_id in SAMPLE_AOIS:
        for spec in sample_specs(aoi_id):
            assert spec["scene_id"] in text


def test_rerendered_scene_has_the_committed_pixels():
    """The 10 m scene is stored losslessly: a re-render must give exactly its pixels."""
    spec = next(s for s in sample_specs("tumangang") if s["kwargs"]["gsd_m"] == 10.0)
    scene = simulate_scene(load_aoi("tumangang"), **spec["kwargs"])
    path = ROOT / "tumangang" / spec["scene_id"] / f"{spec['scene_id']}.tif"
    with rasterio.open(path) as src:
        committed = np.moveaxis(src.read(), 0, -1)
        mask = src.dataset_mask() > 0
    assert committed.shape == scene.image.shape
    assert np.array_equal(mask, scene.valid)
    assert np.array_equal(committed, scene.image)


def test_samples_command_regenerates_identical_files(tmp_path):
    """`geoev simulate samples` rebuilds an AOI's tiles byte for byte, leaving no temp folders."""
    from click.testing import CliRunner

    from geo_evidence.cli import main

    res = CliRunner().invoke(main, ["simulate", "samples", "--out", str(tmp_path), "--aoi", "khasan"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["khasan"]
    fresh = {p.relative_to(tmp_path / "khasan"): p.read_bytes() for p in (tmp_path / "khasan").rglob("*") if p.is_file()}
    committed = {p.relative_to(ROOT / "khasan"): p.read_bytes() for p in (ROOT / "khasan").rglob("*") if p.is_file()}
    assert sorted(fresh) == sorted(committed)
    changed = [str(k) for k in fresh if fresh[k] != committed[k]]
    assert not changed, f"regenerate with `geoev simulate samples`: {changed}"
    bad = CliRunner().invoke(main, ["simulate", "samples", "--out", str(tmp_path), "--aoi", "nowhere"])
    assert bad.exit_code == 2 and "--aoi" in bad.output
