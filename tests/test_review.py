"""Analyst review: review.json round trip, apply_reviews, malformed entries, reviewed verdicts."""

from __future__ import annotations

import copy
import json

import pytest

from geo_evidence.errors import GeoEvidenceError, ReviewError
from geo_evidence.review import add_review, apply_reviews, load_reviews, make_review


def _record(scene_id, when, count, low, high, status="ok"):
    return {"aoi": "tumangang", "scene_id": scene_id, "datetime": when, "gsd_m": 0.5, "status": status,
            "message": None if count is not None else "cloud", "count": count, "count_low": low, "count_high": high,
            "method": "individual", "obscured_fraction": 0.0 if count is not None else 0.95, "by_type": {},
            "tracks": [], "scene_checksum": "ab" * 32, "simulated": True, "source": f"/data/{scene_id}.tif",
            "detections_file": f"detections/{scene_id}.geojson"}


RECORDS = [
    _record("s-2023-06-01", "2023-06-01T02:00:00+00:00", 18, 17, 20),
    _record("s-2023-08-01", "2023-08-01T02:00:00+00:00", None, None, None, status="obscured"),
    _record("s-2023-10-05", "2023-10-05T02:10:00+00:00", 70, 68, 72),
]
WHO = {"who": "A. Analyst", "why": "counted by eye on the full-resolution image"}


def test_override_keeps_the_automatic_count_and_marks_the_record():
    before = copy.deepcopy(RECORDS)
    out = apply_reviews(RECORDS, [{"scene_id": "s-2023-10-05", "count": 74, **WHO, "when": "2026-11-21T10:00:00Z"}])
    rec = out[2]
    assert (rec["count"], rec["count_low"], rec["count_high"]) == (74, 74, 74)
    assert (rec["count_auto"], rec["count_low_auto"], rec["count_high_auto"]) == (70, 68, 72)
    assert rec["reviewed"] is True
    assert rec["review"]["who"] == "A. Analyst" and rec["review"]["when"].startswith("2026-11-21T10:00:00")
    assert out[0]["reviewed"] is False and out[0]["count"] == 18
    assert RECORDS == before  # the caller's records are untouched


def test_false_detections_and_missed_cars_shift_count_and_interval():
    entry = {"scene_id": "s-2023-06-01", **WHO, "false_detections": ["d1", "d2", "d3"],
             "missed": [{"lon": 130.604, "lat": 42.421}, {"polygon": [[130.60, 42.42], [130.601, 42.42], [130.601, 42.421]]}]}
    rec = apply_reviews(RECORDS, [entry])[0]
    assert (rec["count"], rec["count_low"], rec["count_high"]) == (17, 16, 19)
    assert rec["count_auto"] == 18
    assert rec["review"]["false_detections"] == ["d1", "d2", "d3"] and len(rec["review"]["missed"]) == 2


def test_confirmation_keeps_values_and_later_entries_win():
    confirm = {"scene_id": "s-2023-06-01", **WHO}
    rec = apply_reviews(RECORDS, [confirm])[0]
    assert (rec["count"], rec["count_low"], rec["count_high"], rec["reviewed"]) == (18, 17, 20, True)
    assert rec["review"]["action"] == "confirm"
    later = {"scene_id": "s-2023-06-01", "count": 21, "count_low": 20, "count_high": 23, "who": "B. Second", "why": "re-checked"}
    rec = apply_reviews(RECORDS, [confirm, later])[0]
    assert (rec["count"], rec["count_low"], rec["count_high"]) == (21, 20, 23)
    assert rec["review"]["who"] == "B. Second"
    # applying again to already-reviewed records starts from the automatic count
    again = apply_reviews(apply_reviews(RECORDS, [later]), [confirm])[0]
    assert again["count"] == 18 and again["count_auto"] == 18


def test_an_obscured_scene_can_be_counted_by_the_analyst_but_not_corrected():
    rec = apply_reviews(RECORDS, [{"scene_id": "s-2023-08-01", "count": 25, **WHO}])[1]
    assert rec["count"] == 25 and rec["count_auto"] is None and rec["reviewed"]
    with pytest.raises(ReviewError, match="no automatic count"):
        apply_reviews(RECORDS, [{"scene_id": "s-2023-08-01", "false_detections": ["d1"], **WHO}])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"scene_id": "s-1999-01-01", **WHO}, "unknown scene"),
        ({"scene_id": "s-2023-06-01", "count": -3, **WHO}, "'count' must be a non-negative"),
        ({"scene_id": "s-2023-06-01", "count": 2.5, **WHO}, "'count' must be a non-negative whole number"),
        ({"scene_id": "s-2023-06-01", "why": "x"}, "missing 'who'"),
        ({"scene_id": "s-2023-06-01", "who": "A. Analyst", "why": "  "}, "missing 'why'"),
        ({"scene_id": "s-2023-06-01", "count": 10, "count_low": 12, **WHO}, "count_low <= count <= count_high"),
        ({"scene_id": "s-2023-06-01", "count_low": 3, **WHO}, "needs a reviewed 'count'"),
        ({"scene_id": "s-2023-06-01", "missed": [{"lon": 42.4, "lat": 130.6}], **WHO}, "not lon/lat"),
        ({"scene_id": "s-2023-06-01", "missed": [{"polygon": [[1, 2]]}], **WHO}, "at least three"),
        ({"scene_id": "s-2023-06-01", "false_detections": "d1", **WHO}, "list of detection ids"),
        ({"scene_id": "s-2023-06-01", "when": "yesterday", **WHO}, "ISO 8601"),
        ({"count": 3, **WHO}, "no 'scene_id'"),
    ],
)
def test_malformed_entries_are_refused_with_a_clear_message(entry, message):
    with pytest.raises(ReviewError, match=message) as info:
        apply_reviews(RECORDS, [entry])
    assert isinstance(info.value, GeoEvidenceError) and isinstance(info.value, ValueError)


def test_load_reviews_names_the_file_and_entry(tmp_path):
    path = tmp_path / "review.json"
    path.write_text(json.dumps({"aoi": "tumangang", "reviews": [{"scene_id": "a", **WHO}, {"scene_id": "b", "who": "x"}]}))
    with pytest.raises(ReviewError, match=r"review\.json.*entry 1.*missing 'why'"):
        load_reviews(path)
    path.write_text("{not json")
    with pytest.raises(ReviewError, match="is not JSON"):
        load_reviews(path)


def _outputs(tmp_path):
    adir = tmp_path / "out" / "tumangang"
    (adir / "detections").mkdir(parents=True)
    (adir / "counts.json").write_text(json.dumps({"aoi": "tumangang", "simulated": True, "records": RECORDS}))
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [130.6, 42.42]},
              "properties": {"detection_id": f"s-2023-10-05-d{i}", "car_type": "tank", "track": "T1", "confidence": 0.9}}
             for i in range(3)]
    (adir / "detections" / "s-2023-10-05.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return tmp_path / "out", adir


def test_cli_round_trip_and_pipeline_applies_it(tmp_path):
    from click.testing import CliRunner

    from geo_evidence.cli import main

    out, adir = _outputs(tmp_path)
    runner = CliRunner()
    base = ["review", "add", "--aoi", "tumangang", "--out", str(out), "--scene", "s-2023-10-05", "--who", "A. Analyst"]
    res = runner.invoke(main, [*base, "--why", "two cars hidden by the gantry", "--missed", "130.6041,42.4212",
                               "--missed", "130.6042,42.4213", "--false-detection", "s-2023-10-05-d1"])
    assert res.exit_code == 0, res.output
    stored = json.loads((adir / "review.json").read_text())
    assert stored["aoi"] == "tumangang" and len(stored["reviews"]) == 1
    entry = stored["reviews"][0]
    assert entry["who"] == "A. Analyst" and entry["why"] == "two cars hidden by the gantry" and entry["when"]
    # refused entries leave the file as it was
    res = runner.invoke(main, [*base, "--why", "typo", "--false-detection", "no-such-detection"])
    assert res.exit_code == 1 and "unknown detection id" in res.output
    res = runner.invoke(main, ["review", "add", "--aoi", "tumangang", "--out", str(out), "--scene", "nope", "--who", "x", "--why", "y"])
    assert res.exit_code == 1 and "unknown scene" in res.output
    assert json.loads((adir / "review.json").read_text()) == stored

    res = runner.invoke(main, ["review", "list", "--aoi", "tumangang", "--out", str(out)])
    assert res.exit_code == 0, res.output
    line = next(l for l in res.output.splitlines() if l.startswith("s-2023-10-05"))
    assert line.split()[2:4] == ["70", "71"]  # automatic 70, reviewed 70 + 2 missed - 1 false
    from geo_evidence.pipeline import load_counts

    rec = next(r for r in load_counts(out, "tumangang") if r["scene_id"] == "s-2023-10-05")
    assert (rec["count"], rec["count_low"], rec["count_high"], rec["count_auto"]) == (71, 69, 73, 70)


def test_verdict_uses_the_reviewed_count():
    from geo_evidence.claims import evaluate_claims, validate_claim

    claim = validate_claim({
        "id": "t-2023-10-05-more-than-70", "aoi": "tumangang", "metric": "railcars", "kind": "count_at_date",
        "comparator": "gt", "value": 70, "date": "2023-10-05",
        "source": {"outlet": "Example", "date": "2023-10-06", "article": "a.txt"},
        "quote": {"fr": "plus de 70 wagons", "en": "more than 70 railcars"},
    })
    (auto,) = evaluate_claims([claim], RECORDS, today="2026-11-21")
    assert auto["verdict"] == "inconclusive"  # 68–72 straddles 70
    reviewed = apply_reviews(RECORDS, [make_review("s-2023-10-05", count=74, **WHO)])
    (after,) = evaluate_claims([claim], reviewed, today="2026-11-21")
    assert after["verdict"] == "supported"
    assert after["scenes"][0]["reviewed"] is True and after["scenes"][0]["count"] == 74


def test_add_review_refuses_without_counts(tmp_path):
    with pytest.raises(ReviewError, match="geoev count --aoi tumangang"):
        add_review("tumangang", make_review("s", **WHO), out_dir=tmp_path)
