"""The claim scenario end to end on the bundled (simulated) sample tiles.

Counts every Tumangang sample scene with the real pipeline, then checks the claims: the
5 Oct 2023 "more than 70" claim and the five-year "no more than 20" baseline are supported,
a deliberately false claim ("at most 10 railcars on 5 Oct 2023") is contradicted, and the
same checks on a copy of the tiles whose 5 Oct scene is clouded over are inconclusive.
"""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from geo_evidence._resources import sample_tiles_dir
from geo_evidence.aoi import load_aoi
from geo_evidence.claims import evaluate_claims, load_claims
from geo_evidence.pipeline import run_count

pytestmark = pytest.mark.slow

FALSE_CLAIM_ID = "test-false-at-most-10"


def _claims_with_false_one():
    claims = load_claims("tumangang")
    more_than_70 = next(c for c in claims if c.get("kind") == "count_at_date" and c.get("comparator") == "gt" and c.get("value") == 70)
    false = copy.deepcopy(more_than_70)
    false.update(id=FALSE_CLAIM_ID, comparator="le", value=10)
    return claims, more_than_70, false


def _baseline_claim(claims):
    return next(c for c in claims if c.get("kind") == "period_statistic" and c.get("comparator") == "le" and c.get("value") == 20)


@pytest.fixture(scope="module")
def sample_records(tmp_path_factory):
    aoi = load_aoi("tumangang")
    (result,) = run_count(aoi, out_dir=tmp_path_factory.mktemp("out"))
    return result.records


def test_sample_run_counts_every_scene(sample_records):
    assert len(sample_records) >= 16
    assert all(r["status"] in ("ok", "partial") for r in sample_records)
    assert all(r["simulated"] for r in sample_records)


def test_false_claim_is_contradicted_and_every_verdict_gives_its_evidence(sample_records):
    claims, more_than_70, false = _claims_with_false_one()
    verdicts = {v["claim_id"]: v for v in evaluate_claims([*claims, false], sample_records)}
    assert verdicts[FALSE_CLAIM_ID]["verdict"] == "contradicted", verdicts[FALSE_CLAIM_ID]["reason"]
    # no automatic verdict may contradict what the simulated truth makes true
    assert verdicts[more_than_70["id"]]["verdict"] in ("supported", "inconclusive")
    assert verdicts[_baseline_claim(claims)["id"]]["verdict"] in ("supported", "inconclusive")
    for v in verdicts.values():
        if v["verdict"] != "not_assessable":
            assert v["scenes"] and v["reason"]


def test_reviewed_claim_date_count_supports_the_claim(sample_records):
    # An analyst who checks the 5 Oct evidence panel and confirms 73 cars settles the claim.
    from geo_evidence.review import apply_reviews, make_review

    claims, more_than_70, _ = _claims_with_false_one()
    scene_id = next(r["scene_id"] for r in sample_records if r["datetime"].startswith("2023-10-05"))
    review = make_review(scene_id, who="analyst", why="counted on the evidence panel", count=73, count_low=73, count_high=73)
    reviewed = apply_reviews(sample_records, [review])
    verdict = next(v for v in evaluate_claims(claims, reviewed) if v["claim_id"] == more_than_70["id"])
    assert verdict["verdict"] == "supported", verdict["reason"]


@pytest.mark.xfail(strict=True, reason=(
    "target not met yet (issues 3 and 4): with calibrated intervals (>= 90 % held-out coverage) "
    "the automatic count of 5 Oct 2023 (73 true) is 75 [63, 97] and the pre-summit maximum is 19 "
    "[16, 25] (2023-06-06, 19 true) while a weak-evidence scene of 2022 reaches 28 (11 [5, 28]), "
    "so an honest check cannot yet decide 'more than 70' or 'at most 20' without review"))
def test_claims_on_the_sample_tiles_are_decided_without_review(sample_records):
    claims, more_than_70, _ = _claims_with_false_one()
    verdicts = {v["claim_id"]: v for v in evaluate_claims(claims, sample_records)}
    assert verdicts[more_than_70["id"]]["verdict"] == "supported", verdicts[more_than_70["id"]]["reason"]
    baseline = _baseline_claim(claims)
    assert verdicts[baseline["id"]]["verdict"] == "supported", verdicts[baseline["id"]]["reason"]


def test_clouded_claim_scene_gives_inconclusive(tmp_path):
    """Re-render the 5 Oct scene under a cloud bank covering the yard, in a copy of the tiles."""
    from geo_evidence.simulate import simulate_scene, write_scene
    from geo_evidence.simulate.samples import sample_specs

    src = sample_tiles_dir() / "tumangang"
    copy_dir = tmp_path / "tiles"
    shutil.copytree(src, copy_dir)
    aoi = load_aoi("tumangang")
    spec = next(s for s in sample_specs("tumangang") if s["scene_id"].startswith("tumangang_2023-10-05"))
    scene = simulate_scene(aoi, **spec["kwargs"], cloud_bank=aoi.yard.buffer(60))
    write_scene(scene, copy_dir / spec["scene_id"], scene_id=spec["scene_id"])
    # keep the catalog links of the original item, with the new checksum and cloud asset
    item_path = copy_dir / spec["scene_id"] / f"{spec['scene_id']}.json"
    item = json.loads(item_path.read_text())
    item["links"] = json.loads((src / spec["scene_id"] / f"{spec['scene_id']}.json").read_text())["links"]
    item_path.write_text(json.dumps(item))

    (result,) = run_count(aoi, scenes=str(copy_dir / "catalog.json"), out_dir=tmp_path / "out")
    clouded = next(r for r in result.records if r["scene_id"] == spec["scene_id"])
    assert clouded["obscured_fraction"] > 0.5
    claims, more_than_70, false = _claims_with_false_one()
    verdicts = {v["claim_id"]: v for v in evaluate_claims([*claims, false], result.records)}
    assert verdicts[more_than_70["id"]]["verdict"] == "inconclusive"
    assert verdicts[FALSE_CLAIM_ID]["verdict"] == "inconclusive"
