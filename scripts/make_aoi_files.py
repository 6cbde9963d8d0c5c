"""Write the bundled AOI files ``aoi/tumangang.geojson`` and ``aoi/khasan.geojson``.

The geometry is approximate: a yard polygon and track centre lines laid out the way an
analyst digitises them from a basemap (vertices every few tens of metres, ladders of
switches at both ends converging on the running line, the running line extending past the
yard). Positions follow published coordinates of the facilities; track counts, lengths and
bearings are plausible, not surveyed. Run ``python scripts/make_aoi_files.py`` to rebuild.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _to_lonlat(lon0: float, lat0: float, east: float, north: float) -> list[float]:
    lat = lat0 + north / 111_320.0
    lon = lon0 + east / (111_320.0 * math.cos(math.radians(lat0)))
    return [round(lon, 7), round(lat, 7)]


def _along(bearing_deg: float, s: float, d: float) -> tuple[float, float]:
    """(east, north) of a point ``s`` metres along a bearing and ``d`` metres to its right."""
    b = math.radians(bearing_deg)
    ux, uy = math.sin(b), math.cos(b)  # along-track unit vector
    rx, ry = uy, -ux  # right-hand normal
    return s * ux + d * rx, s * uy + d * ry


def make_yard(*, aoi_id, name, description, lon0, lat0, bearing, offsets, body, ladder, extend, sources):
    features = []
    half = body / 2
    # Yard polygon: the track body plus the ladders, with a 12 m margin either side.
    dmin, dmax = min(offsets) - 12, max(offsets) + 12
    ring = [_along(bearing, s, d) for s, d in [(-half - ladder, dmin), (half + ladder, dmin), (half + ladder, dmax), (-half - ladder, dmax)]]
    ring.append(ring[0])
    features.append({
        "type": "Feature",
        "properties": {"kind": "yard", "name": f"{name} yard"},
        "geometry": {"type": "Polygon", "coordinates": [[_to_lonlat(lon0, lat0, e, n) for e, n in ring]]},
    })
    side_no = 0
    for off in offsets:
        pts = []
        running = off == 0
        side_no += 0 if running else 1
        s_start = -half - ladder - (extend if running else 0)
        s_end = half + ladder + (extend if running else 0)
        # Vertices: every 40 m on the straight part, every 15 m through the ladders.
        s = s_start
        while s <= s_end + 1e-6:
            if running:
                d = 0.0
            elif abs(s) <= half:
                d = off
            else:
                t = min(1.0, (abs(s) - half) / ladder)
                d = off * (0.5 + 0.5 * math.cos(math.pi * t))  # smooth switch curve onto the running line
            pts.append(_to_lonlat(lon0, lat0, *_along(bearing, s, d)))
            step = 40.0 if (abs(s) < half - 1 or running) else 15.0
            s += step
        end = _to_lonlat(lon0, lat0, *_along(bearing, s_end, 0.0))
        if pts[-1] != end:
            pts.append(end)
        features.append({
            "type": "Feature",
            "properties": {"kind": "track", "name": "main" if running else f"T{side_no}", "gauge_mm": 1520 if side_no % 2 else 1435},
            "geometry": {"type": "LineString", "coordinates": pts},
        })
    return {
        "type": "FeatureCollection",
        "id": aoi_id,
        "name": name,
        "description": description,
        "sources": sources,
        "features": features,
    }


def main() -> None:
    out = ROOT / "aoi"
    out.mkdir(exist_ok=True)
    tumangang = make_yard(
        aoi_id="tumangang",
        name="Tumangang rail facility",
        description=(
            "Tumangang rail facility, Rason, North Korea, on the Tumen river at the Friendship "
            "Bridge to Khasan (Russia); dual-gauge line to Rajin. APPROXIMATE geometry digitised "
            "for this project: yard outline and track lines are plausible, not surveyed."
        ),
        lon0=130.6050, lat0=42.4215, bearing=58.0,
        offsets=[-25.0, -20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0],
        body=700.0, ladder=120.0, extend=150.0,
        sources=["CSIS Beyond Parallel, 6 Oct 2023 (approximate location)", "OpenStreetMap-style digitisation, approximate"],
    )
    khasan = make_yard(
        aoi_id="khasan",
        name="Khasan station",
        description=(
            "Khasan railway station, Primorsky Krai, Russia, across the Friendship Bridge from "
            "Tumangang. APPROXIMATE geometry digitised for this project, not surveyed."
        ),
        lon0=130.6400, lat0=42.4300, bearing=20.0,
        offsets=[-15.0, -10.0, -5.0, 0.0, 5.0, 10.0],
        body=500.0, ladder=90.0, extend=100.0,
        sources=["OpenStreetMap-style digitisation, approximate"],
    )
    for data in (tumangang, khasan):
        (out / f"{data['id']}.geojson").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print("wrote", out / f"{data['id']}.geojson")


if __name__ == "__main__":
    main()
