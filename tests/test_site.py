"""The static claim site: pages, escaping, JSON-LD, offline links, atomic writes, CLI.

The results a count run would leave (counts.json, verdicts.json, manifest.json, review.json,
detection GeoJSON and two small GeoTIFF scenes) are written by :func:`write_example_outputs`
into ``tmp_path``, following docs/CONTRACTS.md. test_charts.py and test_site_browser.py use
the same builder.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

AOI_ID = "tumangang"
CLAIM_SCENE = "sim-2023-10-05"
BUSIEST_SCENE = "sim-2021-06-14"
REVIEWED_SCENE = "sim-2020-08-02"
MALICIOUS_FR = 'Moins de 30 wagons <script>alert(1)</script> « </script><img src=x onerror=alert(2)> »'
MALICIOUS_EN = "Fewer than 30 railcars </script><script>alert('en')</script>"
EXTERNAL_ARTICLE = "https://example.org/news/rason?a=1&b=<b>"

# (scene_id, datetime, count, low, high, status, obscured_fraction); None count = failed scene.
SCENES = [
    ("sim-2018-11-03", "2018-11-03T02:12:00+00:00", 8, 8, 9, "ok", 0.0),
    ("sim-2019-05-21", "2019-05-21T02:05:00+00:00", 12, 11, 13, "ok", 0.0),
    ("sim-2019-12-30", "2019-12-30T02:20:00+00:00", None, None, None, "obscured", 0.92),
    (REVIEWED_SCENE, "2020-08-02T02:08:00+00:00", 11, 10, 12, "ok", 0.0),
    ("sim-2020-12-11", "2020-12-11T02:15:00+00:00", 15, 14, 17, "partial", 0.25),
    (BUSIEST_SCENE, "2021-06-14T02:01:00+00:00", 19, 18, 21, "ok", 0.0),
    ("sim-2022-03-09", "2022-03-09T02:11:00+00:00", 9, 9, 10, "ok", 0.0),
    ("sim-2022-10-17", "2022-10-17T02:09:00+00:00", 17, 16, 18, "ok", 0.0),
    ("sim-2023-04-26", "2023-04-26T02:03:00+00:00", 14, 13, 15, "ok", 0.0),
    (CLAIM_SCENE, "2023-10-05T02:10:00+00:00", 73, 71, 75, "ok", 0.0),
    ("sim-2023-11-20", "2023-11-20T02:14:00+00:00", 40, 38, 42, "ok", 0.0),
]
CAR_TYPES = ("tank", "box", "gondola", "flat")
GSD = 1.0


def _car_polygons(aoi, n, rng):
    """``n`` car rectangles (UTM) spaced along the AOI's tracks, with their types."""
    from shapely.ops import substring

    cars = []
    for track in aoi.tracks:
        line = track.line
        pos = 30.0 + rng.uniform(0, 20)
        while pos + 14 < line.length - 30 and len(cars) < n:
            body = substring(line, pos, pos + 13.9).buffer(1.6, cap_style="flat")
            cars.append((track.name, CAR_TYPES[len(cars) % len(CAR_TYPES)], body))
            pos += 14.9
        if len(cars) >= n:
            break
    assert len(cars) == n, "the AOI's tracks hold fewer cars than asked"
    return cars


def _write_scene(path: Path, aoi, cars, rng) -> str:
    import rasterio
    from rasterio.features import rasterize
    from affine import Affine

    x0, y0, x1, y1 = aoi.yard.union(aoi.tracks[0].line).buffer(60).bounds
    for t in aoi.tracks:
        bx0, by0, bx1, by1 = t.line.buffer(60).bounds
        x0, y0, x1, y1 = min(x0, bx0), min(y0, by0), max(x1, bx1), max(y1, by1)
    cols, rows = int((x1 - x0) / GSD) + 1, int((y1 - y0) / GSD) + 1
    transform = Affine(GSD, 0.0, x0, 0.0, -GSD, y1)  # rasterio's from_origin warns with affine 3
    img = rng.normal(120, 12, size=(3, rows, cols))
    tracks = rasterize([(t.line.buffer(1.0), 1) for t in aoi.tracks], out_shape=(rows, cols), transform=transform)
    img[:, tracks == 1] -= 40
    palette = {"tank": (40, 40, 45), "box": (150, 70, 50), "gondola": (70, 90, 60), "flat": (200, 200, 190)}
    for _, car_type, poly in cars:
        mask = rasterize([(poly, 1)], out_shape=(rows, cols), transform=transform) == 1
        for b in range(3):
            img[b, mask] = palette[car_type][b]
    data = np.clip(img, 0, 255).astype("uint8")
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=3, dtype="uint8",
                       crs=aoi.crs.to_wkt(), transform=transform, photometric="RGB") as dst:
        dst.write(data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _detections(cars, scene_id, aoi):
    from pyproj import Transformer
    from shapely import transform as shp_transform
    from shapely.geometry import mapping

    tr = Transformer.from_crs(aoi.crs, "EPSG:4326", always_xy=True)
    feats = []
    for i, (track, car_type, poly) in enumerate(cars):
        ll = shp_transform(poly, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        feats.append({"type": "Feature", "geometry": mapping(ll), "properties": {
            "scene_id": scene_id, "detection_id": f"{scene_id}-d{i:03d}", "track": track, "car_type": car_type,
            "confidence": 0.9, "length_m": 13.9, "width_m": 3.2}})
    return {"type": "FeatureCollection", "features": feats}


def _claim(cid, kind, comparator, value, date, fr, en, *, article="articles/csis-2023-10-06.txt", **extra):
    return {"id": cid, "aoi": AOI_ID, "metric": "railcars", "kind": kind, "comparator": comparator, "value": value,
            "date": date, "source": {"outlet": "CSIS Beyond Parallel", "date": "2023-10-06", "article": article},
            "quote": {"fr": fr, "en": en}, **extra}


def _scene_entry(rec, used=True):
    keys = ("scene_id", "datetime", "count", "count_low", "count_high", "gsd_m", "status", "obscured_fraction")
    return {**{k: rec[k] for k in keys}, "reviewed": bool(rec.get("reviewed")), "used": used}


def example_verdicts(records):
    by_id = {r["scene_id"]: r for r in records}
    baseline = {"statistic": "max", "start": "2018-10-05", "end": "2023-10-04", "value": 19, "low": 18, "high": 21, "n_scenes": 8}
    in_base = [r for r in records if "2018-10-05" <= r["datetime"][:10] <= "2023-10-04"]
    return [
        {"claim_id": "tumangang-2023-10-05-more-than-70", "aoi": AOI_ID, "verdict": "supported",
         "reason": "The whole interval 71–75 is more than 70.",
         "claim": _claim("tumangang-2023-10-05-more-than-70", "count_at_date", "gt", 70, "2023-10-05",
                         "Les images satellite du 5 octobre montrent plus de 70 wagons.",
                         "Satellite images of 5 October show more than 70 railcars."),
         "scenes": [_scene_entry(by_id[CLAIM_SCENE])], "baseline": None, "threshold": 70},
        {"claim_id": "tumangang-five-years-at-most-20", "aoi": AOI_ID, "verdict": "inconclusive",
         "reason": "The baseline maximum 18–21 straddles 20, so it is undecided whether it is no more than 20.",
         "claim": _claim("tumangang-five-years-at-most-20", "period_statistic", "le", 20, None,
                         "Pas plus de 20 wagons n'y avaient été vus en cinq ans.",
                         "No more than 20 railcars had been seen there in five years.",
                         period={"start": "2018-10-05", "end": "2023-10-04"}, statistic="max"),
         "scenes": [_scene_entry(r, used=r["count"] is not None) for r in in_base], "baseline": baseline, "threshold": 20},
        {"claim_id": "tumangang-2023-10-05-fewer-than-30", "aoi": AOI_ID, "verdict": "contradicted",
         "reason": "No value in 71–75 is fewer than 30 <b>bold?</b>.",
         "claim": _claim("tumangang-2023-10-05-fewer-than-30", "count_at_date", "lt", 30, "2023-10-05",
                         MALICIOUS_FR, MALICIOUS_EN, article=EXTERNAL_ARTICLE),
         "scenes": [_scene_entry(by_id[CLAIM_SCENE])], "baseline": baseline, "threshold": 30},
        {"claim_id": "tumangang-containers", "aoi": AOI_ID, "verdict": "not_assessable",
         "reason": "Containers on the cars cannot be told from the images of this AOI.",
         "claim": _claim("tumangang-containers", None, None, None, None,
                         "Des conteneurs d'obus étaient chargés.", "Shell containers were being loaded.",
                         metric="containers", assessable=False),
         "scenes": [], "baseline": None, "threshold": None},
    ]


def write_example_outputs(root: Path, *, seed: int = 7, review: bool = True) -> Path:
    """Write ``root/tumangang/`` as a count run, claims check and analyst review would leave it.

    Returns the output folder (``root``) to pass as ``out_dir``.
    """
    from geo_evidence.aoi import load_aoi

    rng = np.random.default_rng(seed)
    aoi = load_aoi(AOI_ID)
    adir = root / AOI_ID
    (adir / "detections").mkdir(parents=True, exist_ok=True)
    scenes_dir = root / "scenes"
    scenes_dir.mkdir(parents=True, exist_ok=True)
    records, manifest_scenes = [], []
    for sid, when, count, low, high, status, obscured in SCENES:
        tif = scenes_dir / f"{sid}.tif"
        checksum = hashlib.sha256(sid.encode()).hexdigest()
        rec = {"aoi": AOI_ID, "scene_id": sid, "datetime": when, "gsd_m": GSD, "status": status,
               "message": "cloud covers 92 % of the yard" if count is None else None,
               "count": count, "count_low": low, "count_high": high, "method": "individual",
               "obscured_fraction": obscured, "by_type": {}, "tracks": [], "scene_checksum": checksum,
               "simulated": True, "source": str(tif), "detections_file": f"detections/{sid}.geojson"}
        cars = []
        if sid in (CLAIM_SCENE, BUSIEST_SCENE):
            cars = _car_polygons(aoi, count, rng)
            rec["scene_checksum"] = _write_scene(tif, aoi, cars, rng)
            rec["by_type"] = {t: sum(1 for c in cars if c[1] == t) for t in CAR_TYPES}
        (adir / rec["detections_file"]).write_text(json.dumps(_detections(cars, sid, aoi)), encoding="utf-8")
        records.append(rec)
        manifest_scenes.append({"id": sid, "href": str(tif), "datetime": when, "sha256": rec["scene_checksum"]})
    (adir / "counts.json").write_text(json.dumps({"aoi": AOI_ID, "simulated": True, "records": records}, indent=1), encoding="utf-8")
    (adir / "verdicts.json").write_text(json.dumps({"aoi": AOI_ID, "verdicts": example_verdicts(records)}, indent=1), encoding="utf-8")
    manifest = {
        "manifest_version": 1,
        "aoi": {"id": AOI_ID, "path": str(aoi.path), "sha256": aoi.checksum},
        "claims": None,
        "scene_source": str(scenes_dir),
        "scenes": manifest_scenes,
        "parameters": {"core": {"min_confidence": 0.5}, "margin_m": 30.0},
        "software": {"python": "3.11.2", "geo_evidence": "0.1.0", "numpy": "2.1.0", "gdal": "3.10.0"},
        "command": "geoev count --aoi tumangang",
        "started": "2026-11-21T09:00:00+00:00",
        "finished": "2026-11-21T09:01:00+00:00",
        "outputs": [{"path": "counts.json", "sha256": "0" * 64}],
    }
    (adir / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    if review:
        reviews = {"aoi": AOI_ID, "reviews": [{"scene_id": REVIEWED_SCENE, "who": "A. Analyst", "when": "2026-11-20T15:00:00+00:00",
                                               "why": "one tank car hidden in the catenary shadow <i>T3</i>",
                                               "missed": [{"lon": 130.6043, "lat": 42.4214}]}]}
        (adir / "review.json").write_text(json.dumps(reviews), encoding="utf-8")
    return root


# --------------------------------------------------------------------------- helpers


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "script":
            self._script = attrs
            self.scripts.append((attrs, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)


def parse(path: Path) -> _Collector:
    p = _Collector()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from geo_evidence.site import build_site

    root = tmp_path_factory.mktemp("site")
    out_dir = write_example_outputs(root / "geoev-out")
    out = build_site("tumangang", out=root / "public", out_dir=out_dir, compute=False)
    return out


def _claim_page(site: Path, claim_id: str) -> Path:
    return site / AOI_ID / f"{claim_id}.html"


# --------------------------------------------------------------------------- tests


def test_index_lists_every_claim_with_its_verdict_badge(site):
    page = parse(site / "index.html")
    text = " ".join(page.text)
    links = [a.get("href") for t, a in page.tags if t == "a"]
    verdicts = {v["claim_id"]: v["verdict"] for v in example_verdicts([{"scene_id": s[0], "datetime": s[1], "count": s[2], "count_low": s[3],
                                                                         "count_high": s[4], "gsd_m": GSD, "status": s[5], "obscured_fraction": s[6]} for s in SCENES])}
    for cid, verdict in verdicts.items():
        assert f"{AOI_ID}/{cid}.html" in links
        assert (site / AOI_ID / f"{cid}.html").is_file()
    badges = [a["class"] for t, a in page.tags if t == "span" and "badge" in (a.get("class") or "")]
    # the four legend badges plus one per claim
    assert sorted(b for b in badges[4:]) == sorted(f"badge verdict-{v}" for v in verdicts.values())
    assert "SIMULATED" in text


def test_claim_page_shows_quote_translation_source_reason_and_both_counts(site):
    page = _claim_page(site, "tumangang-2023-10-05-more-than-70")
    p = parse(page)
    text = re.sub(r"\s+", " ", " ".join(p.text))
    assert "Les images satellite du 5 octobre montrent plus de 70 wagons." in text
    assert "Satellite images of 5 October show more than 70 railcars." in text
    assert "CSIS Beyond Parallel" in text and "2023-10-06" in text
    assert "The whole interval 71–75 is more than 70." in text
    assert "SIMULATED IMAGERY" in text
    # automatic and reviewed counts of the reviewed scene side by side: 11 (10–12) then 12 (11–13)
    row = re.search(r'<tr class="[^"]*reviewed">\s*<td>2020-08-02.*?</tr>', page.read_text(encoding="utf-8"), re.S).group(0)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert "11 (10–12)" in cells and "12 (11–13)" in cells
    assert cells.index("11 (10–12)") + 1 == cells.index("12 (11–13)")
    assert any("A. Analyst" in c for c in cells)
    # method and provenance: scene checksums and software versions from the manifest
    assert "Method" in text and "1.00 m" in text
    counts = json.loads((site.parent / "geoev-out" / AOI_ID / "counts.json").read_text())
    claim_sha = next(r["scene_checksum"] for r in counts["records"] if r["scene_id"] == CLAIM_SCENE)
    assert claim_sha in text
    assert "3.10.0" in text  # gdal version from the manifest
    imgs = [a["src"] for t, a in p.tags if t == "img"]
    assert any(s.endswith("series-tumangang-2023-10-05-more-than-70.png") for s in imgs)
    assert any(s.endswith("evidence-tumangang-2023-10-05-more-than-70.png") for s in imgs)
    for src in imgs:
        assert (page.parent / src).is_file(), src


def test_malicious_quote_is_text_not_markup(site):
    page = _claim_page(site, "tumangang-2023-10-05-fewer-than-30")
    raw = page.read_text(encoding="utf-8")
    p = parse(page)
    # the only scripts are the JSON blocks and our bundled files; no inline alert
    for attrs, body in p.scripts:
        assert attrs.get("type") in ("application/ld+json", "application/json") or attrs.get("src", "").startswith("../static/")
        assert "alert(" not in body or attrs.get("type") in ("application/ld+json", "application/json")
        assert "</script" not in body.lower()
    assert not any(t == "img" and a.get("src") == "x" for t, a in p.tags)
    text = " ".join(p.text)
    assert MALICIOUS_FR in text  # shown to the reader exactly as written
    assert MALICIOUS_EN in text
    assert html.escape("<script>alert(1)</script>", quote=False) in raw
    # the external article URL is displayed as text, never linked
    assert EXTERNAL_ARTICLE in text
    assert not re.search(r'(?:src|href)\s*=\s*"https?:', raw)
    assert "<b>bold?</b>" not in raw and "&lt;b&gt;bold?&lt;/b&gt;" in raw


def test_json_ld_is_a_claim_review_and_survives_hostile_quotes(site):
    for cid, verdict in (("tumangang-2023-10-05-fewer-than-30", "contradicted"), ("tumangang-containers", "not_assessable")):
        p = parse(_claim_page(site, cid))
        blocks = [body for attrs, body in p.scripts if attrs.get("type") == "application/ld+json"]
        assert len(blocks) == 1
        data = json.loads(blocks[0])
        assert data["@type"] == "ClaimReview"
        assert data["author"]["name"] == "geo_evidence"
        assert data["reviewRating"]["alternateName"] == verdict
        assert data["itemReviewed"]["@type"] == "Claim"
        assert data["itemReviewed"]["author"]["name"] == "CSIS Beyond Parallel"
        assert data["itemReviewed"]["appearance"]["datePublished"] == "2023-10-06"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["datePublished"])
    data = json.loads([b for a, b in parse(_claim_page(site, "tumangang-2023-10-05-fewer-than-30")).scripts if a.get("type") == "application/ld+json"][0])
    assert data["claimReviewed"] == MALICIOUS_EN
    assert data["itemReviewed"]["text"] == MALICIOUS_FR


def test_site_makes_no_external_references(site):
    files = [p for p in site.rglob("*") if p.is_file()]
    for path in files:
        if path.suffix not in (".html", ".css", ".js") or "vendor" in path.parts:
            continue
        raw = path.read_text(encoding="utf-8")
        p = parse(path) if path.suffix == ".html" else None
        for tag, attrs in (p.tags if p else []):
            for key in ("src", "href", "action", "srcset", "data", "poster"):
                value = attrs.get(key)
                if value is None:
                    continue
                assert not re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", value, re.I), f"{path.name}: {tag} {key}={value}"
                target = (path.parent / value.split("#")[0]).resolve()
                assert target.exists(), f"{path.name}: broken relative link {value}"
        assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", raw), path.name
        assert "@import" not in raw
    # the vendored scripts are present, with their licences
    vendor = site / "static" / "vendor"
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "LICENSE-vega.txt", "README.md"):
        assert (vendor / name).is_file()


def test_series_spec_in_page_carries_the_records(site):
    p = parse(_claim_page(site, "tumangang-five-years-at-most-20"))
    spec = json.loads(next(b for a, b in p.scripts if a.get("id") == "vega-spec"))
    assert "$schema" not in spec  # no URL inside the page
    rows = {r["scene_id"]: r for r in spec["data"]["values"]}
    assert len(rows) == len(SCENES)
    assert rows[CLAIM_SCENE]["count"] == 73
    assert rows[REVIEWED_SCENE]["count"] == 12 and rows[REVIEWED_SCENE]["count_auto"] == 11


def test_refuses_a_foreign_out_folder_and_replaces_its_own_site(tmp_path, site):
    from geo_evidence.errors import OutputExistsError
    from geo_evidence.site import build_site

    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    out_dir = site.parent / "geoev-out"
    with pytest.raises(OutputExistsError, match="not a geoev site"):
        build_site("tumangang", out=foreign, out_dir=out_dir, compute=False)
    assert (foreign / "thesis.tex").read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".docs.")]  # no temp folder left

    # --force replaces it
    build_site("tumangang", out=foreign, out_dir=out_dir, compute=False, force=True)
    assert not (foreign / "thesis.tex").exists() and (foreign / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_site_cli(tmp_path, site):
    from click.testing import CliRunner

    from geo_evidence.cli import main

    out_dir = site.parent / "geoev-out"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("x")
    runner = CliRunner()
    res = runner.invoke(main, ["site", "--aoi", "tumangang", "--out", str(busy), "--results", str(out_dir), "--no-compute"])
    assert res.exit_code == 1
    assert "not a geoev site" in res.output and "--force" in res.output
    # a previous geoev site is replaced without --force, stale pages and all
    www = tmp_path / "www"
    shutil.copytree(site, www)
    (www / "stale.html").write_text("old")
    res = runner.invoke(main, ["site", "--aoi", "all", "--out", str(www), "--results", str(out_dir), "--no-compute"])
    assert res.exit_code == 0, res.output
    assert (www / "tumangang" / "tumangang-containers.html").is_file()
    assert not (www / "stale.html").exists()
    assert str(www) in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "www"]
