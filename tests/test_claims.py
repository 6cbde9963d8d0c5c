"""Claim records, their validation, the bundled claims files, verdicts and `geoev claims check`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo_evidence.claims import evaluate_claim, evaluate_claims, load_claims, validate_claims
from geo_evidence.cli import main
from geo_evidence.errors import ClaimError

ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "articles"


def rec(scene_id, day, count, low=None, high=None, *, status="ok", obscured=0.0, by_type=None, reviewed=False):
    failed = count is None
    return {
        "aoi": "tumangang", "scene_id": scene_id, "datetime": f"{day}T02:10:00+00:00", "gsd_m": 0.5,
        "status": status, "message": None, "count": count,
        "count_low": None if failed else (count if low is None else low),
        "count_high": None if failed else (count if high is None else high),
        "method": None if failed else "individual", "obscured_fraction": None if failed else obscured,
        "by_type": None if failed else (by_type or {}), "tracks": [], "simulated": True, "reviewed": reviewed,
    }


SOURCE = {"outlet": "test outlet", "date": "2023-10-13", "article": "004_70b2050b1808ca1b.txt"}
QUOTE = {"fr": "plus de 70 wagons", "en": "more than 70 railcars"}


def claim(**fields):
    base = {
        "id": "c1", "aoi": "tumangang", "metric": "railcars", "kind": "count_at_date", "date": "2023-10-05",
        "comparator": "gt", "value": 70, "source": SOURCE, "quote": QUOTE,
    }
    base.update(fields)
    return validate_claims({"aoi": "tumangang", "claims": [base]})[0]


PRE_SUMMIT = [
    rec("y2019", "2019-03-01", 12, 11, 13),
    rec("y2020", "2020-07-01", 18, 17, 19),
    rec("y2021", "2021-05-01", 19, 18, 20),
    rec("y2022", "2022-09-01", 15, 14, 16),
]
PEAK = rec("peak", "2023-10-05", 73, 71, 75)


# --------------------------------------------------------------------------- verdicts


def test_more_than_70_supported_by_73_plus_minus_2():
    v = evaluate_claim(claim(), PRE_SUMMIT + [PEAK])
    assert v["verdict"] == "supported"
    assert v["threshold"] == 70 and v["claim_id"] == "c1" and v["aoi"] == "tumangang"
    (used,) = [s for s in v["scenes"] if s["used"]]
    assert (used["scene_id"], used["count"], used["count_low"], used["count_high"]) == ("peak", 73, 71, 75)
    assert "71–75" in v["reason"] and v["baseline"] is None


def test_at_most_10_contradicted_by_73_plus_minus_2():
    v = evaluate_claim(claim(comparator="le", value=10), [PEAK])
    assert v["verdict"] == "contradicted"
    assert "at most 10" in v["reason"]


def test_interval_straddling_threshold_is_inconclusive():
    v = evaluate_claim(claim(comparator="gt", value=72), [PEAK])
    assert v["verdict"] == "inconclusive" and "straddles 72" in v["reason"]
    # "at least 73" on 71–75: the retelling cannot be confirmed from this interval.
    assert evaluate_claim(claim(comparator="ge", value=73), [PEAK])["verdict"] == "inconclusive"
    assert evaluate_claim(claim(comparator="ge", value=71), [PEAK])["verdict"] == "supported"
    assert evaluate_claim(claim(comparator="lt", value=71), [PEAK])["verdict"] == "contradicted"


def test_no_scene_within_tolerance_is_inconclusive():
    later = rec("later", "2023-10-09", 73, 71, 75)
    v = evaluate_claim(claim(tolerance_days=2), PRE_SUMMIT + [later])
    assert v["verdict"] == "inconclusive" and "no scene lies within 2 day(s) of 2023-10-05" in v["reason"]
    assert v["scenes"] == []
    assert evaluate_claim(claim(tolerance_days=4), [later])["verdict"] == "supported"


@pytest.mark.parametrize("status,obscured", [("obscured", 1.0), ("partial", 0.6), ("error", None), ("no_coverage", None)])
def test_obscured_or_failed_scene_is_inconclusive(status, obscured):
    scene = rec("cloudy", "2023-10-05", None if obscured is None else 73, 71, 75, status=status,
                obscured=obscured or 0.0)
    v = evaluate_claim(claim(), [scene])
    assert v["verdict"] == "inconclusive"
    assert "cloudy" in v["reason"] and "unusable" in v["reason"]
    (listed,) = v["scenes"]
    assert listed["used"] is False and listed["note"].startswith("not used")


def test_reviewed_count_is_used_as_given():
    scene = rec("cloudy", "2023-10-05", 74, 74, 74, status="partial", obscured=0.6, reviewed=True)
    v = evaluate_claim(claim(), [scene])
    assert v["verdict"] == "supported" and v["scenes"][0]["reviewed"] is True


def test_not_assessable_claim():
    c = claim(metric="containers", assessable=False, reason="containers were counted at the port, not at this yard",
              comparator="gt", value=1000)
    v = evaluate_claim(c, [PEAK])
    assert v["verdict"] == "not_assessable" and "port" in v["reason"] and v["scenes"] == []


def test_five_year_baseline_claim_supported_by_pre_summit_records():
    c = claim(kind="period_statistic", period={"years": 5, "before": "2023-10-05"}, statistic="max",
              comparator="le", value=20)
    v = evaluate_claim(c, PRE_SUMMIT + [PEAK])
    assert v["verdict"] == "supported"
    assert v["baseline"]["value"] == 19 and v["baseline"]["n_scenes"] == 4
    assert v["baseline"]["end"] == "2023-10-04"  # the peak day is not its own baseline
    # One busier day before the summit contradicts "no more than 20".
    busy = rec("busy", "2022-12-01", 30, 29, 31)
    assert evaluate_claim(c, PRE_SUMMIT + [busy, PEAK])["verdict"] == "contradicted"
    # A day whose interval reaches above 20 leaves it open.
    edge = rec("edge", "2022-12-01", 20, 19, 22)
    assert evaluate_claim(c, PRE_SUMMIT + [edge, PEAK])["verdict"] == "inconclusive"


def test_unprecedented_comparison_against_five_year_maximum():
    c = claim(kind="comparison", baseline={"years": 5, "statistic": "max"}, comparator="gt", value=1)
    v = evaluate_claim(c, PRE_SUMMIT + [PEAK])
    assert v["verdict"] == "supported" and v["baseline"]["high"] == 20 and v["threshold"] == 19
    assert v["ratio"]["low"] == pytest.approx(71 / 20, abs=1e-3)
    level = rec("level", "2023-10-05", 19, 17, 21)
    assert evaluate_claim(c, PRE_SUMMIT + [level])["verdict"] == "inconclusive"
    low = rec("low", "2023-10-05", 8, 7, 9)
    assert evaluate_claim(c, PRE_SUMMIT + [low])["verdict"] == "contradicted"
    assert evaluate_claim(c, [PEAK])["verdict"] == "inconclusive"  # nothing to compare with


def test_far_greater_is_a_ratio_to_the_baseline():
    # 71–75 against a five-year maximum of 19 (18–20 from the scenes' intervals): ratio 3.55–4.17.
    far = dict(kind="comparison", baseline={"years": 5, "statistic": "max"}, comparator="ge")
    assert evaluate_claim(claim(value=2, **far), PRE_SUMMIT + [PEAK])["verdict"] == "supported"
    assert evaluate_claim(claim(value=4, **far), PRE_SUMMIT + [PEAK])["verdict"] == "inconclusive"
    assert evaluate_claim(claim(value=5, **far), PRE_SUMMIT + [PEAK])["verdict"] == "contradicted"


def test_period_with_explicit_start_and_end():
    c = claim(kind="period_statistic", period={"start": "2020-01-01", "end": "2021-12-31"}, statistic="median",
              comparator="approx", value=18.5)
    v = evaluate_claim(c, PRE_SUMMIT + [PEAK])
    # Median of the two scenes inside (18 and 19): 18.5, interval 17.5–19.5, inside 16.65–20.35.
    assert v["verdict"] == "supported" and v["baseline"]["n_scenes"] == 2
    assert sorted(s["scene_id"] for s in v["scenes"]) == ["y2020", "y2021"]
    empty = claim(kind="period_statistic", period={"start": "2010-01-01", "end": "2011-12-31"}, statistic="max",
                  comparator="le", value=20)
    assert evaluate_claim(empty, PRE_SUMMIT)["verdict"] == "inconclusive"
    with pytest.raises(ClaimError, match="field 'period'.*ends"):
        claim(kind="period_statistic", period={"start": "2021-01-01", "end": "2020-01-01"}, statistic="max")


def test_approximately_uses_a_band():
    assert evaluate_claim(claim(comparator="approx", value=73), [PEAK])["verdict"] == "supported"
    assert evaluate_claim(claim(comparator="approx", value=40), [PEAK])["verdict"] == "contradicted"
    wide = rec("wide", "2023-10-05", 73, 60, 90)
    v = evaluate_claim(claim(comparator="approx", value=73), [wide])
    assert v["verdict"] == "inconclusive" and v["band"] == [65.7, 80.3]


def test_by_type_claim_uses_the_car_type_count():
    # types verified (type_confusion 0): the type count is as good as the total's interval
    scene = rec("june", "2024-06-17", 261, 256, 266, by_type={"gondola": 175, "box": 14, "tank": 66, "locomotive": 6})
    scene["type_confusion"] = 0.0
    ore = claim(car_type="gondola", date="2024-06-17", comparator="approx", value=175)
    v = evaluate_claim(ore, [scene])
    assert v["verdict"] == "supported" and v["measured"]["value"] == 175
    tanks = claim(car_type="tank", date="2024-06-17", comparator="gt", value=100)
    assert evaluate_claim(tanks, [scene])["verdict"] == "contradicted"


def test_automatic_type_guesses_widen_by_type_intervals():
    # An automatic count whose type guesses are off (141 of 175 ore cars recognised) must not
    # contradict the true "about 175 ore cars": the type confusion makes it inconclusive.
    scene = rec("june", "2024-06-17", 245, 230, 270, by_type={"gondola": 141, "tank": 80, "box": 7, "locomotive": 11, "flat": 6})
    ore = claim(car_type="gondola", date="2024-06-17", comparator="approx", value=175)
    v = evaluate_claim(ore, [scene])
    assert v["verdict"] == "inconclusive", v["reason"]
    assert v["measured"]["low"] < 141 < 175 < v["measured"]["high"]
    # ...yet a claim far outside even the widened interval is still contradicted
    assert evaluate_claim(claim(car_type="gondola", date="2024-06-17", comparator="gt", value=400), [scene])["verdict"] == "contradicted"


def test_claim_after_evaluation_day_is_inconclusive():
    v = evaluate_claim(claim(date="2023-10-05"), [PEAK], today="2023-10-01")
    assert v["verdict"] == "inconclusive" and "after the evaluation day" in v["reason"]


def test_bundled_tumangang_claims_against_a_plausible_history():
    claims = load_claims("tumangang")
    june = rec("june", "2024-06-17", 261, 256, 266, by_type={"gondola": 175, "box": 14, "tank": 66, "locomotive": 6})
    june["type_confusion"] = 0.0  # types verified
    verdicts = {v["claim_id"]: v["verdict"] for v in evaluate_claims(claims, PRE_SUMMIT + [PEAK, june])}
    assert verdicts["tumangang-2023-10-05-more-than-70"] == "supported"
    assert verdicts["tumangang-2023-10-05-approx-73-csis"] == "supported"
    assert verdicts["tumangang-2023-10-05-at-least-73"] == "inconclusive"  # drift shows
    assert verdicts["tumangang-five-years-before-2023-10-05-at-most-20"] == "supported"
    assert verdicts["tumangang-2023-10-05-unprecedented"] == "supported"
    assert verdicts["tumangang-2024-06-17-ore-cars-approx-175"] == "supported"
    assert verdicts["containers-over-1000-delivered"] == "not_assessable"
    assert verdicts["millions-of-shells-sought"] == "not_assessable"


# --------------------------------------------------------------------------- the claims files


def test_bundled_claims_files_load_and_validate():
    tumangang = load_claims("tumangang")
    ids = [c["id"] for c in tumangang]
    assert len(ids) == len(set(ids)) >= 10
    kinds = {c.get("kind") for c in tumangang}
    assert {"count_at_date", "period_statistic", "comparison"} <= kinds
    assert {c["car_type"] for c in tumangang if c.get("car_type")} == {"gondola", "box", "tank", "locomotive"}
    not_assessable = [c for c in tumangang if not c["assessable"]]
    assert {c["metric"] for c in not_assessable} == {"containers", "shells"}
    assert all(c["reason"] for c in not_assessable)
    assert isinstance(load_claims("khasan"), list)


@pytest.mark.skipif(not ARTICLES.is_dir(), reason="the source articles are kept outside the repository")
def test_quotes_from_articles_are_verbatim():
    for c in load_claims("tumangang"):
        article = ARTICLES / c["source"]["article"]
        if article.suffix == ".txt" and article.is_file():
            text = article.read_text(encoding="utf-8")
            assert c["quote"]["fr"] in text, c["id"]


VALID = {"aoi": "tumangang", "claims": [{
    "id": "ok-claim", "aoi": "tumangang", "metric": "railcars", "kind": "count_at_date", "date": "2023-10-05",
    "comparator": "gt", "value": 70, "source": SOURCE, "quote": QUOTE,
}]}


def _mutate(path, value):
    data = copy.deepcopy(VALID)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "path,value,expected",
    [
        (("aoi",), "atlantis", "'atlantis' is not a bundled AOI"),
        (("claims", 0, "aoi"), "khasan", "field 'aoi'"),
        (("claims", 0, "date"), "2023-13-05", "field 'date': '2023-13-05' is not a calendar date"),
        (("claims", 0, "date"), "5 Oct 2023", "field 'date': '5 Oct 2023' is not a date"),
        (("claims", 0, "comparator"), "more", "field 'comparator': 'more' is unknown"),
        (("claims", 0, "kind"), "rumour", "field 'kind': 'rumour' is unknown"),
        (("claims", 0, "quote"), KeyError, "field 'quote': is missing"),
        (("claims", 0, "value"), KeyError, "field 'value': is missing"),
        (("claims", 0, "value"), "seventy", "field 'value'"),
        (("claims", 0, "metric"), "containers", "field 'metric': 'containers' cannot be measured"),
        (("claims", 0, "car_type"), "ore", "field 'car_type': 'ore' is unknown"),
        (("claims", 0, "comparater"), "gt", "field 'comparater': is not a claim field"),
        (("claims", 0, "id"), "Bad Id!", "field 'id'"),
        (("claims", 0, "assessable"), False, "field 'reason': is missing"),
        (("claims", 0, "source"), {"outlet": "x"}, "field 'source'"),
    ],
)
def test_malformed_claims_raise_claim_error(path, value, expected):
    with pytest.raises(ClaimError, match=None) as err:
        validate_claims(_mutate(path, value), label="bad.claims.json")
    assert expected in str(err.value)
    assert "bad.claims.json" in str(err.value)


def test_duplicate_ids_and_bad_json(tmp_path):
    data = copy.deepcopy(VALID)
    data["claims"].append(copy.deepcopy(data["claims"][0]))
    with pytest.raises(ClaimError, match="claim 'ok-claim', field 'id': is used by two claims"):
        validate_claims(data)
    broken = tmp_path / "broken.claims.json"
    broken.write_text('{"aoi": "tumangang", "claims": [', encoding="utf-8")
    with pytest.raises(ClaimError, match="is not valid JSON"):
        load_claims(broken)
    with pytest.raises(ClaimError, match="does not exist"):
        load_claims(tmp_path / "missing.claims.json")
    with pytest.raises(ClaimError, match="not 'khasan'"):
        validate_claims(VALID, aoi="khasan")


# --------------------------------------------------------------------------- CLI


def _results(tmp_path, records):
    path = tmp_path / "out" / "tumangang" / "counts.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"aoi": "tumangang", "simulated": True, "records": records}), encoding="utf-8")
    return path


def test_cli_claims_check_table_json_and_verdicts_file(tmp_path):
    results = _results(tmp_path, PRE_SUMMIT + [PEAK])
    out = CliRunner().invoke(main, ["claims", "check", "--aoi", "tumangang", "--results", str(results), "--today", "2025-01-01"])
    assert out.exit_code == 0, out.output
    line = next(l for l in out.output.splitlines() if l.startswith("tumangang-2023-10-05-more-than-70"))
    assert "supported" in line and "73 (71–75) on 2023-10-05" in line
    assert "SIMULATED" in out.output
    written = json.loads((results.parent / "verdicts.json").read_text(encoding="utf-8"))
    assert written["aoi"] == "tumangang"
    by_id = {v["claim_id"]: v for v in written["verdicts"]}
    assert by_id["tumangang-2024-06-17-box-cars-approx-14"]["verdict"] == "inconclusive"  # no June 2024 scene
    assert by_id["millions-of-shells-sought"]["verdict"] == "not_assessable"

    js = CliRunner().invoke(main, ["claims", "check", "--aoi", "tumangang", "--results", str(results), "--format", "json",
                                   "--out", str(tmp_path / "elsewhere")])
    assert js.exit_code == 0, js.output
    payload = json.loads(js.stdout)
    assert len(payload["verdicts"]) == len(load_claims("tumangang"))
    assert (tmp_path / "elsewhere" / "tumangang" / "verdicts.json").is_file()


def test_cli_claims_check_bad_claims_file_is_one_line(tmp_path):
    results = _results(tmp_path, [PEAK])
    bad = tmp_path / "bad.claims.json"
    bad.write_text(json.dumps(_mutate(("claims", 0, "comparator"), "more")), encoding="utf-8")
    out = CliRunner().invoke(main, ["claims", "check", "--aoi", "tumangang", "--results", str(results), "--claims", str(bad)])
    assert out.exit_code == 1
    assert "geoev: error:" in out.output and "'comparator'" in out.output and "Traceback" not in out.output
