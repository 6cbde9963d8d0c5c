"""The scene simulator: truth, visibility, determinism, geometry, COG and STAC output.

Rendering tests use a small yard (three straight tracks and a curved one, ~300 m) so the
file stays fast; layout-only checks use the real Tumangang AOI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from pyproj import CRS, Transformer
from shapely import affinity
from shapely.geometry import Polygon, box

from geo_evidence.aoi import load_aoi
from geo_evidence.errors import GeoEvidenceError, SimulationError
from geo_evidence.simulate import simulate_scene, simulate_truth, write_scene

WHEN = dt.datetime(2023, 10, 5, 2, 10, tzinfo=dt.timezone.utc)
UTM52 = CRS.from_epsg(32652)


def _small_aoi_dict() -> dict:
    """A 300 m yard near Tumangang: three straight tracks 5 m apart and one curving away."""
    x0, y0 = 632000.0, 4697800.0
    tracks = {
        "A": [(x0, y0), (x0 + 300, y0)],
        "B": [(x0, y0 + 5), (x0 + 300, y0 + 5)],
        "C": [(x0, y0 + 10), (x0 + 300, y0 + 10)],
        # A curve: 5 m from C at mid-yard, bending away towards both ends.
        "D": [(x0 + x, y0 + 15 + (x - 150) ** 2 / 3000) for x in np.linspace(0, 300, 31)],
    }
    yard = [(x0 - 5, y0 - 8), (x0 + 305, y0 - 8), (x0 + 305, y0 + 30), (x0 - 5, y0 + 30), (x0 - 5, y0 - 8)]
    to_ll = Transformer.from_crs(UTM52, CRS.from_epsg(4326), always_xy=True)

    def ll(coords):
        return [list(to_ll.transform(x, y)) for x, y in coords]

    feats = [{"type": "Feature", "properties": {"kind": "yard"}, "geometry": {"type": "Polygon", "coordinates": [ll(yard)]}}]
    for name, coords in tracks.items():
        feats.append({"type": "Feature", "properties": {"kind": "track", "name": name}, "geometry": {"type": "LineString", "coordinates": ll(coords)}})
    return {"type": "FeatureCollection", "id": "small-yard", "name": "Small test yard", "features": feats}


@pytest.fixture(scope="module")
def small_aoi():
    return load_aoi(_small_aoi_dict())


@pytest.fixture(scope="module")
def tumangang():
    return load_aoi("tumangang")


def _by_type(truth) -> dict:
    out: dict[str, int] = {}
    for t in truth:
        out[t["type"]] = out.get(t["type"], 0) + 1
    return out


# ---------------------------------------------------------------- truth and layout


def test_exact_type_counts_are_what_was_asked(tumangang):
    asked = {"gondola": 175, "box": 14, "tank": 66, "locomotive": 6}
    truth = simulate_truth(tumangang, when=WHEN, cars=asked, seed=3)
    assert _by_type(truth) == asked
    assert len({t["car_id"] for t in truth}) == len(truth)


def test_total_count_is_what_was_asked_and_sizes_are_real(tumangang):
    truth = simulate_truth(tumangang, when=WHEN, n_cars=73, seed=9)
    assert len(truth) == 73
    for t in truth:
        if t["type"] == "gondola":
            assert (t["length_m"], t["width_m"]) == (13.9, 3.16)
        if t["type"] == "tank":
            assert 11.5 <= t["length_m"] <= 12.5 and t["width_m"] == 3.25
        if t["type"] == "box":
            assert 14.7 <= t["length_m"] <= 16.9
        # Every polygon is as long and wide as the car says (area within 3 %).
        area = Polygon(t["polygon_map"]).area
        assert area == pytest.approx(t["length_m"] * t["width_m"], rel=0.03)


def test_cars_do_not_overlap_and_sit_on_their_shifted_track(tumangang):
    dx, dy, rot = 3.5, -2.0, 0.2
    truth = simulate_truth(
        tumangang, when=WHEN, cars={"gondola": 175, "box": 14, "tank": 66, "locomotive": 6},
        misregistration_m=(dx, dy), misregistration_deg=rot, seed=11,
    )
    polys = [Polygon(t["polygon_map"]) for t in truth]
    tree = shapely.STRtree(polys)
    left, right = tree.query(polys, predicate="intersects")
    pairs = [(a, b) for a, b in zip(left, right) if a < b]
    overlap = sum(polys[a].intersection(polys[b]).area for a, b in pairs)
    assert overlap < 1e-6
    centre = tumangang.yard.centroid
    lines = {t.name: t.line for t in tumangang.tracks}
    shift = float(np.hypot(dx, dy))
    for t, poly in zip(truth, polys):
        real = affinity.translate(affinity.rotate(lines[t["track"]], rot, origin=centre), dx, dy)
        # On the real (shifted) track: the car's centre line is the track.
        assert real.distance(poly.centroid) < 0.35
        # ...and off the AOI line by no more than the misregistration (plus rotation at the ends).
        assert lines[t["track"]].distance(poly.centroid) <= shift + 0.6 * np.radians(rot) * 600


def test_coupled_cars_are_about_one_metre_apart(tumangang):
    truth = simulate_truth(tumangang, when=WHEN, n_cars=60, seed=4)
    gaps = []
    by_cut: dict[str, list] = {}
    for t in truth:
        by_cut.setdefault(t["cut_id"], []).append(Polygon(t["polygon_map"]))
    for polys in by_cut.values():
        for a, b in zip(polys, polys[1:]):
            gaps.append(a.distance(b))
    assert gaps and 0.8 < float(np.median(gaps)) < 1.2


def test_too_many_cars_is_refused_with_a_fix(small_aoi):
    with pytest.raises(SimulationError, match="fewer cars"):
        simulate_truth(small_aoi, when=WHEN, n_cars=500, seed=0)
    with pytest.raises(GeoEvidenceError, match="season"):
        simulate_truth(small_aoi, when=WHEN, season="monsoon")


# ---------------------------------------------------------------- visibility


def test_cars_under_a_cloud_bank_are_not_visible(small_aoi):
    xmin, ymin, xmax, ymax = small_aoi.yard.bounds
    bank = box(xmin - 50, ymin - 50, (xmin + xmax) / 2, ymax + 50)  # the western half
    scene = simulate_scene(small_aoi, when=WHEN, n_cars=20, cloud_bank=bank, margin_m=20, seed=2)
    west = [t for t in scene.truth if Polygon(t["polygon_map"]).within(bank.buffer(-10))]
    east = [t for t in scene.truth if Polygon(t["polygon_map"]).disjoint(bank.buffer(10))]
    assert west and east
    assert not any(t["visible"] for t in west)
    assert all(t["visible"] for t in east)
    # The image agrees: the cloud mask covers the bank, and it is bright there.
    assert scene.cloud is not None
    a, _, c = scene.transform[:3]
    c_west = ((xmin + xmax) / 2 - 60 - c) / a
    c_east = (xmax - 20 - c) / a
    assert scene.cloud[:, int(c_west)].mean() > 0.95
    assert scene.cloud[:, int(c_east)].mean() < 0.05
    assert scene.image[:, int(c_west)].mean() > scene.image[:, int(c_east)].mean() + 60


def test_cars_off_the_image_or_on_nodata_are_not_visible(small_aoi):
    xmin, ymin, xmax, ymax = small_aoi.yard.bounds
    # The image stops half-way along the yard: the tracks run past it.
    extent = (xmin - 20, ymin - 20, (xmin + xmax) / 2, ymax + 20)
    truth = simulate_truth(small_aoi, when=WHEN, n_cars=20, extent=extent, seed=5)
    inside = box(*extent)
    outside = [t for t in truth if Polygon(t["polygon_map"]).disjoint(inside)]
    within = [t for t in truth if Polygon(t["polygon_map"]).within(inside)]
    assert outside and within
    assert not any(t["visible"] for t in outside)
    assert all(t["visible"] for t in within)
    # A nodata edge cuts part of the footprint: the image is 0 and invalid there.
    scene = simulate_scene(small_aoi, when=WHEN, n_cars=5, nodata_edge=0.3, margin_m=20, seed=5)
    assert 0.6 < scene.valid.mean() < 0.8
    assert (scene.image[~scene.valid] == 0).all()


# ---------------------------------------------------------------- determinism and GSD


def test_same_seed_same_bytes_other_seed_other_layout(small_aoi):
    kw = dict(when=WHEN, n_cars=15, cloud_cover=0.2, haze=0.1, margin_m=20, gsd_m=1.0)
    a = simulate_scene(small_aoi, seed=7, **kw)
    b = simulate_scene(small_aoi, seed=7, **kw)
    c = simulate_scene(small_aoi, seed=8, **kw)
    assert a.image.tobytes() == b.image.tobytes()
    assert [t["polygon_map"].tobytes() for t in a.truth] == [t["polygon_map"].tobytes() for t in b.truth]
    assert [t["polygon_map"].tobytes() for t in a.truth] != [t["polygon_map"].tobytes() for t in c.truth]
    assert a.image.tobytes() != c.image.tobytes()


def test_gsd_sets_pixel_size_and_transform(small_aoi):
    fine = simulate_scene(small_aoi, when=WHEN, n_cars=10, margin_m=20, gsd_m=0.5, seed=1)
    coarse = simulate_scene(small_aoi, when=WHEN, n_cars=10, margin_m=20, gsd_m=2.0, seed=1)
    assert fine.transform[0] == 0.5 and fine.transform[4] == -0.5
    assert coarse.transform[0] == 2.0 and coarse.transform[4] == -2.0
    assert fine.image.shape[0] == pytest.approx(4 * coarse.image.shape[0], abs=4)
    assert fine.image.shape[1] == pytest.approx(4 * coarse.image.shape[1], abs=4)
    # Same ground: the two images start at the same corner (within a coarse pixel).
    assert abs(fine.transform[2] - coarse.transform[2]) <= 2.0
    assert abs(fine.transform[5] - coarse.transform[5]) <= 2.0


def test_coarse_pixels_blend_cars_with_the_ground(small_aoi):
    """At 10 m a car is a partial-pixel blend: it shifts a pixel's value, never paints it."""
    kw = dict(when=WHEN, margin_m=20, noise=0.0, blur=0.0, sun_elevation=80.0, seed=3)
    diffs = {}
    for gsd in (0.5, 10.0):
        with_cars = simulate_scene(small_aoi, n_cars=20, gsd_m=gsd, **kw).image.astype(float)
        empty = simulate_scene(small_aoi, n_cars=0, gsd_m=gsd, **kw).image.astype(float)
        d = np.abs(with_cars - empty).max(axis=-1)
        diffs[gsd] = d[d > 1]
    assert diffs[10.0].size > 0
    # The strongest change at 10 m is far weaker than a car pixel at 0.5 m.
    assert np.percentile(diffs[10.0], 90) < 0.6 * np.percentile(diffs[0.5], 90)


def test_panchromatic_is_one_band(small_aoi):
    scene = simulate_scene(small_aoi, when=WHEN, n_cars=4, margin_m=10, gsd_m=1.0, panchromatic=True, seed=1)
    assert scene.image.ndim == 2 and scene.image.dtype == np.uint8


# ---------------------------------------------------------------- files


def test_cog_has_overviews_datetime_crs_and_mask(small_aoi, tmp_path):
    scene = simulate_scene(small_aoi, when=WHEN, n_cars=12, margin_m=20, nodata_edge=0.1, seed=4)
    paths = write_scene(scene, tmp_path, scene_id="small_2023-10-05")
    with rasterio.open(paths["cog"]) as src:
        assert src.driver == "GTiff"
        assert src.overviews(1), "a COG carries overviews"
        assert src.block_shapes[0] == (256, 256)
        assert src.tags()["TIFFTAG_DATETIME"] == "2023:10:05 02:10:00"
        assert src.crs.to_epsg() == 32652
        assert src.res == (0.5, 0.5)
        mask = src.dataset_mask()
        assert (mask[~scene.valid] == 0).all() and (mask[scene.valid] == 255).all()
        data = src.read()
    # JPEG is lossy but close.
    assert np.abs(data.astype(int) - np.moveaxis(scene.image, -1, 0)).mean() < 4


def test_truth_geojson_holds_every_car_in_lonlat(small_aoi, tmp_path):
    scene = simulate_scene(small_aoi, when=WHEN, n_cars=12, margin_m=20, seed=4)
    paths = write_scene(scene, tmp_path, scene_id="small")
    fc = json.loads(paths["truth"].read_text())
    assert fc["simulated"] is True and len(fc["features"]) == 12
    props = fc["features"][0]["properties"]
    assert set(props) == {"car_id", "type", "track", "visible", "length_m", "width_m", "cut_id"}
    to_utm = Transformer.from_crs(CRS.from_epsg(4326), UTM52, always_xy=True)
    for feat, t in zip(fc["features"], scene.truth):
        ring = np.array(feat["geometry"]["coordinates"][0])
        x, y = to_utm.transform(ring[:, 0], ring[:, 1])
        assert Polygon(np.column_stack([x, y])).symmetric_difference(Polygon(t["polygon_map"])).area < 0.05


def test_stac_item_validates_and_checksum_matches(small_aoi, tmp_path):
    import pystac
    from pystac.validation import validate_dict

    scene = simulate_scene(small_aoi, when=WHEN, n_cars=8, margin_m=20, cloud_cover=0.3, seed=6)
    paths = write_scene(scene, tmp_path, scene_id="small_cloudy")
    item = pystac.Item.from_file(str(paths["item"]))
    d = item.to_dict()
    # Extension schemas live on the web; the core item schema ships with pystac.
    validate_dict({**d, "stac_extensions": []})
    assert item.properties["simulated"] is True
    assert item.properties["gsd"] == 0.5
    assert item.datetime == WHEN
    checksum = item.assets["image"].extra_fields["file:checksum"]
    assert checksum == "1220" + hashlib.sha256(paths["cog"].read_bytes()).hexdigest()
    assert item.assets["image"].href == "./small_cloudy.tif"
    assert "truth" in item.assets and "cloud" in item.assets["cloud_mask"].roles
    with rasterio.open(item.assets["cloud_mask"].get_absolute_href()) as src:
        assert src.read(1).astype(bool).mean() == pytest.approx(scene.cloud.mean(), abs=0.01)


def test_other_crs_is_written_and_truth_follows(small_aoi, tmp_path):
    scene = simulate_scene(small_aoi, when=WHEN, n_cars=6, margin_m=20, crs="EPSG:3857", seed=2)
    assert scene.crs.to_epsg() == 3857
    paths = write_scene(scene, tmp_path, scene_id="small_3857")
    with rasterio.open(paths["cog"]) as src:
        assert src.crs.to_epsg() == 3857
        image_box = box(*src.bounds)
    for t in scene.truth:
        assert Polygon(t["polygon_map"]).within(image_box)


def test_cli_scene_writes_files_and_rejects_bad_cars(tmp_path):
    from geo_evidence.cli import main

    aoi_path = tmp_path / "small.geojson"
    aoi_path.write_text(json.dumps(_small_aoi_dict()))
    runner = CliRunner()
    res = runner.invoke(main, ["simulate", "scene", "--aoi", str(aoi_path), "--date", "2023-10-05T02:10:00Z", "--gsd", "2",
                               "--cars", "tank=3,gondola=4", "--out", str(tmp_path / "out"), "--scene-id", "s1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["cars"] == 7
    assert (tmp_path / "out" / "s1.tif").is_file()
    bad = runner.invoke(main, ["simulate", "scene", "--aoi", str(aoi_path), "--date", "2023-10-05", "--cars", "tank:3"])
    assert bad.exit_code == 2 and "--cars" in bad.output
    refused = runner.invoke(main, ["simulate", "scene", "--aoi", str(aoi_path), "--date", "2023-10-05",
                                   "--cars", "tank=3", "--out", str(tmp_path / "out"), "--scene-id", "s1"])
    assert refused.exit_code == 1 and "exists" in refused.output
