"""Time series, baselines and anomalies from hand-made count records; `geoev series`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from geo_evidence.cli import main
from geo_evidence.errors import GeoEvidenceError, SeriesError
from geo_evidence.series import anomaly, baseline, build_series, save_series


def rec(scene_id, when, count, low=None, high=None, *, status="ok", obscured=0.0, by_type=None, tracks=None,
        aoi="tumangang", simulated=True, reviewed=False, gsd=0.5):
    """A per-scene count record as `geoev count` writes it (docs/CONTRACTS.md)."""
    failed = count is None
    return {
        "aoi": aoi,
        "scene_id": scene_id,
        "datetime": when if "T" in when else when + "T02:10:00+00:00",
        "gsd_m": gsd,
        "status": status,
        "message": "read failed" if failed else None,
        "count": count,
        "count_low": None if failed else (count if low is None else low),
        "count_high": None if failed else (count if high is None else high),
        "method": None if failed else "individual",
        "obscured_fraction": None if failed else obscured,
        "by_type": None if failed else (by_type or {}),
        "tracks": [] if failed else (tracks or []),
        "scene_checksum": "0" * 64,
        "simulated": simulated,
        "reviewed": reviewed,
    }


@pytest.fixture
def records():
    # Deliberately out of time order: the series must sort them.
    return [
        rec("s3", "2023-10-05", 73, 71, 75, by_type={"tank": 30, "box": 12, "gondola": 31},
            tracks=[{"name": "T1", "count": 40, "count_low": 39, "count_high": 41, "obscured_fraction": 0.0},
                    {"name": "T2", "count": 33, "count_low": 32, "count_high": 34, "obscured_fraction": 0.0}]),
        rec("s1", "2020-04-01", 12, 11, 13, by_type={"tank": 12},
            tracks=[{"name": "T1", "count": 12, "count_low": 11, "count_high": 13, "obscured_fraction": 0.0}]),
        rec("s2", "2022-08-15", None, status="error"),
    ]


def test_build_series_dims_coords_and_values(records):
    ds = build_series(records)
    assert dict(ds.sizes) == {"time": 3, "track": 2, "car_type": 3}
    assert list(ds["scene_id"].values) == ["s1", "s2", "s3"]
    assert list(ds["status"].values) == ["ok", "error", "ok"]
    assert ds["time"].values[0] == np.datetime64("2020-04-01T02:10:00")
    np.testing.assert_array_equal(ds["count"].values, [12, np.nan, 73])
    np.testing.assert_array_equal(ds["count_low"].values, [11, np.nan, 71])
    np.testing.assert_array_equal(ds["count_high"].values, [13, np.nan, 75])
    # The failed scene stays listed but is never usable.
    assert list(ds["usable"].values) == [True, False, True]
    assert list(ds["track"].values) == ["T1", "T2"]
    np.testing.assert_array_equal(ds["track_count"].sel(track="T2").values, [np.nan, np.nan, 33])
    # Car types follow the core's order; a type absent from a classified scene is 0, an
    # unclassified (failed) scene is NaN.
    assert list(ds["car_type"].values) == ["box", "tank", "gondola"]
    np.testing.assert_array_equal(ds["by_type"].sel(car_type="box").values, [0, np.nan, 12])
    assert list(ds["gsd_m"].values) == [0.5, 0.5, 0.5]
    assert ds.attrs["aoi"] == "tumangang" and ds.attrs["simulated"] is True and ds.attrs["created"]


def test_times_are_utc(records):
    records.append(rec("late", "2023-10-05T23:30:00-05:00", 5))
    ds = build_series(records)
    assert ds["time"].values[-1] == np.datetime64("2023-10-06T04:30:00")


def test_records_of_two_aois_or_without_time_refused(records):
    records.append(rec("k1", "2023-01-01", 3, aoi="khasan"))
    with pytest.raises(SeriesError, match="several AOIs"):
        build_series(records)
    bad = rec("nodate", "2023-01-01", 3)
    bad["datetime"] = None
    with pytest.raises(SeriesError, match="none of the 1 count record.*nodate"):
        build_series([bad])
    garbled = rec("garbled", "2023-01-01", 3)
    garbled["datetime"] = "5 Oct 2023"
    with pytest.raises(SeriesError, match="'garbled'.*not ISO 8601"):
        build_series([garbled])


def test_undated_scene_is_set_aside_not_fatal(records):
    undated = rec("nodate", "2023-01-01", None, status="error")
    undated["datetime"] = None
    ds = build_series(records + [undated])
    assert ds.sizes["time"] == 3 and "nodate" not in list(ds["scene_id"].values)
    assert ds.attrs["undated_scenes"] == "nodate"


def test_reviewed_scene_keeps_its_automatic_count(records):
    records[0].update(count=75, count_low=75, count_high=75, reviewed=True, count_auto=73)
    ds = build_series(records)
    np.testing.assert_array_equal(ds["count_auto"].values, [np.nan, np.nan, 73])
    assert list(ds["reviewed"].values) == [False, False, True] and ds["count"].values[2] == 75
    with pytest.raises(GeoEvidenceError, match="no count records"):
        build_series([])


def test_save_series_writes_netcdf_and_csv(records, tmp_path):
    ds = build_series(records)
    paths = save_series(ds, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["series.csv", "series.nc"]
    with xr.open_dataset(paths["netcdf"], engine="netcdf4") as back:
        np.testing.assert_array_equal(back["count"].values, [12, np.nan, 73])
        assert list(back["status"].values) == ["ok", "error", "ok"]
        assert list(back["track"].values) == ["T1", "T2"]
        assert back.attrs["aoi"] == "tumangang" and back.attrs["simulated"] == 1
    lines = paths["csv"].read_text().splitlines()
    assert lines[0].startswith("datetime,scene_id,status")
    assert lines[3].startswith("2023-10-05T02:10:00Z,s3,ok")
    assert len(lines) == 4


def test_save_series_without_tracks_or_types(tmp_path):
    ds = build_series([rec("a", "2023-01-01", 3), rec("b", "2023-02-01", None, status="no_coverage")])
    save_series(ds, tmp_path)
    with xr.open_dataset(tmp_path / "series.nc", engine="netcdf4") as back:
        assert back.sizes["track"] == 0 and list(back["status"].values) == ["ok", "no_coverage"]


@pytest.fixture
def history():
    """Five years of quiet yard before 2023-10-05, an older busy day, and the peak."""
    return [
        rec("old", "2018-06-01", 50, 48, 52),  # more than five years before: outside
        rec("a", "2019-03-01", 10, 9, 12),
        rec("b", "2020-07-01", 12, 11, 13),
        rec("c", "2021-05-01", 19, 18, 21),
        rec("d", "2022-09-01", 15, 14, 16),
        rec("cloud", "2023-01-01", 40, 35, 45, status="partial", obscured=0.6),  # too hidden
        rec("peak", "2023-10-05", 73, 71, 75),
    ]


def test_baseline_max_excludes_end_date_and_older_scenes(history):
    ds = build_series(history)
    b = baseline(ds, end="2023-10-05", years=5, statistic="max")
    assert (b["value"], b["low"], b["high"]) == (19, 18, 21)
    assert b["n_scenes"] == 4 and sorted(b["scene_ids"]) == ["a", "b", "c", "d"]
    assert (b["start"], b["end"]) == ("2018-10-05", "2023-10-04")
    assert b["scene_id"] == "c"
    with_end = baseline(ds, end="2023-10-05", include_end=True)
    assert with_end["value"] == 73 and with_end["end"] == "2023-10-05"


def test_baseline_median_and_percentile(history):
    ds = build_series(history)
    med = baseline(ds, end="2023-10-05", statistic="median")
    assert (med["value"], med["low"], med["high"]) == (13.5, 12.5, 14.5)
    p90 = baseline(ds, end="2023-10-05", statistic="p90")
    # numpy's linear percentile of [10, 12, 15, 19] at 90 % (an independent oracle).
    assert p90["value"] == pytest.approx(float(np.percentile([10, 12, 15, 19], 90)), abs=0.01)
    assert p90["low"] <= p90["value"] <= p90["high"]
    with pytest.raises(SeriesError, match="'p900'"):
        baseline(ds, end="2023-10-05", statistic="p900")


def test_baseline_with_no_scene_in_window(history):
    b = baseline(build_series(history), end="2015-01-01")
    assert b["value"] is None and b["n_scenes"] == 0


def test_anomaly_ratio_and_interval_margin(history):
    ds = build_series(history)
    b = baseline(ds, end="2023-10-05")
    a = anomaly(ds, "2023-10-05", b)
    assert a["scene_id"] == "peak" and a["count"] == 73
    assert a["ratio"] == pytest.approx(73 / 19, abs=0.01)
    assert a["margin"] == 71 - 21 and a["disjoint"] is True
    assert anomaly(ds, "2023-10-06", b)["count"] is None


def test_cli_series_from_results(history, tmp_path):
    results = tmp_path / "run" / "tumangang" / "counts.json"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps({"aoi": "tumangang", "simulated": True, "records": history}))
    out = CliRunner().invoke(main, ["series", "--aoi", "tumangang", "--results", str(results)])
    assert out.exit_code == 0, out.output
    assert "SIMULATED" in out.output
    assert "baseline (max over 4 scene(s), 2018-10-05 to 2023-10-04): 19 (18–21)" in out.output
    assert (results.parent / "series.nc").is_file() and (results.parent / "series.csv").is_file()

    wrong = CliRunner().invoke(main, ["series", "--aoi", "khasan", "--results", str(results)])
    assert wrong.exit_code == 1 and "is about AOI 'tumangang'" in wrong.output
