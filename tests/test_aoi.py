"""AOI loading and validation (geo_evidence/aoi.py) and the `geoev aoi` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pyproj import Geod

from geo_evidence.aoi import load_aoi, resolve_aoi_path
from geo_evidence.cli import main
from geo_evidence.errors import AOIError, GeoEvidenceError

# A small yard near Tumangang (lon, lat) and one track running along it.
YARD = [[130.600, 42.420], [130.604, 42.420], [130.604, 42.422], [130.600, 42.422], [130.600, 42.420]]
TRACK = [[130.6002, 42.4210], [130.6038, 42.4210]]


def feature(kind, gtype, coords, **props):
    return {"type": "Feature", "properties": {"kind": kind, **props}, "geometry": {"type": gtype, "coordinates": coords}}


def collection(*features, **members):
    return {"type": "FeatureCollection", "id": "test-yard", **members, "features": list(features)}


def good():
    return collection(feature("yard", "Polygon", [YARD]), feature("track", "LineString", TRACK, name="T1"))


def write(tmp_path, obj, name="aoi.geojson"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def test_valid_file_loads_with_metric_geometry(tmp_path):
    aoi = load_aoi(write(tmp_path, good()))
    assert aoi.id == "test-yard"
    assert aoi.crs.to_epsg() == 32652  # 130.6 E is in UTM zone 52, northern hemisphere
    # Independent length: geodesic length of the track on the ellipsoid.
    geodesic = Geod(ellps="WGS84").line_length(*zip(*TRACK))
    assert aoi.tracks[0].length_m == pytest.approx(geodesic, rel=2e-3)
    assert 290 < aoi.tracks[0].length_m < 310  # 0.0036 deg of longitude at 42.4 N
    assert aoi.checksum is not None and len(aoi.checksum) == 64


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not GeoJSON"),
        ({"type": "Feature", "geometry": None}, "FeatureCollection"),
        (collection(), "no features"),
        (collection(feature("track", "LineString", TRACK)), "no yard"),
        (collection(feature("yard", "Polygon", [YARD])), "no tracks"),
        (
            # A bow-tie: the edges cross in the middle.
            collection(
                feature("yard", "Polygon", [[[130.600, 42.420], [130.604, 42.422], [130.604, 42.420], [130.600, 42.422], [130.600, 42.420]]]),
                feature("track", "LineString", TRACK),
            ),
            "self-crossing",
        ),
        (
            collection(feature("yard", "Polygon", [[[y, x] for x, y in YARD]]), feature("track", "LineString", [[y, x] for x, y in TRACK])),
            "swap",
        ),
        (
            collection(
                feature("yard", "Polygon", [[[331000, 4698000], [331300, 4698000], [331300, 4698200], [331000, 4698000]]]),
                feature("track", "LineString", [[331010, 4698010], [331200, 4698100]]),
            ),
            "projected",
        ),
        (
            collection(feature("yard", "Polygon", [YARD]), feature("track", "LineString", [[130.650, 42.420], [130.660, 42.420]], name="far")),
            "'far' is",
        ),
        (
            collection(feature("yard", "LineString", TRACK), feature("track", "LineString", TRACK)),
            "must be a Polygon",
        ),
        (
            collection(feature("yard", "Polygon", [YARD]), feature("track", "LineString", TRACK, name="A"),
                       feature("track", "LineString", TRACK, name="A")),
            "duplicate track names",
        ),
        (collection(feature("yard", "Polygon", [YARD]), feature("track", "LineString", TRACK), feature("road", "LineString", TRACK)), "'road'"),
        ({**good(), "id": "../etc"}, "not a safe identifier"),
    ],
    ids=["not-json", "not-collection", "empty", "no-yard", "no-tracks", "self-crossing", "swapped-latlon",
         "projected", "track-far", "yard-not-polygon", "duplicate-names", "unknown-kind", "unsafe-id"],
)
def test_bad_files_are_refused_with_the_problem_named(tmp_path, content, needle):
    path = write(tmp_path, content)
    with pytest.raises(AOIError) as info:
        load_aoi(path)
    message = str(info.value)
    assert needle.lower() in message.lower()
    assert isinstance(info.value, ValueError) and isinstance(info.value, GeoEvidenceError)


def test_far_track_message_gives_the_distance(tmp_path):
    far = collection(feature("yard", "Polygon", [YARD]), feature("track", "LineString", [[130.650, 42.420], [130.660, 42.420]], name="far"))
    with pytest.raises(AOIError, match=r"is \d+ m from the yard"):
        load_aoi(write(tmp_path, far))


@pytest.mark.parametrize("name", ["../etc/passwd", "Tum angang", "Tumangang", "/etc/passwd", "a" * 80])
def test_unsafe_names_are_refused_not_followed(name):
    with pytest.raises(AOIError, match="not a safe identifier"):
        resolve_aoi_path(name)


def test_unknown_name_lists_known_aois():
    with pytest.raises(AOIError, match="no bundled AOI named 'atlantis'") as info:
        load_aoi("atlantis")
    assert "tumangang" in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AOIError, match="does not exist"):
        load_aoi(tmp_path / "nothing.geojson")


def test_dict_input_loads_like_a_file(tmp_path):
    a = load_aoi(good())
    b = load_aoi(write(tmp_path, good()))
    assert a.yard.equals_exact(b.yard, 1e-6)
    assert a.path is None and a.checksum is None


@pytest.mark.parametrize(("name", "lat", "lon"), [("tumangang", 42.4215, 130.605), ("khasan", 42.43, 130.64)])
def test_bundled_aois_load_in_utm_52n(name, lat, lon):
    aoi = load_aoi(name)
    assert aoi.id == name
    assert aoi.crs.to_epsg() == 32652
    assert len(aoi.tracks) >= 3
    c = aoi.yard_lonlat.centroid
    # Within ~2 km of the published location.
    assert abs(c.y - lat) < 0.02 and abs(c.x - lon) < 0.02
    # Every track is a metric line whose length matches its geodesic length.
    geod = Geod(ellps="WGS84")
    for t in aoi.tracks:
        assert t.length_m == pytest.approx(geod.line_length(*t.line_lonlat.xy), rel=2e-3)
    # geometries_in round-trips to lon/lat.
    yard_ll, lines_ll, _ = aoi.geometries_in(4326)
    assert np.allclose(np.asarray(yard_ll.exterior.coords), np.asarray(aoi.yard_lonlat.exterior.coords), atol=1e-9)


def test_cli_aoi_list_and_show():
    runner = CliRunner()
    res = runner.invoke(main, ["aoi", "list"])
    assert res.exit_code == 0
    assert res.output.split() == ["khasan", "tumangang"]
    res = runner.invoke(main, ["aoi", "show", "tumangang"])
    assert res.exit_code == 0
    assert "EPSG:32652" in res.output and "T1" in res.output
    res = runner.invoke(main, ["aoi", "show", "khasan", "--format", "json"])
    assert res.exit_code == 0
    summary = json.loads(res.output)
    assert summary["id"] == "khasan" and summary["tracks"] == len(summary["track_names"])
    assert summary["track_length_m"] > 0 and summary["yard_area_ha"] > 0


@pytest.mark.parametrize("arg", ["../etc/passwd", "atlantis", "missing.geojson"])
def test_cli_aoi_show_bad_input_is_one_line_exit_1(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["aoi", "show", arg])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("geoev: error:")
    assert "Traceback" not in res.output


def test_cli_aoi_show_bad_file_names_the_problem(tmp_path):
    path = write(tmp_path, collection(feature("track", "LineString", TRACK)))
    res = CliRunner().invoke(main, ["aoi", "show", str(path)])
    assert res.exit_code == 1
    assert "no yard" in res.output


def test_file_with_utf8_bom_loads(tmp_path):
    path = tmp_path / "bom.geojson"
    path.write_text("\ufeff" + json.dumps(good()), encoding="utf-8")
    assert load_aoi(path).id == "test-yard"
