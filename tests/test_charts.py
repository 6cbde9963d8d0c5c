"""Charts: series PNG/SVG with intervals, thresholds, verdict colours and the simulated label;
the Vega-Lite spec; evidence panels drawn over real GeoTIFF windows; ``geoev chart``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from test_site import AOI_ID, BUSIEST_SCENE, CLAIM_SCENE, REVIEWED_SCENE, SCENES, write_example_outputs

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def charts(tmp_path_factory):
    from geo_evidence.charts import load_results, write_charts

    root = tmp_path_factory.mktemp("charts")
    out_dir = write_example_outputs(root / "geoev-out")
    results = load_results(AOI_ID, out_dir=out_dir, compute=False)
    return results, write_charts(results)


def _svg_text(path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG_NS}svg"
    return " ".join("".join(t.itertext()) for t in root.iter(f"{SVG_NS}text"))


def _png(path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)[..., :3]


def _has_colour(img: np.ndarray, hex_colour: str, *, tol: float = 0.04, min_pixels: int = 30) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img - rgb).max(axis=-1) < tol).sum()) >= min_pixels


def test_series_files_are_valid_and_carry_label_thresholds_and_marks(charts):
    from geo_evidence.charts import VERDICT_COLOURS

    results, written = charts
    png, svg = written["series"]["png"], written["series"]["svg"]
    img = _png(png)
    assert img.shape[0] >= 400 and img.shape[1] >= 800
    assert 10_000 < png.stat().st_size < 2_000_000
    text = _svg_text(svg)
    assert "SIMULATED IMAGERY" in text
    # each claim's threshold, with its comparator, and each verdict
    assert "> 70 (supported)" in text
    assert "≤ 20 (inconclusive)" in text
    assert "< 30 (contradicted)" in text
    assert "obscured / failed scene" in text and "analyst-reviewed count" in text
    assert "baseline max 2018-10–2023-10: 19" in text
    # the verdict palette is what a reader sees: green, amber and red lines in the PNG
    for verdict in ("supported", "inconclusive", "contradicted"):
        assert _has_colour(img, VERDICT_COLOURS[verdict]), verdict


def test_no_simulated_label_for_real_imagery(tmp_path):
    from geo_evidence.charts import _save, series_figure

    records = [{"scene_id": "r1", "datetime": "2023-10-05T02:00:00+00:00", "count": 5, "count_low": 4, "count_high": 6,
                "status": "ok", "simulated": False}]
    path = _save(series_figure(records, []), tmp_path / "real.svg")
    assert "SIMULATED" not in _svg_text(path)
    path = _save(series_figure([dict(records[0], simulated=True)], []), tmp_path / "sim.svg")
    assert "SIMULATED IMAGERY" in _svg_text(path)


def test_vega_lite_spec_holds_the_records_and_the_claims(charts):
    from geo_evidence.charts import VERDICT_COLOURS

    results, written = charts
    spec = json.loads(written["series"]["vega_lite"].read_text())
    assert spec["$schema"].endswith("/vega-lite/v6.json")
    assert isinstance(spec["layer"], list) and all("mark" in layer for layer in spec["layer"])
    rows = spec["data"]["values"]
    assert [r["scene_id"] for r in rows] == [s[0] for s in SCENES]
    expected = {s[0]: (s[2], s[3], s[4]) for s in SCENES}
    expected[REVIEWED_SCENE] = (12, 11, 13)  # review.json adds one missed car
    for r in rows:
        assert (r["count"], r["count_low"], r["count_high"]) == expected[r["scene_id"]]
    assert next(r for r in rows if r["scene_id"] == REVIEWED_SCENE)["count_auto"] == 11
    assert next(r for r in rows if r["scene_id"] == "sim-2019-12-30")["kind"] == "obscured / failed"
    rules = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rule" and "data" in layer
             and layer["encoding"].get("y", {}).get("field") == "threshold"]
    assert len(rules) == 1
    assert {(v["threshold"], v["verdict"]) for v in rules[0]["data"]["values"]} == {
        (70, "supported"), (20, "inconclusive"), (30, "contradicted")}
    scale = rules[0]["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == VERDICT_COLOURS
    bands = [layer for layer in spec["layer"] if layer["mark"]["type"] == "rect"]
    assert bands and bands[0]["data"]["values"][0]["start"] == "2018-10-05"
    assert "SIMULATED IMAGERY" in spec["title"]["subtitle"]
    # every field an encoding names exists in the data it reads
    for layer in spec["layer"]:
        data = layer.get("data", spec["data"])["values"]
        fields = set(data[0]) | {t.get("as") for t in layer.get("transform", [])}
        for channel in layer["encoding"].values():
            for item in channel if isinstance(channel, list) else [channel]:
                if "field" in item:
                    assert item["field"] in fields, (layer["mark"], item["field"])


def test_evidence_panels_show_both_scenes_with_detections(charts):
    from geo_evidence.charts import CAR_TYPE_COLOURS

    results, written = charts
    both = written["claims"]["tumangang-2023-10-05-fewer-than-30"]["evidence"]
    period = written["claims"]["tumangang-five-years-at-most-20"]["evidence"]  # busiest scene only
    single = written["claims"]["tumangang-2023-10-05-more-than-70"]["evidence"]
    assert "evidence" not in written["claims"]["tumangang-containers"]  # nothing to show for it
    img2, img1 = _png(both), _png(single)
    assert img2.shape[1] > img1.shape[1] == _png(period).shape[1]  # claim-date and busiest baseline scene side by side
    for car_type in ("tank", "gondola"):
        assert _has_colour(img2, CAR_TYPE_COLOURS[car_type], tol=0.03, min_pixels=200), car_type


def test_evidence_titles_name_date_gsd_and_scenes(charts, tmp_path):
    from geo_evidence.charts import _save, evidence_figure

    results, _ = charts
    verdict = next(v for v in results["verdicts"] if v["claim_id"] == "tumangang-2023-10-05-fewer-than-30")
    fig = evidence_figure(verdict, results["records"], aoi=results["aoi"], base_dir=results["dir"])
    text = _svg_text(_save(fig, tmp_path / "evidence.svg"))
    for expected in (CLAIM_SCENE, BUSIEST_SCENE, "2023-10-05 02:10 UTC", "2021-06-14 02:01 UTC", "GSD 1.00 m",
                     "73 railcars (71–75)", "19 railcars (18–21)", "SIMULATED IMAGERY", "tank"):
        assert expected in text, expected
    labels = ["".join(t.itertext()).strip() for t in ET.parse(tmp_path / "evidence.svg").getroot().iter(f"{SVG_NS}text")]
    assert labels.count("N") == 2  # a north arrow on each panel
    assert "50 m" in text or "100 m" in text  # the scale bar


def test_chart_cli_writes_files(tmp_path):
    from click.testing import CliRunner

    from geo_evidence.cli import main

    out_dir = write_example_outputs(tmp_path / "out", review=False)
    (out_dir / AOI_ID / "verdicts.json").write_text(json.dumps({"aoi": AOI_ID, "verdicts": []}))
    res = CliRunner().invoke(main, ["chart", "--aoi", AOI_ID, "--out", str(out_dir), "--no-compute"])
    assert res.exit_code == 0, res.output
    listed = res.output.split()
    charts_dir = out_dir / AOI_ID / "charts"
    assert sorted(listed) == sorted(str(charts_dir / n) for n in ("series.png", "series.svg", "series.vl.json"))
    assert all((charts_dir / n).stat().st_size > 1000 for n in ("series.png", "series.svg"))
    res = CliRunner().invoke(main, ["chart", "--aoi", AOI_ID, "--out", str(tmp_path / "empty"), "--no-compute"])
    assert res.exit_code == 1 and "geoev count --aoi tumangang" in res.output
