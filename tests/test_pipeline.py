"""Batch runs: every scene finishes or says why, outputs are atomic, runs resume, dask agrees."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo_evidence.aoi import load_aoi
from geo_evidence.cli import main
from geo_evidence.errors import SceneSourceError
from geo_evidence.pipeline import run_count
from geo_evidence.provenance import verify_manifest

# A small yard (3 tracks x ~220 m) so each scene renders and counts in well under a second.
LON0, LAT0 = 130.70, 42.30
M_LAT = 1 / 111_320.0
M_LON = 1 / (111_320.0 * 0.7390)  # cos(42.3 deg)


def _ll(e, n):
    return [round(LON0 + e * M_LON, 7), round(LAT0 + n * M_LAT, 7)]


def _small_aoi_dict():
    yard = [_ll(-130, -20), _ll(130, -20), _ll(130, 20), _ll(-130, 20), _ll(-130, -20)]
    feats = [{"type": "Feature", "properties": {"kind": "yard"}, "geometry": {"type": "Polygon", "coordinates": [yard]}}]
    for i, off in enumerate((-5.0, 0.0, 5.0)):
        line = [_ll(e, off) for e in range(-120, 121, 40)]
        feats.append({"type": "Feature", "properties": {"kind": "track", "name": f"T{i + 1}"},
                      "geometry": {"type": "LineString", "coordinates": line}})
    return {"type": "FeatureCollection", "id": "testyard", "name": "Test yard", "features": feats}


@pytest.fixture(scope="module")
def small_aoi_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("aoi") / "testyard.geojson"
    path.write_text(json.dumps(_small_aoi_dict()))
    return path


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory, small_aoi_file):
    """Five simulated 0.5 m scenes of the small yard, written as real COGs."""
    from geo_evidence.simulate import simulate_scene, write_scene

    aoi = load_aoi(small_aoi_file)
    folder = tmp_path_factory.mktemp("scenes")
    truths = {}
    for i, n in enumerate((3, 8, 0, 12, 5)):
        when = dt.datetime(2023, 1 + 2 * i, 10, 2, 0, tzinfo=dt.timezone.utc)
        scene = simulate_scene(aoi, when=when, gsd_m=0.5, n_cars=n, seed=100 + i)
        sid = f"testyard_{when:%Y-%m-%d}"
        paths = write_scene(scene, folder / "tmp", scene_id=sid)
        os.replace(paths["cog"], folder / f"{sid}.tif")
        truths[sid] = n
    for extra in (folder / "tmp").iterdir():
        extra.unlink()
    (folder / "tmp").rmdir()
    return folder, truths


def _copy_folder(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.glob("*.tif"):
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _comparable(records):
    keep = ("scene_id", "datetime", "status", "count", "count_low", "count_high", "by_type", "tracks", "obscured_fraction")
    return [{k: r[k] for k in keep} for r in records]


def test_count_writes_every_output_and_survives_a_corrupt_tile(tmp_path, scene_folder, small_aoi_file):
    folder = _copy_folder(scene_folder[0], tmp_path / "scenes")
    good = sorted(folder.glob("*.tif"))[0]
    (folder / "testyard_2024-06-01.tif").write_bytes(good.read_bytes()[:5000])  # truncated download
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["count", "--aoi", str(small_aoi_file), "--scenes", str(folder), "--out", str(out), "--no-progress"])
    assert res.exit_code == 1
    assert "testyard_2024-06-01" in res.stderr
    assert "1 of 6 scenes failed" in res.stderr
    counts = json.loads((out / "testyard" / "counts.json").read_text())
    by_id = {r["scene_id"]: r for r in counts["records"]}
    assert len(by_id) == 6
    assert by_id["testyard_2024-06-01"]["status"] == "error"
    assert by_id["testyard_2024-06-01"]["count"] is None
    ok = [r for r in counts["records"] if r["status"] == "ok"]
    assert len(ok) == 5
    for r in ok:
        det = json.loads((out / "testyard" / r["detections_file"]).read_text())
        assert len(det["features"]) == r["count"]
    assert (out / "testyard" / "detections.parquet").stat().st_size > 0
    assert verify_manifest(out / "testyard" / "manifest.json")["ok"]


def test_counts_follow_the_truth_on_clean_scenes(tmp_path, scene_folder, small_aoi_file):
    folder, truths = scene_folder
    (result,) = run_count(load_aoi(small_aoi_file), scenes=str(folder), out_dir=tmp_path)
    for r in result.records:
        assert r["status"] == "ok"
        assert r["count_low"] <= truths[r["scene_id"]] <= r["count_high"], r


def test_rerun_skips_finished_scenes_and_no_cache_recounts(tmp_path, scene_folder, small_aoi_file):
    aoi = load_aoi(small_aoi_file)
    (first,) = run_count(aoi, scenes=str(scene_folder[0]), out_dir=tmp_path)
    assert (first.computed, first.cached) == (5, 0)
    (second,) = run_count(aoi, scenes=str(scene_folder[0]), out_dir=tmp_path)
    assert (second.computed, second.cached) == (0, 5)
    assert _comparable(second.records) == _comparable(first.records)
    (third,) = run_count(aoi, scenes=str(scene_folder[0]), out_dir=tmp_path, use_cache=False)
    assert third.computed == 5


def test_a_changed_image_core_recounts_instead_of_reusing_the_cache(tmp_path, scene_folder, small_aoi_file, monkeypatch):
    # Same scenes, AOI, parameters and version string, but the counting code changed (an
    # upgrade): the cached counts were made by other code and must not be served.
    import geo_evidence.pipeline as pipeline

    aoi = load_aoi(small_aoi_file)
    (first,) = run_count(aoi, scenes=str(scene_folder[0]), out_dir=tmp_path)
    assert first.computed == 5
    monkeypatch.setattr(pipeline, "core_fingerprint", lambda: "another core")
    (second,) = run_count(aoi, scenes=str(scene_folder[0]), out_dir=tmp_path)
    assert (second.computed, second.cached) == (5, 0)


def test_killed_run_resumes_without_redoing_or_losing_work(tmp_path, scene_folder, small_aoi_file):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "geo_evidence.cli", "count", "--aoi", str(small_aoi_file), "--scenes",
           str(scene_folder[0]), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    scenes_dir = out / "testyard" / "scenes"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(scenes_dir.glob("*.json"))) < 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: (p.stat().st_mtime_ns, json.loads(p.read_text())) for p in scenes_dir.glob("*.json")}
    assert len(finished) >= 2  # every file present is complete JSON (atomic writes)
    assert not list(scenes_dir.glob(".*.tmp"))  # or, at worst, a temp file never mistaken for a result

    (result,) = run_count(load_aoi(small_aoi_file), scenes=str(scene_folder[0]), out_dir=out)
    assert result.cached == len(finished)
    assert result.computed == 5 - len(finished)
    assert len(result.records) == 5
    for name, (mtime, record) in finished.items():
        assert (scenes_dir / name).stat().st_mtime_ns == mtime  # not rewritten
        assert record["count"] == next(r["count"] for r in result.records if r["scene_id"] == record["scene_id"])


def test_local_cluster_gives_identical_results(tmp_path, scene_folder, small_aoi_file):
    aoi = load_aoi(small_aoi_file)
    (serial,) = run_count(aoi, scenes=str(scene_folder[0]), out_dir=tmp_path / "serial")
    (dask,) = run_count(aoi, scenes=str(scene_folder[0]), out_dir=tmp_path / "dask", workers=2)
    assert dask.computed == 5
    assert _comparable(dask.records) == _comparable(serial.records)
    for r in serial.records:
        a = (tmp_path / "serial" / "testyard" / r["detections_file"]).read_bytes()
        b = (tmp_path / "dask" / "testyard" / r["detections_file"]).read_bytes()
        assert a == b


def test_unreachable_scheduler_is_a_clear_error(tmp_path, scene_folder, small_aoi_file):
    res = CliRunner().invoke(main, ["count", "--aoi", str(small_aoi_file), "--scenes", str(scene_folder[0]),
                                    "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9", "--no-progress"])
    assert res.exit_code == 1
    assert "tcp://127.0.0.1:9" in res.stderr and "does not answer" in res.stderr
    assert not (tmp_path / "testyard" / "counts.json").exists()  # nothing left behind as if complete


def test_empty_scene_folder_is_a_clear_error(tmp_path, small_aoi_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SceneSourceError, match="empty"):
        run_count(load_aoi(small_aoi_file), scenes=str(empty), out_dir=tmp_path / "out")
    res = CliRunner().invoke(main, ["count", "--aoi", str(small_aoi_file), "--scenes", str(empty), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and str(empty) in res.stderr
    assert "Traceback" not in res.output


def test_scenes_that_miss_the_aoi_are_a_clear_error(tmp_path, scene_folder):
    far = _small_aoi_dict()
    shift = 0.05  # ~4 km east: the scenes do not cover it
    for f in far["features"]:
        g = f["geometry"]
        rings = g["coordinates"] if g["type"] == "LineString" else g["coordinates"][0]
        for pt in rings:
            pt[0] += shift
    path = tmp_path / "far.geojson"
    path.write_text(json.dumps(far))
    res = CliRunner().invoke(main, ["count", "--aoi", str(path), "--scenes", str(scene_folder[0]), "--out", str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 1
    assert str(scene_folder[0]) in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "testyard" / "counts.json").exists()


def test_verify_names_what_changed(tmp_path, scene_folder, small_aoi_file):
    folder = _copy_folder(scene_folder[0], tmp_path / "scenes")
    (result,) = run_count(load_aoi(small_aoi_file), scenes=str(folder), out_dir=tmp_path / "out")
    manifest = result.manifest
    data = json.loads(manifest.read_text())
    assert {s["id"] for s in data["scenes"]} == {r["scene_id"] for r in result.records}
    assert data["software"]["gdal"] and data["software"]["numpy"]
    runner = CliRunner()
    assert runner.invoke(main, ["verify", str(manifest)]).exit_code == 0

    counts = result.out_dir / "counts.json"
    counts.write_text(counts.read_text().replace('"count": ', '"count": 1', 1))
    victim = sorted(folder.glob("*.tif"))[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    res = runner.invoke(main, ["verify", str(manifest)])
    assert res.exit_code == 1
    assert "counts.json" in res.output and victim.stem in res.output
    report = verify_manifest(manifest)
    assert {(p["kind"], p["status"]) for p in report["problems"]} == {("output", "changed"), ("scene", "changed")}


def test_geoparquet_holds_every_detection_with_its_geojson_geometry(tmp_path, scene_folder, small_aoi_file):
    import geopandas as gpd
    from shapely.geometry import shape

    (result,) = run_count(load_aoi(small_aoi_file), scenes=str(scene_folder[0]), out_dir=tmp_path)
    gdf = gpd.read_parquet(result.out_dir / "detections.parquet")
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf.columns) == ["scene_id", "detection_id", "track", "car_type", "confidence", "length_m", "width_m",
                                 "datetime", "aoi", "geometry"]
    assert len(gdf) == sum(r["count"] for r in result.records) > 0
    rows = {(r.scene_id, r.detection_id): r for r in gdf.itertuples()}
    for rec in result.records:
        for feat in json.loads((result.out_dir / rec["detections_file"]).read_text())["features"]:
            p = feat["properties"]
            row = rows[(p["scene_id"], p["detection_id"])]
            assert (row.track, row.car_type, row.confidence, row.length_m, row.width_m) == (
                p["track"], p["car_type"], p["confidence"], p["length_m"], p["width_m"])
            assert (row.datetime, row.aoi) == (rec["datetime"], "testyard")
            assert row.geometry.equals_exact(shape(feat["geometry"]), 0.0)


def test_a_run_without_detections_writes_an_empty_geoparquet(tmp_path, scene_folder, small_aoi_file):
    import geopandas as gpd

    folder, truths = scene_folder
    empty = tmp_path / "empty_scenes"
    empty.mkdir()
    sid = next(s for s, n in truths.items() if n == 0)
    (empty / f"{sid}.tif").write_bytes((folder / f"{sid}.tif").read_bytes())
    (result,) = run_count(load_aoi(small_aoi_file), scenes=str(empty), out_dir=tmp_path / "out")
    gdf = gpd.read_parquet(result.out_dir / "detections.parquet")
    assert len(gdf) == sum(r["count"] for r in result.records)
    assert "car_type" in gdf.columns and gdf.crs.to_epsg() == 4326


def test_changed_tile_is_rehashed_and_recounted(tmp_path, scene_folder, small_aoi_file):
    import hashlib

    folder = _copy_folder(scene_folder[0], tmp_path / "scenes")
    aoi = load_aoi(small_aoi_file)
    (first,) = run_count(aoi, scenes=str(folder), out_dir=tmp_path / "out")
    victim = sorted(folder.glob("*.tif"))[1]
    victim.write_bytes(victim.read_bytes() + b"\0")  # still a readable tile, other bytes
    (second,) = run_count(aoi, scenes=str(folder), out_dir=tmp_path / "out")
    assert (second.computed, second.cached) == (1, 4)
    manifest = json.loads(second.manifest.read_text())
    for scene in manifest["scenes"]:
        assert scene["sha256"] == hashlib.sha256(Path(scene["href"]).read_bytes()).hexdigest()
    by_id = {r["scene_id"]: r for r in second.records}
    assert by_id[victim.stem]["scene_checksum"] == hashlib.sha256(victim.read_bytes()).hexdigest()
    assert by_id[victim.stem]["cache_key"] != next(r for r in first.records if r["scene_id"] == victim.stem)["cache_key"]
    assert verify_manifest(second.manifest)["ok"]


def test_count_command_imports_neither_pandas_nor_dask(tmp_path, scene_folder, small_aoi_file):
    # What `geoev count` imports is start-up time on every run: pandas and geopandas
    # (only ever needed to write GeoParquet) and dask (only for --workers) stay out.
    code = (
        "import sys\nfrom geo_evidence.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('pandas', 'geopandas', 'dask', 'distributed', 'xarray', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "count", "--aoi", str(small_aoi_file), "--scenes", str(scene_folder[0]),
         "--out", str(tmp_path / "o"), "--no-progress", "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "o" / "testyard" / "detections.parquet").stat().st_size > 0


def test_manifest_software_versions_are_the_installed_distributions():
    from importlib import metadata

    from geo_evidence.provenance import software_versions

    versions = software_versions()
    for name in ("numpy", "scipy", "scikit-image", "shapely", "pyproj", "rasterio", "pystac-client"):
        assert versions[name] == metadata.version(name), name
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))


def test_tile_rewritten_with_its_old_size_and_mtime_is_still_recounted(tmp_path, scene_folder, small_aoi_file):
    import hashlib

    folder = _copy_folder(scene_folder[0], tmp_path / "scenes")
    time.sleep(2.1)  # the copies are old enough for their checksums to be remembered
    aoi = load_aoi(small_aoi_file)
    out = tmp_path / "out"
    (first,) = run_count(aoi, scenes=str(folder), out_dir=out)
    assert (out / ".scene-checksums.json").is_file()
    (second,) = run_count(aoi, scenes=str(folder), out_dir=out)
    assert (second.computed, second.cached) == (0, 5)

    # Another tile's bytes under this tile's name, size and modification time kept.
    a, b = sorted(folder.glob("*.tif"))[:2]
    st = os.stat(a)
    data = bytearray(a.read_bytes())
    data[-1] ^= 0xFF  # the last byte of a tile: still a readable file, other bytes
    a.write_bytes(bytes(data))
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(a).st_size == st.st_size and os.stat(a).st_mtime_ns == st.st_mtime_ns
    (third,) = run_count(aoi, scenes=str(folder), out_dir=out)
    assert (third.computed, third.cached) == (1, 4)
    rec = next(r for r in third.records if r["scene_id"] == a.stem)
    assert rec["scene_checksum"] == hashlib.sha256(a.read_bytes()).hexdigest()
    assert verify_manifest(third.manifest)["ok"]
