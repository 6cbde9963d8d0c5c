"""The bundled SIMULATED sample tiles: scene list, truth-only regeneration, atomic build.

The Tumangang series reproduces the claim scenario: at most 20 railcars in every scene
from 2018 to August 2023, a rise after the Kim-Putin summit (13 September 2023), exactly 73
railcars on 5 October 2023, and heavy traffic on 17 June 2024 (175 ore cars, 14 box cars,
66 tank cars, 6 locomotives). A short Khasan series sits across the river.

``geoev simulate samples`` (or :func:`build_samples`) regenerates everything; the truth
of every scene can be recomputed without rendering (:func:`sample_truth_text`), which is
how the tests check that the committed files still match the code.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["SAMPLE_AOIS", "sample_specs", "sample_truth_text", "build_samples", "readme_text"]

#: AOIs that have bundled sample tiles.
SAMPLE_AOIS = ("tumangang", "khasan")

# date, UTC time, gsd, cars (int = default mix, dict = exact per type), season,
# sun azimuth/elevation (late morning local, by month), haze, misregistration (dx, dy, deg),
# cloud cover, nodata edge, note. Sun figures are typical for 42.4 N at 11:00 local time.
_TUMANGANG = [
    ("2018-04-18", "02:04", 0.5, 12, "autumn", 148, 52, 0.05, (2.1, -1.4, 0.10), 0.0, 0.0, "spring, bare ground"),
    ("2018-10-02", "01:57", 0.5, 16, "autumn", 156, 40, 0.10, (-3.0, 1.2, -0.20), 0.0, 0.06, "nodata wedge at a corner"),
    ("2019-01-21", "02:11", 0.5, 9, "snow", 162, 25, 0.05, (1.5, 2.5, 0.15), 0.0, 0.0, "SNOW: snow on ground and roofs, long low-sun shadows"),
    ("2019-06-11", "02:02", 0.5, 18, "summer", 140, 66, 0.15, (4.0, 0.5, 0.0), 0.0, 0.0, "high summer sun, short shadows"),
    ("2019-11-05", "01:55", 0.5, 14, "autumn", 160, 30, 0.20, (-1.0, -3.5, 0.25), 0.0, 0.0, "hazy"),
    ("2020-05-27", "02:08", 0.5, 11, "summer", 145, 63, 0.05, (0.5, 4.2, -0.10), 0.0, 0.0, ""),
    ("2020-09-15", "02:00", 0.5, 7, "summer", 152, 47, 0.10, (-4.5, -0.8, 0.05), 0.0, 0.0, "quietest scene"),
    ("2021-03-09", "02:06", 0.5, 6, "autumn", 155, 40, 0.08, (2.8, 2.8, -0.30), 0.0, 0.0, "late winter, bare ground"),
    ("2021-08-19", "01:59", 0.5, 10, "summer", 146, 58, 0.12, (-2.2, 3.1, 0.20), 0.45, 0.0, "PARTLY CLOUDY: some cars hidden"),
    ("2022-04-20", "02:03", 0.5, 13, "autumn", 148, 53, 0.06, (3.6, -2.9, 0.0), 0.0, 0.0, ""),
    ("2022-09-28", "02:09", 0.5, 17, "summer", 154, 43, 0.10, (-0.7, -4.6, -0.15), 0.0, 0.0, ""),
    ("2023-02-14", "02:05", 0.5, 15, "snow", 158, 32, 0.05, (1.9, -0.6, 0.10), 0.0, 0.0, "snow"),
    ("2023-06-06", "02:01", 0.5, 19, "summer", 141, 66, 0.15, (-3.8, 2.0, 0.05), 0.0, 0.0, ""),
    ("2023-08-22", "01:58", 0.5, 18, "summer", 148, 55, 0.10, (2.5, 1.5, -0.20), 0.0, 0.0, "pre-summit maximum (18; the claim says at most 20)"),
    ("2023-09-20", "02:07", 0.5, 30, "summer", 153, 45, 0.08, (-1.6, -2.4, 0.15), 0.0, 0.0, "after the 13 Sept summit"),
    ("2023-09-28", "02:02", 0.5, 45, "autumn", 155, 42, 0.12, (4.4, -1.1, -0.05), 0.0, 0.0, ""),
    ("2023-10-05", "02:10", 0.5, 73, "autumn", 157, 39, 0.06, (-2.7, 3.3, 0.20), 0.0, 0.0, "the claim date: exactly 73 railcars"),
    ("2023-10-19", "01:52", 3.0, 82, "autumn", 159, 34, 0.10, (1.2, 2.2, 0.0), 0.0, 0.0, "3 m, PlanetScope-like"),
    ("2023-12-12", "02:12", 10.0, 96, "snow", 163, 24, 0.10, (-2.0, -1.0, 0.0), 0.0, 0.0, "10 m, Sentinel-2-like, snow"),
    ("2024-06-17", "02:03", 0.5, {"gondola": 175, "box": 14, "tank": 66, "locomotive": 6}, "summer", 140, 67, 0.08, (3.1, -3.9, -0.25), 0.0, 0.0, "heavy traffic: 175 ore, 14 box, 66 tank, 6 locomotives"),
]

_KHASAN = [
    ("2019-07-10", "02:05", 0.5, 24, "summer", 143, 64, 0.10, (1.0, -2.0, 0.1), 0.0, 0.0, ""),
    ("2021-05-03", "02:01", 0.5, 12, "summer", 146, 60, 0.05, (-2.5, 1.0, -0.1), 0.0, 0.0, ""),
    ("2023-01-25", "02:09", 0.5, 18, "snow", 161, 27, 0.05, (2.0, 2.0, 0.2), 0.0, 0.0, "snow"),
    ("2023-10-05", "02:10", 0.5, 40, "autumn", 157, 39, 0.06, (-1.5, -3.0, 0.0), 0.2, 0.0, "partly cloudy"),
    ("2024-06-17", "02:03", 0.5, 60, "summer", 140, 67, 0.08, (3.0, 1.0, -0.15), 0.0, 0.0, ""),
]

_SERIES = {"tumangang": _TUMANGANG, "khasan": _KHASAN}


def _gsd_tag(gsd: float) -> str:
    return f"{int(round(gsd * 100))}cm" if gsd < 1 else f"{gsd:g}m"


def sample_specs(aoi_id: str) -> list[dict]:
    """The scenes of one AOI's sample series, each with ``scene_id``, ``note`` and ``kwargs``.

    ``kwargs`` go straight to :func:`geo_evidence.simulate.simulate_scene`.
    """
    from geo_evidence.errors import SimulationError

    if aoi_id not in _SERIES:
        raise SimulationError(f"no sample series for AOI {aoi_id!r}; known: {', '.join(SAMPLE_AOIS)}.")
    out = []
    for i, row in enumerate(_SERIES[aoi_id]):
        date, time, gsd, cars, season, az, el, haze, (dx, dy, rot), cloud, nodata, note = row
        when = _dt.datetime.fromisoformat(f"{date}T{time}:00+00:00")
        kwargs = {
            "when": when,
            "gsd_m": gsd,
            "season": season,
            "sun_azimuth": float(az),
            "sun_elevation": float(el),
            "haze": haze,
            "misregistration_m": (dx, dy),
            "misregistration_deg": rot,
            "cloud_cover": cloud,
            "nodata_edge": nodata,
            "seed": 20230000 + 100 * SAMPLE_AOIS.index(aoi_id) + i,
        }
        if isinstance(cars, dict):
            kwargs["cars"] = dict(cars)
        else:
            kwargs["n_cars"] = cars
        out.append({"scene_id": f"{aoi_id}_{date}_{_gsd_tag(gsd)}", "aoi": aoi_id, "note": note, "kwargs": kwargs})
    return out


def _truth_kwargs(kwargs: dict) -> dict:
    drop = ("haze", "blur", "noise", "panchromatic", "crs")
    return {k: v for k, v in kwargs.items() if k not in drop}


def sample_truth_text(spec: dict, aoi=None) -> str:
    """The truth GeoJSON text of one sample scene, computed without rendering."""
    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_truth, truth_geojson

    aoi = aoi or load_aoi(spec["aoi"])
    kw = _truth_kwargs(spec["kwargs"])
    truth = simulate_truth(aoi, **kw)
    params = {"when": kw["when"].isoformat()}
    return truth_geojson(truth, scene_id=spec["scene_id"], params=params)


def readme_text() -> str:
    """sample_tiles/README.md: what the tiles are (SIMULATED), the scene list, the command."""
    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_truth

    lines = [
        "# Sample tiles — SIMULATED",
        "",
        "**Every image here is SIMULATED.** None is a real satellite acquisition. They were",
        "rendered by `geo_evidence.simulate` to reproduce the scenario of the public claim about",
        "the Tumangang rail facility (\"over 70 railcars on 5 October 2023, where no more than 20",
        "were seen in five years\") so the pipeline, the counter and the claim checks can be",
        "exercised end to end. Every STAC item carries `simulated: true`; every GeoTIFF carries",
        "the tag `SIMULATED=yes` and says so in its image description.",
        "",
        "Regenerate all of it (deterministic, seeded; written atomically):",
        "",
        "    geoev simulate samples            # writes sample_tiles/ in the checkout",
        "    geoev simulate samples --out DIR  # anywhere else",
        "",
        "Layout: `<aoi>/catalog.json` is a self-contained static STAC catalog; each scene has a",
        "folder `<aoi>/<scene_id>/` with the COG (`.tif`, JPEG/YCbCr with an internal nodata",
        "mask at 0.5 m, DEFLATE at 3 m and 10 m; `TIFFTAG_DATETIME` set), the truth",
        "(`.truth.geojson`: one polygon per railcar with `type`, `track`, `visible`, `cut_id`,",
        "in EPSG:4326), the STAC item (`.json`, with `file:checksum` of the image) and, for cloudy",
        "scenes, a cloud mask (`.cloud.tif`). Images are in the AOI's UTM zone (EPSG:32652).",
        "",
        "Counts below are the true number of railcars in the scene (locomotives included,",
        "listed separately); *visible* counts cars with at least half their footprint",
        "cloud-free and on valid data.",
        "",
    ]
    for aoi_id in SAMPLE_AOIS:
        aoi = load_aoi(aoi_id)
        lines += [
            f"## {aoi.name} (`{aoi_id}`)",
            "",
            "| scene | date (UTC) | GSD | cars | visible | by type | sun az/el | shift dx, dy (m), rot | special |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for spec in sample_specs(aoi_id):
            truth = simulate_truth(aoi, **_truth_kwargs(spec["kwargs"]))
            by: dict[str, int] = {}
            for t in truth:
                by[t["type"]] = by.get(t["type"], 0) + 1
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
            kw = spec["kwargs"]
            dx, dy = kw["misregistration_m"]
            ground = {"summer": "summer ground", "autumn": "bare/brown ground", "snow": "snow"}[kw["season"]]
            lines.append(
                f"| `{spec['scene_id']}` | {kw['when']:%Y-%m-%d %H:%M} | {kw['gsd_m']:g} m | {len(truth)} | "
                f"{sum(t['visible'] for t in truth)} | {kinds} | {kw['sun_azimuth']:g}° / {kw['sun_elevation']:g}° | "
                f"{dx:+.1f}, {dy:+.1f}, {kw['misregistration_deg']:+.2f}° | {spec['note'] or ground} |"
            )
        lines.append("")
    lines += [
        "Scenes vary sun angle, haze, blur and the misregistration (up to ±5 m and ±0.3°)",
        "between the AOI's track lines and where the tracks are in the image.",
        "",
    ]
    return "\n".join(lines)


def build_samples(
    out_dir: str | os.PathLike | None = None,
    *,
    aois: tuple[str, ...] = SAMPLE_AOIS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Render every sample scene and write ``<out_dir>/<aoi>/catalog.json`` atomically.

    Each AOI's folder is built in a temporary sibling folder and swapped in with a rename,
    so a reader never sees half a catalog. Returns the catalog path per AOI.
    """
    import pystac

    from geo_evidence._resources import sample_tiles_dir
    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_scene, write_scene

    root = Path(out_dir) if out_dir is not None else sample_tiles_dir()
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for aoi_id in aois:
        aoi = load_aoi(aoi_id)
        tmp = Path(tempfile.mkdtemp(prefix=f".{aoi_id}-building-", dir=root))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the tiles are for everyone
        try:
            catalog = pystac.Catalog(
                id=f"{aoi_id}-simulated",
                description=f"SIMULATED sample scenes of {aoi.name}, made by geo_evidence.simulate (not real imagery).",
                title=f"{aoi.name} — simulated sample tiles",
                extra_fields={"simulated": True},
            )
            for spec in sample_specs(aoi_id):
                if progress:
                    progress(spec["scene_id"])
                scene = simulate_scene(aoi, **spec["kwargs"])
                paths = write_scene(scene, tmp / spec["scene_id"], scene_id=spec["scene_id"])
                item = pystac.Item.from_file(str(paths["item"]))
                catalog.add_item(item)
            catalog.normalize_hrefs(str(tmp) + os.sep)
            catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
            _tidy_json(tmp)
            final = root / aoi_id
            old = None
            if final.exists():
                old = root / f".{aoi_id}-old-{os.getpid()}"
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        written[aoi_id] = root / aoi_id / "catalog.json"
    if set(aois) == set(SAMPLE_AOIS):
        (root / "README.md").write_text(readme_text(), encoding="utf-8")
    return written


def _tidy_json(folder: Path) -> None:
    # pystac writes with its own indentation; re-dump with sorted-free stable formatting so
    # a regeneration only changes what really changed.
    for path in folder.rglob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
