"""Where everything goes in a simulated scene, without drawing a pixel.

The layout holds every geometric fact of a scene: the rendered extent, the true track
lines (the AOI's lines moved by the misregistration), every railcar with its polygon, the
static site around the yard (road, buildings, platform, catenary), the per-scene clutter
(trucks, container stacks), the cloud field and the valid-data footprint. Visibility of
each car is decided here too, from the cloud field and the footprint, so the truth of a
scene can be recomputed quickly and exactly without rendering it.

Random streams are separated (``numpy.random.default_rng([seed, k])``) so that the car
layout does not change when, say, the cloud model gains a parameter.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, Polygon, box

from geo_evidence.errors import SimulationError

__all__ = ["CAR_TYPES", "SEASONS", "SceneLayout", "plan_scene", "cloud_alpha_at"]

#: Seasons the renderer knows.
SEASONS = ("summer", "autumn", "snow")

#: Railcar types (the core's vocabulary, minus ``unknown``).
CAR_TYPES = ("box", "tank", "gondola", "flat", "hopper", "locomotive")

# Body height above ground (m) sets shadow length; lengths/widths from DESIGN.md.
_HEIGHT = {"gondola": 3.5, "tank": 4.6, "box": 4.9, "flat": 1.4, "hopper": 4.4, "locomotive": 5.0}
_WIDTH = {"gondola": 3.16, "tank": 3.25, "box": 3.2, "flat": 3.1, "hopper": 3.2, "locomotive": 3.3}

# Default mix when only a total is asked for.
_DEFAULT_MIX = {"gondola": 0.40, "tank": 0.25, "box": 0.15, "flat": 0.12, "hopper": 0.08}

#: Gap between coupled car bodies (m).
COUPLING_GAP_M = 1.0
#: Tracks closer than this to another track (ladders, switches) get no cars.
MIN_TRACK_SPACING_M = 4.7
#: Least clear track left between two cuts, on each side (m).
CUT_CLEARANCE_M = 4.0

# Stream numbers for the seeded generators.
_S_CARS, _S_CLOUD, _S_CLUTTER, _S_FOOT = 1, 2, 3, 4


@dataclass
class SceneLayout:
    """Geometry of one simulated scene, in the AOI's metric CRS."""

    aoi_id: str
    crs: Any
    bounds: tuple[float, float, float, float]
    gsd_m: float
    tracks: dict[str, LineString]
    cars: list[dict]
    site: dict[str, list]
    clutter: dict[str, list]
    footprint: Polygon
    cloud: dict | None
    params: dict = field(default_factory=dict)

    @property
    def truth(self) -> list[dict]:
        """Truth records (``polygon_map`` in the AOI CRS), without rendering details."""
        keys = ("car_id", "type", "track", "visible", "length_m", "width_m", "cut_id", "polygon_map")
        return [{k: c[k] for k in keys} for c in self.cars]


# --------------------------------------------------------------------------- helpers


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def _yard_frame(tracks) -> tuple[np.ndarray, float]:
    """Centre and along-yard angle (radians) from the longest track's end points."""
    longest = max(tracks, key=lambda line: line.length)
    (x0, y0), (x1, y1) = longest.coords[0], longest.coords[-1]
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    return centre, math.atan2(y1 - y0, x1 - x0)


def _rect(cx, cy, length, width, angle) -> Polygon:
    c, s = math.cos(angle), math.sin(angle)
    hl, hw = length / 2, width / 2
    pts = [(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)]
    return Polygon([(cx + u * c - v * s, cy + u * s + v * c) for u, v in pts])


def _strip_along(line: LineString, s0: float, s1: float, width: float) -> np.ndarray:
    """Polygon ring (K, 2) of a strip of ``width`` along ``line`` from arc length s0 to s1."""
    n = max(2, int(math.ceil((s1 - s0) / 3.0)) + 1)
    s = np.linspace(s0, s1, n)
    pts = shapely.get_coordinates(shapely.line_interpolate_point(line, s))
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(line, np.minimum(s + 0.5, line.length)))
    behind = shapely.get_coordinates(shapely.line_interpolate_point(line, np.maximum(s - 0.5, 0.0)))
    tan = ahead - behind
    tan /= np.linalg.norm(tan, axis=1, keepdims=True)
    normal = np.column_stack([-tan[:, 1], tan[:, 0]])
    left = pts + normal * width / 2
    right = pts - normal * width / 2
    return np.vstack([left, right[::-1]])


def _usable_intervals(line: LineString, others: list[LineString], keep) -> list[tuple[float, float]]:
    """Arc-length intervals of ``line`` far enough from every other track and inside ``keep``."""
    s = np.arange(0.0, line.length, 1.0)
    pts = shapely.line_interpolate_point(line, s)
    ok = shapely.contains(keep, pts)
    for other in others:
        ok &= shapely.distance(pts, other) >= MIN_TRACK_SPACING_M
    out, start = [], None
    for i, flag in enumerate(ok):
        if flag and start is None:
            start = s[i]
        if (not flag or i == len(ok) - 1) and start is not None:
            end = s[i] if flag else s[i - 1]
            if end - start > 5:
                out.append((float(start) + 1.0, float(end) - 1.0))
            start = None
    return out


# --------------------------------------------------------------------------- cars


def _car_length(kind: str, rng: np.random.Generator) -> float:
    if kind == "gondola":
        return 13.9
    if kind == "tank":
        return float(rng.choice([11.7, 12.0, 12.0, 12.5]))
    if kind == "box":
        return float(np.round(rng.uniform(14.7, 16.9), 2))
    if kind == "flat":
        return float(rng.choice([13.4, 13.4, 19.6]))
    if kind == "hopper":
        return 14.7
    if kind == "locomotive":
        return float(rng.choice([18.5, 21.0, 34.0]))
    raise SimulationError(f"unknown car type {kind!r}; use one of {', '.join(CAR_TYPES)}.")


def _requested_counts(n_cars, cars, rng) -> dict[str, int]:
    if cars is not None:
        bad = [k for k in cars if k not in CAR_TYPES]
        if bad:
            raise SimulationError(f"cars has unknown type(s) {bad}; use {', '.join(CAR_TYPES)}.")
        if any(int(v) < 0 for v in cars.values()):
            raise SimulationError(f"cars counts must be >= 0, got {dict(cars)}.")
        return {k: int(cars.get(k, 0)) for k in CAR_TYPES}
    n = 20 if n_cars is None else int(n_cars)
    if n < 0:
        raise SimulationError(f"n_cars must be >= 0, got {n_cars}.")
    kinds = list(_DEFAULT_MIX)
    split = rng.multinomial(n, np.array(list(_DEFAULT_MIX.values())))
    out = {k: 0 for k in CAR_TYPES}
    out.update({k: int(v) for k, v in zip(kinds, split)})
    return out


def _make_cuts(counts: dict[str, int], rng: np.random.Generator) -> list[list[str]]:
    total = sum(counts.values())
    cuts: list[list[str]] = []
    for kind in ("gondola", "tank", "box", "flat", "hopper"):
        n = counts[kind]
        while n > 0:
            if total <= 25:
                size = int(rng.integers(1, 7))
            elif kind in ("gondola", "tank"):
                size = int(rng.integers(6, 31))
            else:
                size = int(rng.integers(2, 11))
            size = min(size, n)
            cuts.append([kind] * size)
            n -= size
    # Mixed trains: swap a few cars between cuts; type counts stay exact.
    if len(cuts) > 1:
        for _ in range(len(cuts)):
            a, b = rng.integers(0, len(cuts), 2)
            if a != b and rng.random() < 0.35:
                i, j = rng.integers(0, len(cuts[a])), rng.integers(0, len(cuts[b]))
                cuts[a][i], cuts[b][j] = cuts[b][j], cuts[a][i]
    for _ in range(counts["locomotive"]):
        if cuts and rng.random() < 0.8:
            cut = cuts[int(rng.integers(0, len(cuts)))]
            if cut[0] != "locomotive":
                cut.insert(0, "locomotive")
            elif cut[-1] != "locomotive":
                cut.append("locomotive")
            else:
                cuts.append(["locomotive"])
        else:
            cuts.append(["locomotive"])
    order = rng.permutation(len(cuts))
    return [cuts[i] for i in order]


_PALETTE = {
    # RGB body colours seen on Russian/Korean freight stock from above.
    "gondola": [(86, 58, 44), (60, 55, 52), (110, 62, 40), (45, 48, 50), (95, 80, 62), (70, 40, 35)],
    "tank": [(30, 30, 32), (40, 42, 44), (175, 178, 180), (120, 120, 115), (58, 70, 60), (205, 200, 190)],
    "box": [(118, 62, 45), (95, 50, 40), (80, 95, 110), (70, 90, 70), (150, 150, 145), (135, 85, 55)],
    "flat": [(70, 60, 50), (60, 58, 56), (90, 70, 55)],
    "hopper": [(140, 140, 135), (110, 115, 105), (165, 160, 150), (95, 85, 70)],
    "locomotive": [(45, 90, 70), (150, 45, 40), (60, 80, 130), (190, 160, 60)],
}
_CONTAINER = [(160, 50, 40), (40, 75, 140), (215, 215, 210), (50, 110, 70), (200, 120, 40), (120, 120, 120), (150, 40, 60)]
_LOAD = {"ore": (92, 55, 42), "iron": (62, 58, 58), "coal": (30, 29, 30), "timber": (150, 120, 85), "empty": (70, 55, 45)}
_TARP = [(55, 90, 60), (50, 70, 110), (120, 115, 100)]


def _dress_car(kind: str, rng: np.random.Generator, season: str) -> dict:
    """Colour and load of one car: rendering details that are not truth."""
    pal = _PALETTE[kind]
    d: dict[str, Any] = {"colour": tuple(int(v) for v in pal[int(rng.integers(0, len(pal)))])}
    jitter = rng.normal(0, 8, 3)
    d["colour"] = tuple(int(np.clip(c + j, 10, 245)) for c, j in zip(d["colour"], jitter))
    d["load"] = None
    d["tarp"] = None
    if kind == "gondola":
        d["load"] = str(rng.choice(["ore", "ore", "ore", "iron", "coal", "empty"]))
        if rng.random() < 0.12:
            d["tarp"] = _TARP[int(rng.integers(0, len(_TARP)))]
    elif kind == "flat":
        if rng.random() < 0.15:
            d["load"] = "timber"
            if rng.random() < 0.4:
                d["tarp"] = _TARP[int(rng.integers(0, len(_TARP)))]
        else:
            d["load"] = "containers"
            d["containers"] = [_CONTAINER[int(rng.integers(0, len(_CONTAINER)))] for _ in range(2)]
            d["container_split"] = bool(rng.random() < 0.5)
    d["snow"] = season == "snow" and kind != "locomotive" and rng.random() < 0.85
    d["specular"] = float(rng.uniform(0.7, 1.0))
    return d


def _place_cuts(cuts, intervals, rng, *, dense: bool):
    """Assign each (cut, lengths) to a track interval; returns [(track, start_s, cut, lengths)]."""
    free = [(name, a, b) for name, ivs in intervals.items() for a, b in ivs]
    placed = []
    queue = list(cuts)
    queue.sort(key=lambda item: -sum(item[1]))
    while queue:
        cut, lengths = queue.pop(0)
        need = sum(lengths) + COUPLING_GAP_M * (len(lengths) - 1)
        fits = [i for i, (_, a, b) in enumerate(free) if b - a >= need + 2 * CUT_CLEARANCE_M]
        if not fits:
            if len(cut) == 1:
                total = sum(b - a for _, a, b in free)
                raise SimulationError(
                    f"cannot fit {sum(len(c) for c, _ in queue) + 1} more cars on the AOI's tracks "
                    f"({total:.0f} m of free usable track left); ask for fewer cars or use an AOI with more track."
                )
            half = len(cut) // 2
            queue.insert(0, (cut[half:], lengths[half:]))
            queue.insert(0, (cut[:half], lengths[:half]))
            continue
        room = np.array([free[i][2] - free[i][1] for i in fits])
        pick = fits[int(rng.choice(len(fits), p=room / room.sum()))]
        name, a, b = free[pick]
        slack = (b - a) - need - 2 * CUT_CLEARANCE_M
        offset = rng.uniform(0, min(slack, 25.0)) if dense else rng.uniform(0, slack)
        start = a + CUT_CLEARANCE_M + offset
        end = start + need
        del free[pick]
        free.extend([(name, a, start - CUT_CLEARANCE_M), (name, end + CUT_CLEARANCE_M, b)])
        free = [f for f in free if f[2] - f[1] > 0]
        placed.append((name, start, cut, lengths))
    return placed


# --------------------------------------------------------------------------- site and clutter


def _to_world(centre, angle):
    c, s = math.cos(angle), math.sin(angle)

    def world(u, v):
        return centre[0] + u * c - v * s, centre[1] + u * s + v * c

    return world


def _site(aoi, tracks_aoi, bounds) -> dict[str, list]:
    """Static features around the yard: the same on every date of one AOI."""
    rng = np.random.default_rng(zlib.crc32(aoi.id.encode()))
    centre, angle = _yard_frame(tracks_aoi)
    world = _to_world(centre, angle)
    c, s = math.cos(angle), math.sin(angle)
    # Across-yard offsets of the tracks at the centre give the yard's width.
    probe = LineString([world(0, -400), world(0, 400)])
    vs = []
    for line in tracks_aoi:
        hit = probe.intersection(line)
        if not hit.is_empty:
            p = shapely.get_coordinates(hit)[0]
            vs.append(-(p[0] - centre[0]) * s + (p[1] - centre[1]) * c)
    vmin, vmax = (min(vs), max(vs)) if vs else (-25.0, 25.0)
    half = 0.5 * max(line.length for line in tracks_aoi) + 400
    site: dict[str, list] = {"road": [], "buildings": [], "platforms": [], "masts": [], "wires": [], "fields": [], "water": []}
    road_v = vmax + 32.0
    road = LineString([world(-half, road_v), world(half, road_v)])
    site["road"].append({"line": road, "width": 7.0, "v": road_v})
    # A platform along the outermost track on the far side of the road.
    site["platforms"].append({"poly": _rect(*world(-60.0, vmin - 4.6), 160.0, 4.0, angle), "height": 0.8})
    # Buildings and sheds beyond the platform.
    u = -0.45 * (half - 400)
    while u < 0.45 * (half - 400):
        length = float(rng.uniform(14, 45))
        width = float(rng.uniform(9, 22))
        v = vmin - 14.0 - width / 2 - float(rng.uniform(0, 25))
        roof = [(150, 150, 150), (90, 110, 140), (140, 70, 55), (175, 170, 160), (100, 100, 95)][int(rng.integers(0, 5))]
        site["buildings"].append({"poly": _rect(*world(u + length / 2, v), length, width, angle), "height": float(rng.uniform(4, 11)), "roof": roof, "ridge": bool(rng.random() < 0.5)})
        u += length + float(rng.uniform(12, 70))
    # Sheds across the road, where the container yard is.
    for k in range(3):
        u = -150.0 + 140.0 * k + float(rng.uniform(-20, 20))
        length, width = float(rng.uniform(30, 60)), float(rng.uniform(15, 24))
        site["buildings"].append({"poly": _rect(*world(u, road_v + 10 + width / 2 + 50), length, width, angle), "height": float(rng.uniform(6, 10)), "roof": (160, 160, 158), "ridge": True})
    # Catenary portals: a mast each side of the track bundle, a cross-span wire between them.
    for u in np.arange(-0.5 * (half - 400) + 30, 0.5 * (half - 400) - 20, 60.0):
        a, b = world(float(u), vmin - 2.6), world(float(u), vmax + 2.6)
        site["masts"].extend([{"xy": a, "height": 9.0}, {"xy": b, "height": 9.0}])
        site["wires"].append({"line": LineString([a, b]), "height": 7.5})
    # Tree belts and fields: soft darker patches in the ground texture.
    for _ in range(14):
        u = float(rng.uniform(-half + 300, half - 300))
        v = float(rng.choice([-1, 1])) * float(rng.uniform(max(abs(vmin), vmax) + 40, 300))
        site["fields"].append({"poly": _rect(*world(u, v), float(rng.uniform(40, 160)), float(rng.uniform(20, 90)), angle + float(rng.uniform(-0.3, 0.3))), "trees": bool(rng.random() < 0.45)})
    # The Tumen river runs beyond the buildings side (a dark band at the edge of the scene).
    us = np.linspace(-half, half, 80)
    phase = float(rng.uniform(0, 2 * math.pi))
    vs_river = vmin - 215 + 22 * np.sin(us / 260.0 + phase) + 9 * np.sin(us / 83.0 + 2 * phase)
    site["water"].append({"line": LineString([world(float(a), float(b)) for a, b in zip(us, vs_river)]), "width": 120.0})
    return site


def _clutter(site, tracks_aoi, rng: np.random.Generator) -> dict[str, list]:
    """Per-date movable things: trucks on the road, container stacks by the sheds."""
    centre, angle = _yard_frame(tracks_aoi)
    world = _to_world(centre, angle)
    road = site["road"][0]
    out: dict[str, list] = {"trucks": [], "containers": []}
    n_trucks = int(rng.integers(2, 12))
    us = np.sort(rng.uniform(-450, 450, n_trucks))
    last = -1e9
    for u in us:
        if u - last < 20:
            continue
        last = u
        lane = road["v"] + float(rng.choice([-1.8, 1.8]))
        length = float(rng.choice([8.0, 12.5, 16.5]))
        colour = [(200, 200, 205), (150, 40, 35), (40, 70, 130), (70, 110, 60), (220, 180, 60), (90, 90, 95)][int(rng.integers(0, 6))]
        out["trucks"].append({"poly": _rect(*world(float(u), lane), length, 2.5, angle), "height": 3.6, "colour": colour, "cab": bool(rng.random() < 0.5)})
    # Container stacks in rows between road and sheds.
    for row in range(4):
        v = road["v"] + 14.0 + row * 3.0
        u = -230.0
        while u < 120.0:
            if rng.random() < 0.72:
                length = 12.2 if rng.random() < 0.6 else 6.1
                tiers = int(rng.integers(1, 4))
                colour = _CONTAINER[int(rng.integers(0, len(_CONTAINER)))]
                out["containers"].append({"poly": _rect(*world(u + length / 2, v), length, 2.44, angle), "height": 2.6 * tiers, "colour": colour})
                u += length + 0.4
            else:
                u += 6.5
    return out


# --------------------------------------------------------------------------- clouds, footprint


def _cloud_grid(bounds, cover, bank, rng, *, cell=5.0, pad=400.0):
    """Cloud opacity on a coarse metric grid covering the extent plus a pad for shadows."""
    xmin, ymin, xmax, ymax = bounds
    x0, y1 = xmin - pad, ymax + pad
    nx = int(math.ceil((xmax - xmin + 2 * pad) / cell)) + 1
    ny = int(math.ceil((ymax - ymin + 2 * pad) / cell)) + 1
    alpha = np.zeros((ny, nx), np.float32)
    if cover > 0:
        white = rng.standard_normal((ny, nx)).astype(np.float32)
        # Fractal cumulus: big puffs with crinkled edges (several octaves of smoothed noise).
        field_ = np.zeros_like(white)
        for sigma, weight in ((24, 3.0), (9, 1.0), (3.5, 0.45), (1.2, 0.18)):
            octave = ndimage.gaussian_filter(white, sigma)
            field_ += weight * octave / (octave.std() + 1e-9)
        field_ = (field_ - field_.mean()) / (field_.std() + 1e-9)
        # Threshold from the scene area only, so the asked cover is what the image shows.
        rows = slice(int(pad / cell), ny - int(pad / cell))
        cols = slice(int(pad / cell), nx - int(pad / cell))
        t = float(np.quantile(field_[rows, cols], 1.0 - min(cover, 0.999)))
        # Soft edges: opacity ramps over a band of the field, thin veil outside the puffs.
        alpha = np.clip((field_ - t) / 0.6 + 0.5, 0.0, 1.0) ** 1.3
        alpha = alpha.astype(np.float32)
    if bank is not None:
        ys = y1 - (np.arange(ny) + 0.5) * cell
        xs = x0 + (np.arange(nx) + 0.5) * cell
        gx, gy = np.meshgrid(xs, ys)
        inside = shapely.contains_xy(bank, gx, gy).astype(np.float32)
        inside = np.maximum(inside, ndimage.gaussian_filter(inside, 1.0) * 1.6).clip(0, 1)
        alpha = np.maximum(alpha, inside)
    if not alpha.any():
        return None
    return {"alpha": alpha, "x0": x0, "y1": y1, "cell": cell}


def cloud_alpha_at(cloud: dict | None, x, y) -> np.ndarray:
    """Cloud opacity (0 clear .. 1 opaque) at map points ``x``, ``y`` (bilinear)."""
    x = np.asarray(x, dtype=np.float64)
    if cloud is None:
        return np.zeros(x.shape, np.float32)
    col = (x - cloud["x0"]) / cloud["cell"] - 0.5
    row = (cloud["y1"] - np.asarray(y, dtype=np.float64)) / cloud["cell"] - 0.5
    return ndimage.map_coordinates(cloud["alpha"], [row.ravel(), col.ravel()], order=1, mode="nearest").reshape(x.shape)


def _footprint(bounds, fraction, rng) -> Polygon:
    """The valid-data area: the extent minus a slanted strip edge cutting off ``fraction``."""
    ext = box(*bounds)
    if fraction <= 0:
        return ext
    if not 0 < fraction < 0.9:
        raise SimulationError(f"nodata_edge must be in [0, 0.9), got {fraction}.")
    theta = float(rng.uniform(0, 2 * math.pi))
    n = np.array([math.cos(theta), math.sin(theta)])
    corners = np.array(ext.exterior.coords)
    proj = corners @ n
    lo, hi = float(proj.min()), float(proj.max())
    big = 1e5
    t = np.array([-n[1], n[0]])

    centre = np.array([ext.centroid.x, ext.centroid.y])

    def kept(c):
        p0 = centre + n * (c - centre @ n)
        half = Polygon([p0 - t * big, p0 + t * big, p0 + t * big - n * big, p0 - t * big - n * big])
        return ext.intersection(half)

    for _ in range(50):
        mid = (lo + hi) / 2
        if kept(mid).area / ext.area > 1 - fraction:
            hi = mid
        else:
            lo = mid
    return shapely.set_precision(kept((lo + hi) / 2), 0.001)


# --------------------------------------------------------------------------- plan


def plan_scene(
    aoi,
    *,
    gsd_m: float = 0.5,
    n_cars: int | None = None,
    cars: dict[str, int] | None = None,
    season: str = "summer",
    sun_azimuth: float = 135.0,
    sun_elevation: float = 35.0,
    cloud_cover: float = 0.0,
    cloud_bank=None,
    nodata_edge: float = 0.0,
    extent: tuple[float, float, float, float] | None = None,
    margin_m: float = 120.0,
    misregistration_m: tuple[float, float] = (0.0, 0.0),
    misregistration_deg: float = 0.0,
    seed: int = 0,
) -> SceneLayout:
    """Lay out a scene: cars on the (misregistered) tracks, site, clutter, clouds, footprint.

    Parameters mirror :func:`geo_evidence.simulate.simulate_scene`. Nothing is rendered;
    each car's ``visible`` flag comes from the cloud field and the valid footprint.
    """
    if season not in SEASONS:
        raise SimulationError(f"season must be one of {', '.join(SEASONS)}, got {season!r}.")
    if not 0.05 <= float(gsd_m) <= 30:
        raise SimulationError(f"gsd_m must be between 0.05 and 30 m, got {gsd_m}.")
    if not 0 <= float(cloud_cover) <= 1:
        raise SimulationError(f"cloud_cover must be in [0, 1], got {cloud_cover}.")
    if not 1 <= float(sun_elevation) <= 90:
        raise SimulationError(f"sun_elevation must be in [1, 90] degrees, got {sun_elevation}.")
    gsd = float(gsd_m)
    dx, dy = (float(v) for v in misregistration_m)
    tracks_aoi = [t.line for t in aoi.tracks]
    yard_centre = aoi.yard.centroid

    def misreg(geom):
        geom = affinity.rotate(geom, misregistration_deg, origin=yard_centre)
        return affinity.translate(geom, dx, dy)

    if extent is None:
        xmin, ymin, xmax, ymax = aoi.yard.bounds
        xmin, ymin, xmax, ymax = xmin - margin_m, ymin - margin_m, xmax + margin_m, ymax + margin_m
    else:
        xmin, ymin, xmax, ymax = (float(v) for v in extent)
        if xmax <= xmin or ymax <= ymin:
            raise SimulationError(f"extent must be (xmin, ymin, xmax, ymax) with max > min, got {extent}.")
    # Snap outward to whole pixels so every GSD shares the same corner grid.
    bounds = (
        math.floor(xmin / gsd) * gsd,
        math.floor(ymin / gsd) * gsd,
        math.ceil(xmax / gsd) * gsd,
        math.ceil(ymax / gsd) * gsd,
    )

    rng_cars = _rng(seed, _S_CARS)
    counts = _requested_counts(n_cars, cars, rng_cars)
    cuts = _make_cuts(counts, rng_cars)
    keep = aoi.yard.buffer(30.0)
    intervals = {}
    for track in aoi.tracks:
        others = [o.line for o in aoi.tracks if o.name != track.name]
        intervals[track.name] = _usable_intervals(track.line, others, keep)
    # Car lengths drawn once, in cut order, so the stream never depends on placement.
    cut_lengths = [[_car_length(k, rng_cars) for k in cut] for cut in cuts]
    capacity = sum(b - a for ivs in intervals.values() for a, b in ivs)
    demand = sum(sum(lengths) + len(lengths) for lengths in cut_lengths)
    placed = _place_cuts(list(zip(cuts, cut_lengths)), intervals, rng_cars, dense=demand > 0.35 * capacity)
    true_tracks = {t.name: misreg(t.line) for t in aoi.tracks}

    records = []
    for cut_no, (name, start, cut, lengths) in enumerate(sorted(placed, key=lambda p: (p[0], p[1]))):
        line = true_tracks[name]
        s = start
        for kind, length in zip(cut, lengths):
            width = _WIDTH[kind]
            ring = _strip_along(line, s, s + length, width)
            mid = shapely.get_coordinates(shapely.line_interpolate_point(line, [s, s + length]))
            angle = math.atan2(mid[1, 1] - mid[0, 1], mid[1, 0] - mid[0, 0])
            rec = {
                "type": kind,
                "track": name,
                "length_m": round(float(length), 2),
                "width_m": round(float(width), 2),
                "cut_id": f"cut{cut_no + 1:03d}",
                "polygon_map": np.round(ring, 3),
                "centre": tuple(float(v) for v in mid.mean(axis=0)),
                "angle": angle,
                "height": _HEIGHT[kind] + (2.6 if kind == "flat" else 0.0),
                "s": s,
            }
            records.append(rec)
            s += length + COUPLING_GAP_M
    track_order = {t.name: i for i, t in enumerate(aoi.tracks)}
    records.sort(key=lambda r: (track_order[r["track"]], r["s"]))
    rng_dress = _rng(seed, 5)
    for i, rec in enumerate(records):
        rec["car_id"] = f"car{i + 1:04d}"
        rec.update(_dress_car(rec["type"], rng_dress, season))
        if rec["type"] == "flat" and rec.get("load") != "containers":
            rec["height"] = _HEIGHT["flat"] + 1.2

    site_aoi = _site(aoi, tracks_aoi, bounds)
    site = {k: [_moved(item, misreg) for item in items] for k, items in site_aoi.items()}
    clutter = _clutter(site_aoi, tracks_aoi, _rng(seed, _S_CLUTTER))
    clutter = {k: [_moved(item, misreg) for item in items] for k, items in clutter.items()}
    cloud = _cloud_grid(bounds, float(cloud_cover), cloud_bank, _rng(seed, _S_CLOUD))
    footprint = _footprint(bounds, float(nodata_edge), _rng(seed, _S_FOOT))

    _decide_visibility(records, footprint, cloud)
    return SceneLayout(
        aoi_id=aoi.id,
        crs=aoi.crs,
        bounds=bounds,
        gsd_m=gsd,
        tracks=true_tracks,
        cars=records,
        site=site,
        clutter=clutter,
        footprint=footprint,
        cloud=cloud,
        params={
            "gsd_m": gsd,
            "season": season,
            "sun_azimuth": float(sun_azimuth),
            "sun_elevation": float(sun_elevation),
            "cloud_cover": float(cloud_cover),
            "nodata_edge": float(nodata_edge),
            "misregistration_m": [dx, dy],
            "misregistration_deg": float(misregistration_deg),
            "requested_cars": counts,
            "seed": int(seed),
        },
    )


def _moved(item: dict, misreg) -> dict:
    out = dict(item)
    for key in ("poly", "line"):
        if key in out:
            out[key] = misreg(out[key])
    if "xy" in out:
        p = misreg(shapely.Point(out["xy"]))
        out["xy"] = (p.x, p.y)
    return out


def _decide_visibility(records, footprint, cloud) -> None:
    """``visible``: at least half of the car's footprint is on valid data and cloud-free."""
    if not records:
        return
    u = (np.arange(12) + 0.5) / 12 - 0.5
    v = (np.arange(4) + 0.5) / 4 - 0.5
    uu, vv = np.meshgrid(u, v)
    xs, ys = [], []
    for rec in records:
        c, s = math.cos(rec["angle"]), math.sin(rec["angle"])
        lu, lv = uu.ravel() * rec["length_m"], vv.ravel() * rec["width_m"]
        xs.append(rec["centre"][0] + lu * c - lv * s)
        ys.append(rec["centre"][1] + lu * s + lv * c)
    x, y = np.array(xs), np.array(ys)
    ok = shapely.contains_xy(footprint, x, y) & (cloud_alpha_at(cloud, x, y) <= 0.5)
    frac = ok.mean(axis=1)
    for rec, f in zip(records, frac):
        rec["visible"] = bool(f >= 0.5)
        rec["visible_fraction"] = float(f)
