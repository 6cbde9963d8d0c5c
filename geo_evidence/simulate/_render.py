"""Turn a :class:`~geo_evidence.simulate._layout.SceneLayout` into pixels.

Everything is drawn on a fine grid (at most 0.5 m, a whole fraction of the output GSD),
then block-averaged to the output GSD, so a car at 3 m or 10 m is a blend of car, shadow
and ballast rather than a hard pixel. Polygons are burnt with ``rasterio.features``
(all at once per layer); car roofs are shaded per pixel from each pixel's position in its
car's own frame (along ``u``, across ``v``), vectorised over every car pixel together.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from rasterio import features
from rasterio.transform import Affine
from scipy import ndimage
from shapely import affinity

from geo_evidence.simulate._layout import _LOAD, SceneLayout

__all__ = ["render_layout"]

_GROUND = {
    "summer": {"grass": (86, 102, 60), "soil": (128, 118, 98), "trees": (44, 62, 38), "field": (108, 120, 74), "ballast": (124, 118, 108), "water": (38, 58, 62), "road": (92, 92, 95), "concrete": (172, 170, 162)},
    "autumn": {"grass": (132, 118, 82), "soil": (138, 122, 100), "trees": (104, 78, 46), "field": (160, 140, 98), "ballast": (120, 114, 104), "water": (40, 56, 62), "road": (92, 92, 95), "concrete": (168, 166, 158)},
    "snow": {"grass": (220, 223, 229), "soil": (214, 216, 222), "trees": (92, 94, 96), "field": (226, 228, 234), "ballast": (186, 186, 190), "water": (196, 202, 210), "road": (150, 150, 154), "concrete": (214, 216, 220)},
}
_HAZE = np.array([188, 196, 208], np.float32)
_CLOUD = np.array([240, 242, 246], np.float32)


def _fine_factor(gsd: float) -> int:
    return max(1, int(math.ceil(gsd / 0.5 - 1e-9)))


def _bilinear(grid: np.ndarray, x0: float, y1: float, cell: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sample a regular grid (cell centres from (x0, y1) top-left corner) at the outer product ys x xs."""
    c = np.clip((xs - x0) / cell - 0.5, 0, grid.shape[1] - 1.001)
    r = np.clip((y1 - ys) / cell - 0.5, 0, grid.shape[0] - 1.001)
    c0, r0 = c.astype(np.int64), r.astype(np.int64)
    wc, wr = (c - c0).astype(np.float32), (r - r0).astype(np.float32)
    a = grid[:, c0] * (1 - wc) + grid[:, c0 + 1] * wc
    return a[r0] * (1 - wr)[:, None] + a[r0 + 1] * wr[:, None]


def _noise(rng, bounds, cell, xs, ys, *, smooth=1.0) -> np.ndarray:
    """Smooth value noise (zero mean, unit-ish std) of feature size ``cell`` metres."""
    xmin, ymin, xmax, ymax = bounds
    nx = int((xmax - xmin) / cell) + 3
    ny = int((ymax - ymin) / cell) + 3
    g = rng.standard_normal((ny, nx)).astype(np.float32)
    if smooth:
        g = ndimage.gaussian_filter(g, smooth)
        g /= g.std() + 1e-6
    return _bilinear(g, xmin - cell, ymax + cell, cell, xs, ys)


def _burn(shapes, shape, transform, *, dtype="uint8", all_touched=False) -> np.ndarray:
    shapes = [(g, v) for g, v in shapes if g is not None and not g.is_empty]
    if not shapes:
        return np.zeros(shape, dtype)
    return features.rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype=dtype, all_touched=all_touched)


def _shadow(poly, vec, height):
    """Ground shadow of a prism: the footprint swept along the sun shadow vector."""
    moved = affinity.translate(poly, vec[0] * height, vec[1] * height)
    return shapely.convex_hull(shapely.union(poly, moved))


def render_layout(
    layout: SceneLayout,
    *,
    haze: float = 0.0,
    blur: float = 0.7,
    noise: float = 2.5,
    panchromatic: bool = False,
    seed: int = 0,
) -> dict:
    """Render a layout. Returns ``image`` (uint8), ``valid``, ``cloud`` and ``transform``."""
    p = layout.params
    gsd = layout.gsd_m
    k = _fine_factor(gsd)
    res = gsd / k
    xmin, ymin, xmax, ymax = layout.bounds
    out_w = int(round((xmax - xmin) / gsd))
    out_h = int(round((ymax - ymin) / gsd))
    W, H = out_w * k, out_h * k
    tf = Affine(res, 0, xmin, 0, -res, ymax)
    xs = xmin + (np.arange(W) + 0.5) * res
    ys = ymax - (np.arange(H) + 0.5) * res
    shape = (H, W)
    rng = np.random.default_rng([int(seed), 10])
    season = p["season"]
    pal = {key: np.array(val, np.float32) for key, val in _GROUND[season].items()}
    az, el = math.radians(p["sun_azimuth"]), math.radians(p["sun_elevation"])
    # Shadow vector per metre of height, pointing away from the sun.
    svec = (-math.sin(az) / math.tan(el), -math.cos(az) / math.tan(el))

    # ---- ground: grass/soil mix at several scales, fields, trees, river.
    n_big = _noise(rng, layout.bounds, 40.0, xs, ys)
    n_mid = _noise(rng, layout.bounds, 7.0, xs, ys)
    n_small = _noise(rng, layout.bounds, 1.5, xs, ys, smooth=0.7)
    mix = np.clip(0.5 + 0.35 * n_big + 0.2 * n_mid, 0, 1)[..., None]
    img = pal["grass"] * (1 - mix) + pal["soil"] * mix
    img *= (1 + 0.05 * n_mid + 0.04 * n_small)[..., None]
    site, clutter = layout.site, layout.clutter
    fields = [f for f in site["fields"] if not f["trees"]]
    lab = _burn([(f["poly"], i + 1) for i, f in enumerate(fields)], shape, tf, dtype="int32")
    rows, cols = np.nonzero(lab)
    if rows.size:
        ids = lab[rows, cols] - 1
        # Each field its own crop (tone) and row direction; rows ~3 m apart show as stripes.
        tone = rng.uniform(0.8, 1.15, (len(fields), 3)).astype(np.float32)
        ang = np.array([_long_axis(f["poly"]) for f in fields])[ids]
        along = xs[cols] * np.sin(ang) - ys[rows] * np.cos(ang)
        stripes = 1 + 0.05 * np.sin(2 * np.pi * along / 3.0)
        img[rows, cols] = pal["field"] * tone[ids] * (stripes + 0.05 * n_mid[rows, cols] + 0.03 * n_small[rows, cols])[:, None]
    _draw_trees(img, site, layout.bounds, xs, ys, res, svec, pal, rng)
    water = _burn([(w["line"].buffer(w["width"] / 2), 1) for w in site["water"]], shape, tf).astype(bool)
    img[water] = pal["water"] * (1 + 0.03 * n_mid[water, None])
    # Yard ground: trampled gravel and soil.
    yard_area = shapely.union_all([line.buffer(14.0) for line in layout.tracks.values()])
    yard = _burn([(yard_area, 1)], shape, tf).astype(bool)
    yard_col = pal["soil"] * 0.55 + pal["ballast"] * 0.45
    img[yard] = yard_col * (1 + 0.06 * n_mid[yard, None] + 0.04 * n_small[yard, None])
    road = _burn([(r["line"].buffer(r["width"] / 2, cap_style="flat"), 1) for r in site["road"]], shape, tf).astype(bool)
    img[road] = pal["road"] * (1 + 0.03 * n_mid[road, None])
    plat = _burn([(pl["poly"], 1) for pl in site["platforms"]], shape, tf).astype(bool)
    img[plat] = pal["concrete"] * (1 + 0.02 * n_small[plat, None])

    # ---- ballast, sleepers, rails from each pixel's track-local coordinates.
    _draw_tracks(img, layout, tf, shape, xs, ys, res, pal, n_mid, n_small, rng, season)

    # ---- shadows of everything standing up.
    shadows = []
    for b in site["buildings"]:
        shadows.append(_shadow(b["poly"], svec, b["height"]))
    for c in clutter["containers"] + clutter["trucks"]:
        shadows.append(_shadow(c["poly"], svec, c["height"]))
    for car in layout.cars:
        poly = shapely.Polygon(car["polygon_map"])
        # Wheels and bogies lift the body: its shadow starts ~1 m off and is a little narrower.
        shadows.append(_shadow(poly.buffer(-0.15), svec, car["height"]))
    for m in site["masts"]:
        x, y = m["xy"]
        pole = shapely.Point(x, y).buffer(0.3, quad_segs=2)
        shadows.append(_shadow(pole, svec, m["height"]))
    for w in site["wires"]:
        line = affinity.translate(w["line"], svec[0] * w["height"], svec[1] * w["height"])
        shadows.append(line.buffer(max(0.06, res * 0.25)))
    sh = _burn([(s, 1) for s in shadows], shape, tf, all_touched=False).astype(bool)
    # Shadows are dark at low sun (less fill light reaches them relative to direct light).
    sfac = 0.30 + 0.18 * math.sin(el)
    img[sh] *= sfac

    # ---- buildings, containers, trucks.
    _draw_boxes(img, site["buildings"], tf, shape, xs, ys, az, el, rng, season, kind="building")
    _draw_boxes(img, clutter["containers"], tf, shape, xs, ys, az, el, rng, season, kind="container")
    _draw_boxes(img, clutter["trucks"], tf, shape, xs, ys, az, el, rng, season, kind="truck")

    # ---- railcars.
    # Own streams for car grime and the sensor, so adding a car changes nothing else.
    _draw_cars(img, layout.cars, tf, shape, xs, ys, az, el, np.random.default_rng([int(seed), 12]))

    # ---- masts and wires (thin, partly transparent at coarse pixels).
    masts = _burn([(shapely.Point(m["xy"]).buffer(0.3, quad_segs=2), 1) for m in site["masts"]], shape, tf, all_touched=True).astype(bool)
    img[masts] = np.array([70, 72, 75], np.float32)
    wires = _burn([(w["line"], 1) for w in site["wires"]], shape, tf, all_touched=True).astype(bool)
    img[wires] = img[wires] * 0.75 + 20
    # Contact wires above each track: a faint dark line at most.
    contact = _burn([(line, 1) for line in layout.tracks.values()], shape, tf, all_touched=True).astype(bool)
    img[contact] = img[contact] * (1 - min(0.08, 0.02 / res))

    # ---- clouds and their shadows.
    cloud_alpha = None
    if layout.cloud is not None:
        cl = layout.cloud
        cloud_alpha = _bilinear(cl["alpha"], cl["x0"], cl["y1"], cl["cell"], xs, ys)
        off = min(350.0, 600.0 / math.tan(el))
        ox, oy = math.sin(az) * off, math.cos(az) * off
        shade = _bilinear(cl["alpha"], cl["x0"], cl["y1"], cl["cell"], xs + ox, ys + oy)
        img *= (1 - 0.55 * shade)[..., None]
        tex = 0.88 + 0.12 * np.clip(n_big * 0.5 + n_mid * 0.3, -1, 1)
        img = img * (1 - cloud_alpha[..., None]) + (_CLOUD * tex[..., None]) * cloud_alpha[..., None]

    # ---- atmosphere, optics, sensor.
    if haze > 0:
        img = img * (1 - haze) + _HAZE * haze
    if k > 1:
        img = img.reshape(out_h, k, out_w, k, 3).mean(axis=(1, 3))
        if cloud_alpha is not None:
            cloud_alpha = cloud_alpha.reshape(out_h, k, out_w, k).mean(axis=(1, 3))
    if blur > 0:
        img = ndimage.gaussian_filter(img, sigma=(blur, blur, 0), mode="nearest")
    sensor = np.random.default_rng([int(seed), 11])
    img = img * sensor.uniform(0.96, 1.04) + sensor.normal(0, noise, img.shape[:2] + (1,)).astype(np.float32) * 0.3
    img += sensor.normal(0, noise, img.shape).astype(np.float32)
    out_tf = Affine(gsd, 0, xmin, 0, -gsd, ymax)
    valid = features.geometry_mask([layout.footprint], out_shape=(out_h, out_w), transform=out_tf, invert=True)
    if panchromatic:
        img = img @ np.array([0.3, 0.59, 0.11], np.float32)
    image = np.clip(np.rint(img), 1, 255).astype(np.uint8)
    image[~valid] = 0
    cloud = None if cloud_alpha is None else (cloud_alpha > 0.5) & valid
    return {"image": image, "valid": valid, "cloud": cloud, "transform": out_tf}


def _long_axis(poly) -> float:
    """Angle (radians) of a rectangle's first edge."""
    ring = np.asarray(poly.exterior.coords)
    e = ring[1] - ring[0]
    return math.atan2(e[1], e[0])


def _shift(mask: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``mask`` moved by (dr, dc) pixels, zero-filled."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    r0, r1 = max(dr, 0), min(h, h + dr)
    c0, c1 = max(dc, 0), min(w, w + dc)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = mask[r0 - dr : r1 - dr, c0 - dc : c1 - dc]
    return out


def _draw_trees(img, site, bounds, xs, ys, res, svec, pal, rng) -> None:
    """Tree crowns from a noise field: dense in tree belts (soft-edged), scattered elsewhere."""
    xmin, ymin, xmax, ymax = bounds
    cell = 4.0
    nx, ny = int((xmax - xmin) / cell) + 3, int((ymax - ymin) / cell) + 3
    ctf = Affine(cell, 0, xmin - cell, 0, -cell, ymax + cell)
    belts = _burn([(f["poly"].buffer(15.0 * rng.uniform(0.3, 1.0)), 1) for f in site["fields"] if f["trees"]], (ny, nx), ctf)
    density = ndimage.gaussian_filter(belts.astype(np.float32), 2.5)
    density = _bilinear(density, xmin - cell, ymax + cell, cell, xs, ys)
    crowns_field = _noise(rng, bounds, 2.2, xs, ys, smooth=0.9)
    # Threshold falls from 2.4 (a lone tree here and there) to -0.3 (closed canopy).
    crown = crowns_field > (2.4 - 2.7 * np.clip(density * 1.6, 0, 1))
    if not crown.any():
        return
    h = 9.0
    dr, dc = int(round(-svec[1] * h / res)), int(round(svec[0] * h / res))
    shade = _shift(crown, dr, dc) & ~crown
    img[shade] *= 0.45
    lit = np.clip(0.55 + 0.35 * crowns_field[crown], 0.4, 1.3)[:, None]
    img[crown] = pal["trees"] * lit


def _track_coords(layout, tf, shape, xs, ys, half_width):
    """Per-pixel (track index, u along, v across) inside strips of ``half_width`` m."""
    segs, meta = [], []
    for ti, line in enumerate(layout.tracks.values()):
        xy = np.asarray(line.coords)
        s0 = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
        for j in range(len(xy) - 1):
            seg = shapely.LineString(xy[j : j + 2])
            segs.append((seg.buffer(half_width, cap_style="square"), len(meta) + 1))
            meta.append((ti, xy[j], xy[j + 1], s0[j]))
    lab = _burn(segs, shape, tf, dtype="int32")
    rows, cols = np.nonzero(lab)
    ids = lab[rows, cols] - 1
    a = np.array([m[1] for m in meta])[ids]
    b = np.array([m[2] for m in meta])[ids]
    s0 = np.array([m[3] for m in meta])[ids]
    ti = np.array([m[0] for m in meta])[ids]
    d = b - a
    ln = np.hypot(d[:, 0], d[:, 1])
    t = d / ln[:, None]
    px = np.column_stack([xs[cols], ys[rows]]) - a
    u = s0 + px[:, 0] * t[:, 0] + px[:, 1] * t[:, 1]
    v = -px[:, 0] * t[:, 1] + px[:, 1] * t[:, 0]
    return rows, cols, ti, u, v


def _cover(v, centre, width, res):
    """Fraction of a pixel (of size ``res``) covered by a strip [centre +- width/2]."""
    lo = np.maximum(v - res / 2, centre - width / 2)
    hi = np.minimum(v + res / 2, centre + width / 2)
    return np.clip(hi - lo, 0, None) / res


def _draw_tracks(img, layout, tf, shape, xs, ys, res, pal, n_mid, n_small, rng, season):
    rows, cols, ti, u, v = _track_coords(layout, tf, shape, xs, ys, 2.4)
    n_tracks = len(layout.tracks)
    tone = rng.uniform(0.82, 1.12, n_tracks).astype(np.float32)
    base = pal["ballast"] * (tone[ti] * (1 + 0.07 * n_mid[rows, cols] + 0.07 * n_small[rows, cols]))[:, None]
    # Ballast shoulders fade into the yard ground.
    edge = np.clip((2.4 - np.abs(v)) / 0.6, 0, 1)[:, None]
    col = img[rows, cols] * (1 - edge) + base * edge
    # Sleepers: 2.7 m long, 0.25 m wide, every 0.55 m; below ~0.6 m a texture, not objects.
    on_sleeper = np.abs(v) < 1.35
    sleeper_cov = _cover(np.mod(u, 0.55), 0.275, 0.25, res).clip(0, 1) if res < 0.55 else np.full(u.shape, 0.45)
    sleeper_col = np.array([88, 78, 66] if rng.random() < 0.5 else [150, 148, 140], np.float32)
    if season == "snow":
        sleeper_col = np.array([205, 206, 210], np.float32)
    w = (sleeper_cov * on_sleeper * 0.8)[:, None]
    col = col * (1 - w) + sleeper_col * w
    # Rails: 0.07 m steel heads 1.52 m apart, bright on top, with a dark web shadow.
    rail = np.zeros(u.shape, np.float32)
    for c in (-0.79, 0.79):
        rail += _cover(v, c, 0.08, res)
    dark = np.zeros(u.shape, np.float32)
    for c in (-0.72, 0.86):
        dark += _cover(v, c, 0.1, res)
    # Polished rail heads shine; in snow the warm rails melt free and show dark.
    rail_col = np.array([70, 70, 72] if season == "snow" else [190, 188, 182], np.float32)
    col = col * (1 - rail[:, None] * 0.9) + rail_col * rail[:, None] * 0.9
    col *= (1 - 0.5 * dark.clip(0, 1))[:, None]
    img[rows, cols] = col


def _draw_boxes(img, items, tf, shape, xs, ys, az, el, rng, season, *, kind):
    """Flat or ridged roofs: buildings, container stacks, trucks."""
    if not items:
        return
    lab = _burn([(it["poly"], i + 1) for i, it in enumerate(items)], shape, tf, dtype="int32")
    rows, cols = np.nonzero(lab)
    if rows.size == 0:
        return
    ids = lab[rows, cols] - 1
    colours = np.array([it.get("roof", it.get("colour")) for it in items], np.float32)
    if season == "snow" and kind == "building":
        colours = colours * 0.25 + np.array([225, 227, 232], np.float32) * 0.75
    # Local frame: long axis of each rectangle.
    frames = []
    for it in items:
        ring = np.asarray(it["poly"].exterior.coords)[:4]
        e = ring[1] - ring[0]
        frames.append((ring.mean(axis=0), math.atan2(e[1], e[0]), np.hypot(*e), np.hypot(*(ring[2] - ring[1]))))
    cx = np.array([f[0][0] for f in frames])[ids]
    cy = np.array([f[0][1] for f in frames])[ids]
    ang = np.array([f[1] for f in frames])[ids]
    length = np.array([f[2] for f in frames])[ids]
    width = np.array([f[3] for f in frames])[ids]
    dx, dy = xs[cols] - cx, ys[rows] - cy
    u = dx * np.cos(ang) + dy * np.sin(ang)
    v = -dx * np.sin(ang) + dy * np.cos(ang)
    shade = np.ones(u.shape, np.float32)
    sun_v = -math.sin(az) * np.sin(ang) + math.cos(az) * np.cos(ang)
    if kind == "building":
        ridge = np.array([it.get("ridge", False) for it in items])[ids]
        side = np.sign(v) * np.sign(sun_v)
        shade = np.where(ridge, 1 + 0.12 * side, 1.0)
        edge = (np.abs(u) > length / 2 - 0.5) | (np.abs(v) > width / 2 - 0.5)
        shade = np.where(edge, shade * 0.85, shade)
    elif kind == "container":
        # Corrugation is below the pixel; what shows is the gap between boxes and their rims.
        edge = (np.abs(u) > length / 2 - 0.25) | (np.abs(v) > width / 2 - 0.2)
        tiers = np.array([it["height"] / 2.6 for it in items])[ids]
        shade = np.where(edge, 0.8, 1.0) * (0.92 + 0.04 * tiers)
    elif kind == "truck":
        cab = np.array([it.get("cab", False) for it in items])[ids]
        front = u > length / 2 - 2.3
        shade = np.where(front, 0.7, 1.0)
        shade = np.where(cab & ~front, 1.0, shade)
    # Roofs are never flat paint: weathering blotches and a few vents/skylights.
    grain = 1 + 0.03 * np.sin(u * 0.21 + v * 0.13) + 0.02 * np.sin(v * 0.5 - u * 0.07)
    if kind == "building":
        vents = (np.mod(u, 7.0) < 0.9) & (np.abs(v) < 0.9)
        shade = np.where(vents, shade * 0.7, shade)
    col = colours[ids] * (shade * grain)[:, None].astype(np.float32)
    img[rows, cols] = col * rng.uniform(0.97, 1.03)


def _draw_cars(img, cars, tf, shape, xs, ys, az, el, rng):
    if not cars:
        return
    lab = _burn([(shapely.Polygon(c["polygon_map"]), i + 1) for i, c in enumerate(cars)], shape, tf, dtype="int32")
    rows, cols = np.nonzero(lab)
    if rows.size == 0:
        return
    ids = lab[rows, cols] - 1

    def per_car(fn, dtype=np.float64):
        return np.array([fn(c) for c in cars], dtype=dtype)[ids]

    cx, cy = per_car(lambda c: c["centre"][0]), per_car(lambda c: c["centre"][1])
    ang = per_car(lambda c: c["angle"])
    L, Wd = per_car(lambda c: c["length_m"]), per_car(lambda c: c["width_m"])
    kinds = per_car(lambda c: c["type"], dtype=object)
    colour = np.array([c["colour"] for c in cars], np.float32)[ids]
    snow = per_car(lambda c: c["snow"], dtype=bool)
    dx, dy = xs[cols] - cx, ys[rows] - cy
    u = dx * np.cos(ang) + dy * np.sin(ang)
    v = -dx * np.sin(ang) + dy * np.cos(ang)
    hl, hw = L / 2, Wd / 2
    # Sun in each car's frame: component across the car, and its elevation.
    sun_v = -math.sin(az) * np.sin(ang) + math.cos(az) * np.cos(ang)
    sin_el, cos_el = math.sin(el), math.cos(el)
    col = colour.copy()
    snow_col = np.array([232, 234, 238], np.float32)
    ends = np.abs(u) > hl - 0.45

    # Tank cars: a lit cylinder with a bright specular line along the top.
    m = kinds == "tank"
    if m.any():
        t = np.clip(v[m] / (hw[m] * 0.93), -1, 1)
        nz = np.sqrt(1 - t**2)
        lam = np.clip(t * sun_v[m] * cos_el + nz * sin_el, 0, 1)
        hv = sun_v[m] * cos_el
        hz = sin_el + 1.0
        hn = np.hypot(hv, hz)
        t_h = hv / hn
        spec = np.exp(-(((t - t_h) / 0.13) ** 2)) * per_car(lambda c: c["specular"])[m]
        body = col[m] * (0.35 + 0.8 * lam)[:, None] + (150 * spec)[:, None]
        # Walkway/frame visible beyond the barrel at the car ends and sides.
        rim = (np.abs(v[m]) > hw[m] * 0.93) | ends[m]
        body[rim] = np.array([50, 48, 46], np.float32)
        dome = (np.abs(u[m]) < 0.55) & (np.abs(v[m]) < 0.55)
        body[dome] = body[dome] * 0.8 + 30
        body[snow[m] & ~rim] = body[snow[m] & ~rim] * 0.25 + snow_col * 0.75 * (0.8 + 0.25 * lam[snow[m] & ~rim])[:, None]
        col[m] = body

    # Gondolas: a coloured rim around the load (ore heaps, coal, or an empty floor), or a tarp.
    m = kinds == "gondola"
    if m.any():
        wall = (np.abs(v[m]) > hw[m] - 0.22) | (np.abs(u[m]) > hl[m] - 0.25)
        load_name = per_car(lambda c: c["load"] or "empty", dtype=object)[m]
        load_col = np.array([_LOAD[n] for n in load_name], np.float32)
        heaps = 1 + 0.16 * np.cos(2 * np.pi * u[m] / (L[m] / 3)) * (load_name != "empty") + 0.08 * np.cos(v[m] * 2.2)
        inner = load_col * heaps[:, None]
        # The sun-side wall shades the inside of an empty or half-full car.
        shade_w = np.where(load_name == "empty", 2.2, 0.6) / max(math.tan(el), 0.1)
        dist_from_sun_wall = hw[m] - v[m] * np.sign(sun_v[m])
        inner = np.where((dist_from_sun_wall < shade_w)[:, None], inner * 0.55, inner)
        tarp = per_car(lambda c: c["tarp"] is not None, dtype=bool)[m]
        if tarp.any():
            tarp_col = np.array([c["tarp"] or (0, 0, 0) for c in cars], np.float32)[ids][m]
            folds = 1 + 0.08 * np.sign(np.sin(2 * np.pi * u[m] / 1.7))
            inner = np.where(tarp[:, None], tarp_col * folds[:, None], inner)
        inner = np.where(snow[m][:, None], snow_col * (0.9 + 0.08 * heaps)[:, None], inner)
        col[m] = np.where(wall[:, None], col[m] * 1.15, inner)

    # Box cars: a roof with a faint ridge and ribs; hoppers: a hatch line and sloped ends.
    m = kinds == "box"
    if m.any():
        side = np.sign(v[m]) * np.sign(sun_v[m])
        ribs = 1 - 0.05 * (np.mod(u[m], 1.25) < 0.2)
        # Seen from above a box car is mostly its roof: galvanised grey tinted by the paint.
        grey = np.array([150, 150, 146], np.float32)
        roof = (col[m] * 0.6 + grey * 0.4) * ((1 + 0.07 * side) * ribs)[:, None]
        # Roof edges: the eaves and the top of the side wall read as a darker outline.
        eave = np.abs(v[m]) > hw[m] - 0.3
        roof[eave] *= 0.7
        roof = np.where(snow[m][:, None], snow_col * (0.92 + 0.05 * side)[:, None], roof)
        roof[ends[m]] *= 0.8
        col[m] = roof
    m = kinds == "hopper"
    if m.any():
        hatch = np.abs(v[m]) < 0.35
        slope = np.clip((np.abs(u[m]) - (hl[m] - 1.8)) / 1.8, 0, 1)
        roof = col[m] * (1 - 0.25 * slope)[:, None]
        roof = np.where(snow[m][:, None], snow_col * (1 - 0.1 * slope)[:, None], roof)
        roof[hatch] *= 0.7
        col[m] = roof

    # Flat cars: a dark deck with one 12.2 m or two 6.1 m containers, or timber.
    m = kinds == "flat"
    if m.any():
        deck = col[m] * 0.9
        cont = per_car(lambda c: c.get("load") == "containers", dtype=bool)[m]
        split = per_car(lambda c: c.get("container_split", False), dtype=bool)[m]
        c1 = np.array([c.get("containers", [(0, 0, 0)] * 2)[0] for c in cars], np.float32)[ids][m]
        c2 = np.array([c.get("containers", [(0, 0, 0)] * 2)[1] for c in cars], np.float32)[ids][m]
        uu, vv = u[m], v[m]
        in_w = np.abs(vv) < 1.22
        one = in_w & (np.abs(uu) < 6.1) & ~split
        first = in_w & split & (uu > -6.25) & (uu < -0.15)
        second = in_w & split & (uu > 0.15) & (uu < 6.05)
        rim = (np.abs(vv) > 1.05) | (np.mod(uu + 6.1, 6.1) < 0.2)
        box_col = np.where(second[:, None], c2, c1) * np.where(rim, 0.82, 1.0)[:, None]
        box_col = np.where(snow[m][:, None], snow_col * 0.97, box_col)
        has_box = cont & (one | first | second)
        timber = ~cont & in_w & (np.abs(uu) < hl[m] - 0.6)
        tarp = per_car(lambda c: c["tarp"] is not None, dtype=bool)[m]
        tarp_col = np.array([c["tarp"] or (150, 120, 85) for c in cars], np.float32)[ids][m]
        logs = np.array([150, 120, 85], np.float32) * (0.85 + 0.15 * np.cos(vv * 9.0))[:, None]
        timber_col = np.where(tarp[:, None], tarp_col, logs)
        out = np.where(has_box[:, None], box_col, deck)
        out = np.where(timber[:, None], timber_col, out)
        col[m] = out

    # Locomotives: a long hood with fans and a lighter cab roof at one end.
    m = kinds == "locomotive"
    if m.any():
        roof = col[m] * 0.95
        cab = u[m] > hl[m] - 3.0
        roof[cab] = roof[cab] * 0.6 + 80
        fans = (np.mod(u[m], 2.4) < 1.3) & (np.abs(v[m]) < 0.7) & ~cab & (np.abs(u[m]) < hl[m] - 4)
        roof[fans] = np.array([45, 45, 48], np.float32)
        col[m] = roof

    # Car ends and couplers are darker; a touch of per-pixel grime.
    col[ends & (kinds != "tank")] *= 0.85
    col *= (1 + rng.normal(0, 0.03, col.shape[0]).astype(np.float32))[:, None]
    img[rows, cols] = col
