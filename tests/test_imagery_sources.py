"""Scene sources: folders, static STAC catalogs, datetimes, checksums, `geoev scenes list`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from geo_evidence.cli import main
from geo_evidence.errors import SceneSourceError
from geo_evidence.imagery import SceneRef, default_scene_source, list_scenes, read_window, scene_checksum

UTC = dt.timezone.utc


def tile(seed=0):
    return np.random.default_rng(seed).integers(0, 255, size=(3, 40, 40), dtype=np.uint8)


def test_folder_datetime_precedence_tag_then_filename_then_none(make_geotiff, tmp_path, caplog):
    folder = tmp_path / "scenes"
    # The tag wins over the (different) date in the name.
    make_geotiff("scenes/tag_2023-01-01.tif", tile(1), tags={"TIFFTAG_DATETIME": "2023:10:05 02:10:00"})
    make_geotiff("scenes/name_2023-10-06.tif", tile(2))
    make_geotiff("scenes/compact_20231007.tif", tile(3))
    make_geotiff("scenes/badtag_2023_10_08.tif", tile(4), tags={"TIFFTAG_DATETIME": "2023:13:45 99:00:00"})
    make_geotiff("scenes/undated.tif", tile(5))
    (folder / "notes.txt").write_text("not a scene")
    with caplog.at_level(logging.WARNING, logger="geo_evidence.imagery.sources"):
        scenes = list_scenes(folder)
    assert [s.id for s in scenes] == ["tag_2023-01-01", "name_2023-10-06", "compact_20231007", "badtag_2023_10_08", "undated"]
    assert [s.datetime_source for s in scenes] == ["tiff_tag", "filename", "filename", "filename", None]
    assert scenes[0].datetime == dt.datetime(2023, 10, 5, 2, 10, tzinfo=UTC)
    assert scenes[1].datetime == dt.datetime(2023, 10, 6, tzinfo=UTC)
    assert scenes[2].datetime == dt.datetime(2023, 10, 7, tzinfo=UTC)
    assert scenes[3].datetime == dt.datetime(2023, 10, 8, tzinfo=UTC)  # a broken tag is ignored, not trusted
    assert scenes[4].datetime is None
    assert "undated" in caplog.text and "no acquisition datetime" in caplog.text
    assert scenes[0].properties["gsd"] == 0.5 and scenes[0].properties["proj:epsg"] == 32652
    assert all(s.checksum is None for s in scenes)  # a folder declares none


def test_stac_datetime_wins_over_tag_and_filename(make_geotiff, make_stac_catalog, tmp_path):
    path = make_geotiff("cat/data/scene_2020-02-02.tif", tile(), tags={"TIFFTAG_DATETIME": "2021:03:03 03:03:03"})
    other = make_geotiff("cat/data/range_2020-02-02.tif", tile(1), tags={"TIFFTAG_DATETIME": "2021:03:03 03:03:03"})
    cat = make_stac_catalog(tmp_path / "cat", [
        {"id": "a", "path": path, "datetime": dt.datetime(2023, 10, 5, 2, 10, tzinfo=UTC)},
        {"id": "b", "path": other, "datetime": None, "properties": {"start_datetime": "2022-06-01T10:00:00Z",
                                                                   "end_datetime": "2022-06-01T10:01:00Z"}},
    ])
    scenes = {s.id: s for s in list_scenes(cat)}
    assert scenes["a"].datetime == dt.datetime(2023, 10, 5, 2, 10, tzinfo=UTC) and scenes["a"].datetime_source == "stac"
    assert scenes["b"].datetime == dt.datetime(2022, 6, 1, 10, tzinfo=UTC) and scenes["b"].datetime_source == "stac"


def test_static_catalog_nested_relative_hrefs_checksums_and_cloud(make_geotiff, make_stac_catalog, tmp_path):
    root = tmp_path / "cat"
    p1 = make_geotiff("cat/data/s1.tif", tile(1))
    p2 = make_geotiff("cat/data/s2.tif", tile(2))
    cloud = make_geotiff("cat/data/s2_cloud.tif", np.zeros((40, 40), np.uint8))
    digest = hashlib.sha256(p1.read_bytes()).hexdigest()
    cat = make_stac_catalog(root, [
        {"id": "s2", "path": p2, "datetime": dt.datetime(2023, 10, 5, tzinfo=UTC), "cloud": cloud,
         "properties": {"simulated": True, "gsd": 0.5, "platform": "sim"}},
        {"id": "s1", "path": p1, "datetime": dt.datetime(2019, 5, 1, tzinfo=UTC), "checksum": "1220" + digest},
    ])
    # The hrefs on disk are relative: the reader has to resolve them.
    item_json = next(root.rglob("s1.json"))
    assert json.loads(item_json.read_text())["assets"]["image"]["href"].startswith("../")
    scenes = list_scenes(cat)
    assert [s.id for s in scenes] == ["s1", "s2"]  # sorted by datetime, not catalog order
    assert scenes[0].href == str(p1.resolve()) and scenes[1].href == str(p2.resolve())
    assert scenes[0].checksum == digest and scenes[1].checksum is None
    assert scenes[1].cloud_mask_href == str(cloud.resolve()) and scenes[0].cloud_mask_href is None
    assert scenes[1].simulated is True and scenes[1].properties["gsd"] == 0.5 and scenes[0].simulated is None
    # The same catalog opened through its collection.json.
    coll = list_scenes(root / "scenes" / "collection.json")
    assert [s.id for s in coll] == ["s1", "s2"]


def test_checksum_declared_or_computed(make_geotiff, tmp_path):
    path = make_geotiff("c.tif", tile(7))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert scene_checksum(SceneRef(id="c", href=str(path))) == expected
    assert scene_checksum(str(path)) == expected
    assert scene_checksum(SceneRef(id="c", href=str(path), checksum="ab" * 32)) == "ab" * 32
    with pytest.raises(OSError, match="missing.tif"):
        scene_checksum(str(tmp_path / "missing.tif"))


def test_empty_folder_and_folder_without_tiffs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneSourceError, match="folder .*empty.* holds no scenes; add GeoTIFF"):
        list_scenes(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.png").write_bytes(b"x")
    with pytest.raises(SceneSourceError, match="holds no scenes"):
        list_scenes(tmp_path / "other")


def test_empty_catalog_and_bad_sources(tmp_path, make_stac_catalog):
    cat = make_stac_catalog(tmp_path / "cat", [])
    with pytest.raises(SceneSourceError, match="catalog.json.* holds no scenes"):
        list_scenes(cat)
    with pytest.raises(SceneSourceError, match="nowhere"):
        list_scenes(tmp_path / "nowhere")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(SceneSourceError, match="bad.json"):
        list_scenes(bad)
    with pytest.raises(SceneSourceError, match="does not exist"):
        list_scenes(tmp_path / "gone" / "catalog.json")


def test_filters_by_period_and_aoi(make_geotiff, make_stac_catalog, utm_aoi, tmp_path):
    p = make_geotiff("cat/data/s.tif", tile())
    aoi = utm_aoi([(331005, 4698805), (331195, 4698805), (331195, 4698995), (331005, 4698995)],
                  {"T1": [(331010, 4698900), (331190, 4698900)]})
    w, s, e, n = aoi.bounds_lonlat
    cat = make_stac_catalog(tmp_path / "cat", [
        {"id": f"d{day}", "path": p, "datetime": dt.datetime(2023, 10, day, 12, tzinfo=UTC), "bbox": [w, s, e, n]}
        for day in (3, 4, 5, 6)
    ] + [{"id": "elsewhere", "path": p, "datetime": dt.datetime(2023, 10, 5, tzinfo=UTC), "bbox": [10, 10, 11, 11]}])
    got = list_scenes(cat, aoi=aoi, start="2023-10-04", end="2023-10-05")
    assert [s.id for s in got] == ["d4", "d5"]  # end date inclusive; off-AOI footprint dropped
    assert [s.id for s in list_scenes(cat, start=dt.date(2023, 10, 5))] == ["elsewhere", "d5", "d6"]
    with pytest.raises(SceneSourceError, match="none of the 5 scenes .* matches .*period 2024-01-01"):
        list_scenes(cat, start="2024-01-01")
    with pytest.raises(SceneSourceError, match="after end"):
        list_scenes(cat, start="2023-10-06", end="2023-10-01")


def test_default_scene_source(tmp_path, monkeypatch):
    import geo_evidence._resources as res

    with pytest.raises(SceneSourceError, match="not a safe identifier"):
        default_scene_source("../etc")
    monkeypatch.setattr(res, "sample_tiles_dir", lambda: tmp_path)
    with pytest.raises(SceneSourceError, match="no bundled sample tiles for AOI 'tumangang'.*--scenes"):
        default_scene_source("tumangang")
    (tmp_path / "tumangang").mkdir()
    (tmp_path / "tumangang" / "catalog.json").write_text("{}")
    assert default_scene_source("tumangang") == str(tmp_path / "tumangang" / "catalog.json")


def test_listed_scene_reads(make_geotiff, utm_aoi, tmp_path):
    make_geotiff("f/s_2023-10-05.tif", np.random.default_rng(0).integers(0, 255, (3, 400, 400), dtype=np.uint8))
    aoi = utm_aoi([(331060, 4698880), (331140, 4698880), (331140, 4698920), (331060, 4698920)],
                  {"T1": [(331070, 4698900), (331130, 4698900)]})
    (scene,) = list_scenes(tmp_path / "f", aoi=aoi)
    assert read_window(scene, aoi).scene is scene


# ------------------------------------------------------------------------------- CLI

def _tumangang_tiles(make_geotiff):
    # 200 m x 200 m tiles inside the bundled Tumangang AOI's bounds (UTM 52N).
    t = Affine(0.5, 0.0, 631600.0, 0.0, -0.5, 4698000.0)
    a = make_geotiff("tiles/tum_2023-10-05.tif", tile(1), transform=t, tags={"TIFFTAG_DATETIME": "2023:10:05 02:10:00"})
    b = make_geotiff("tiles/tum_undated.tif", tile(2), transform=t)
    return a, b


def test_cli_scenes_list_folder(make_geotiff, tmp_path):
    a, b = _tumangang_tiles(make_geotiff)
    res = CliRunner().invoke(main, ["scenes", "list", "--aoi", "tumangang", "--scenes", str(tmp_path / "tiles")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["id", "datetime", "from", "gsd_m", "crs", "sha256", "simulated"]
    row_a = next(ln for ln in lines if ln.startswith("tum_2023-10-05"))
    assert "2023-10-05T02:10:00+00:00" in row_a and "tiff_tag" in row_a and "EPSG:32652" in row_a
    assert hashlib.sha256(a.read_bytes()).hexdigest()[:12] in row_a
    row_b = next(ln for ln in lines if ln.startswith("tum_undated"))
    assert "NO DATETIME" in row_b
    assert "1 without an acquisition datetime" in res.output


def test_cli_scenes_list_json_and_errors(make_geotiff, tmp_path):
    _tumangang_tiles(make_geotiff)
    res = CliRunner().invoke(main, ["scenes", "list", "--aoi", "tumangang", "--scenes", str(tmp_path / "tiles"),
                                    "--format", "json", "--no-checksum"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output[: res.output.rindex("}") + 1])
    assert [s["id"] for s in payload["scenes"]] == ["tum_2023-10-05", "tum_undated"]
    assert payload["scenes"][0]["gsd_m"] == 0.5 and payload["scenes"][1]["datetime"] is None
    (tmp_path / "none").mkdir()
    res = CliRunner().invoke(main, ["scenes", "list", "--aoi", "tumangang", "--scenes", str(tmp_path / "none")])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "holds no scenes" in lines[0]
    # Scenes elsewhere on Earth do not match the AOI.
    make_geotiff("far/x_2023-10-05.tif", tile(3))
    res = CliRunner().invoke(main, ["scenes", "list", "--aoi", "tumangang", "--scenes", str(tmp_path / "far")])
    assert res.exit_code == 1 and "none of the 1 scenes" in res.output and "tumangang" in res.output


def test_folder_cloud_mask_beside_its_scene(make_geotiff, tmp_path):
    make_geotiff("f/s_2023-10-05.tif", tile(1), tags={"SIMULATED": "yes"})
    mask = make_geotiff("f/s_2023-10-05.cloud.tif", np.ones((40, 40), np.uint8))
    make_geotiff("f/t_2023-10-06.tif", tile(2))
    scenes = list_scenes(tmp_path / "f")
    assert [s.id for s in scenes] == ["s_2023-10-05", "t_2023-10-06"]  # the mask is not a scene
    assert scenes[0].cloud_mask_href == str(mask.resolve()) and scenes[1].cloud_mask_href is None
    assert scenes[0].simulated is True and scenes[1].simulated is None


def test_scene_info_reads_the_header(make_geotiff):
    from geo_evidence.imagery import scene_info

    info = scene_info(str(make_geotiff("i.tif", np.zeros((30, 50), np.uint16), nodata=0)))
    assert info == {"crs": "EPSG:32652", "gsd_m": 0.5, "width": 50, "height": 30, "bands": 1, "dtype": "uint16", "nodata": 0.0}


def test_cli_scenes_list_catalog_marks_simulated_and_reads_crs(make_geotiff, make_stac_catalog, tmp_path):
    t = Affine(2.0, 0.0, 631600.0, 0.0, -2.0, 4698000.0)
    path = make_geotiff("cat/data/sim.tif", tile(1), transform=t, crs="EPSG:32652")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    make_stac_catalog(tmp_path / "cat", [{"id": "sim", "path": path, "datetime": dt.datetime(2023, 10, 5, 2, 10, tzinfo=UTC),
                                          "checksum": "1220" + digest, "properties": {"simulated": True}}])
    res = CliRunner().invoke(main, ["scenes", "list", "--aoi", "tumangang", "--scenes", str(tmp_path / "cat" / "catalog.json")])
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if ln.startswith("sim "))
    # No gsd / proj in the item: both come from the GeoTIFF header.
    assert row.split() == ["sim", "2023-10-05T02:10:00+00:00", "stac", "2", "EPSG:32652", digest[:12], "SIMULATED"]


def test_unreadable_file_is_listed_and_fails_only_when_read(make_geotiff, utm_aoi, tmp_path):
    from geo_evidence.errors import SceneReadError

    make_geotiff("f/good_2023-10-05.tif", np.zeros((3, 400, 400), np.uint8) + 9)
    (tmp_path / "f" / "broken_2023-10-06.tif").write_bytes(b"II*\x00garbage")
    scenes = list_scenes(tmp_path / "f")
    assert [(s.id, s.datetime_source) for s in scenes] == [("good_2023-10-05", "filename"),
                                                            ("broken_2023-10-06", "filename")]
    aoi = utm_aoi([(331060, 4698880), (331140, 4698880), (331140, 4698920), (331060, 4698920)],
                  {"T1": [(331070, 4698900), (331130, 4698900)]})
    assert read_window(scenes[0], aoi).valid.all()
    with pytest.raises(SceneReadError, match="broken_2023-10-06.tif"):
        read_window(scenes[1], aoi)
