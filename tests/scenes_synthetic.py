"""A small, independent test-scene renderer for the image core (not the project simulator).

Deliberately plain and different in style from ``geo_evidence.simulate``: straight parallel
tracks at any bearing, flat-coloured rectangles for cars, a simple ballast/ground texture,
optional trucks on a parallel road, container stacks off the tracks, car shadows, a cloud
box and a nodata band. Rendered supersampled in a local (u along, v across) frame, then
averaged to the GSD, blurred, noised and quantised to the requested dtype.

Everything is seeded; the truth (car polygons in map coordinates, their track and type) is
exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

CAR_LOOK = {
    # type: (length m, width m, height m, rgb)
    "box": (15.7, 3.2, 4.6, (150, 70, 50)),
    "tank": (12.0, 3.0, 4.4, (35, 35, 40)),
    "gondola": (13.9, 3.16, 3.4, (95, 85, 75)),
    "flat": (19.6, 3.1, 1.4, (120, 110, 100)),
    "hopper": (14.0, 3.2, 4.3, (170, 160, 140)),
    "locomotive": (20.0, 3.3, 5.0, (60, 110, 60)),
}


@dataclass
class SynthScene:
    image: np.ndarray
    transform: tuple
    tracks: list  # track lines given to the core (possibly misregistered), map coords
    true_tracks: list
    truth: list  # dicts: track (index), type, polygon_map, visible
    valid: np.ndarray | None = None
    cloud: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    @property
    def n_visible(self) -> int:
        return sum(1 for t in self.truth if t["visible"])


def cut(track: int, start_m: float, types: list[str], *, gap_m: float = 1.0, colours=None) -> list[dict]:
    """A cut of coupled cars on ``track`` starting at ``start_m``: list of car specs."""
    out, s = [], start_m
    for i, ty in enumerate(types):
        length = CAR_LOOK[ty][0]
        spec = {"track": track, "s0": s, "type": ty}
        if colours is not None:
            spec["rgb"] = colours[i % len(colours)]
        out.append(spec)
        s += length + gap_m
    return out


def render(
    *,
    n_tracks: int = 3,
    length_m: float = 200.0,
    spacing_m: float = 5.0,
    bearing_deg: float = 0.0,
    gsd_m: float = 0.5,
    cars: list[dict] = (),
    pan: bool = False,
    dtype=np.uint8,
    noise: float = 3.0,
    blur_px: float = 0.6,
    shift_m: tuple = (0.0, 0.0),
    rotation_deg: float = 0.0,
    margin_m: float = 20.0,
    road: bool = False,
    trucks: list[float] = (),
    containers: list[tuple] = (),
    shadow: tuple | None = None,
    cloud_u: tuple | None = None,
    nodata_u: tuple | None = None,
    heaps: bool = False,
    ground_rgb=(110, 115, 95),
    ballast_rgb=(135, 130, 120),
    seed: int = 0,
    origin=(500_000.0, 4_700_000.0),
) -> SynthScene:
    """Render a scene; see the module docstring. Cars: dicts with track, s0, type[, rgb].

    ``shadow`` = (dv, du): each car casts a dark copy of itself offset by (du along, dv
    across) metres. ``cloud_u`` / ``nodata_u`` = (u0, u1): an along-track band hidden by
    cloud (bright, flagged in ``cloud``) or without data (``valid`` False). ``trucks`` are
    along-track positions of trucks on a road beside the outermost track; ``containers``
    are (u, v) centres of 12 m container stacks. ``heaps``: gondolas carry ore in three
    heaps (a load that varies along the car, unlike the plain dark floor by default).
    """
    rng = np.random.default_rng(seed)
    ss = 3 if gsd_m >= 0.4 else 2
    fine = gsd_m / ss
    v_tracks = (np.arange(n_tracks) - (n_tracks - 1) / 2) * spacing_m
    half_w = (n_tracks - 1) / 2 * spacing_m + margin_m + (12.0 if road else 0.0)
    half_l = length_m / 2 + margin_m
    th = math.radians(bearing_deg)
    # Along unit vector (east of north, like a bearing), across = left normal.
    eu = np.array([math.sin(th), math.cos(th)])
    ev = np.array([-eu[1], eu[0]])
    cx, cy = origin
    corners = np.array([[cx, cy] + su * half_l * eu + sv * half_w * ev for su in (-1, 1) for sv in (-1, 1)])
    x0, y1 = corners[:, 0].min(), corners[:, 1].max()
    cols = int(math.ceil((corners[:, 0].max() - x0) / gsd_m))
    rows = int(math.ceil((y1 - corners[:, 1].min()) / gsd_m))
    transform = (gsd_m, 0.0, float(x0), 0.0, -gsd_m, float(y1))
    # Fine-grid map coordinates of pixel centres -> (u, v).
    fc = (np.arange(cols * ss) + 0.5) * fine + x0
    fr = y1 - (np.arange(rows * ss) + 0.5) * fine
    X, Y = np.meshgrid(fc - cx, fr - cy)
    U = X * eu[0] + Y * eu[1]
    V = X * ev[0] + Y * ev[1]
    img = np.empty(U.shape + (3,), np.float32)
    tex = gaussian_filter(rng.normal(0, 1, U.shape).astype(np.float32), 2.0) * 25
    img[:] = np.array(ground_rgb, np.float32)
    img += tex[..., None] * 0.6
    for vt in v_tracks:
        bal = np.abs(V - vt) < 1.9
        img[bal] = np.array(ballast_rgb, np.float32) + tex[bal, None] * 0.3
        for rs in (-0.72, 0.72):
            rail = np.abs(V - vt - rs) < 0.08
            img[rail] = (80, 80, 85)
    if road:
        vr = v_tracks[-1] + 9.0
        img[np.abs(V - vr) < 3.5] = (70, 70, 72)
        for u in trucks:
            m = (np.abs(U - u) < 6.0) & (np.abs(V - vr - 1.5) < 1.25)
            img[m] = (200, 200, 205)
    for (uc, vc) in containers:
        m = (np.abs(U - uc) < 6.1) & (np.abs(V - vc) < 1.22)
        img[m] = (40, 90, 160)
    truth = []
    shadow_masks = []
    car_masks = []
    for spec in cars:
        L, W, H, rgb = CAR_LOOK[spec["type"]]
        rgb = spec.get("rgb", rgb)
        u0 = -length_m / 2 + spec["s0"]
        vt = v_tracks[spec["track"]]
        m = (U >= u0) & (U < u0 + L) & (np.abs(V - vt) < W / 2)
        car_masks.append((m, rgb, spec["type"], vt, W, L, u0))
        if shadow is not None:
            dv, du = shadow
            sm = (U >= u0 + du) & (U < u0 + L + du) & (V - vt >= -W / 2 + min(dv, 0)) & (V - vt < W / 2 + max(dv, 0))
            shadow_masks.append(sm)
        ring_uv = np.array([[u0, vt - W / 2], [u0 + L, vt - W / 2], [u0 + L, vt + W / 2], [u0, vt + W / 2], [u0, vt - W / 2]])
        ring = np.array([cx, cy]) + ring_uv[:, :1] * eu + ring_uv[:, 1:] * ev
        truth.append({"track": spec["track"], "type": spec["type"], "polygon_map": ring, "u": (u0, u0 + L), "visible": True})
    for sm in shadow_masks:
        img[sm] *= 0.35
    for m, rgb, ty, vt, W, L, u0 in car_masks:
        img[m] = rgb
        if ty == "tank":  # a bright specular line along the top
            img[m & (np.abs(V - vt) < 0.25)] = (200, 200, 205)
        if ty == "gondola":  # open top: darker load inside a rim
            inside = m & (np.abs(V - vt) < W / 2 - 0.35)
            if heaps:  # ore loaded in three heaps: bright crests, dark troughs
                crest = 1.0 + 0.2 * np.cos(2 * np.pi * (U[inside] - u0 - L / 6) / (L / 3))
                img[inside] = np.array([150, 85, 55], np.float32) * crest[:, None]
            else:
                img[inside] = (45, 40, 35)
    cloud = valid = None
    if cloud_u is not None:
        cm = (U >= cloud_u[0] - length_m / 2) & (U < cloud_u[1] - length_m / 2)
        img[cm] = 235
    if pan:
        img = img.mean(axis=2, keepdims=True)
    # Average to the GSD, soften, add sensor noise.
    nb = img.shape[2]
    img = img.reshape(rows, ss, cols, ss, nb).mean(axis=(1, 3))
    if blur_px > 0:
        img = gaussian_filter(img, (blur_px, blur_px, 0))
    img = img + rng.normal(0, noise, img.shape)
    if cloud_u is not None:
        cmask = cm.reshape(rows, ss, cols, ss).mean(axis=(1, 3)) > 0.5
        cloud = cmask
    if nodata_u is not None:
        nm = ((U >= nodata_u[0] - length_m / 2) & (U < nodata_u[1] - length_m / 2)).reshape(rows, ss, cols, ss).mean(axis=(1, 3)) > 0.5
        valid = ~nm
        img[nm] = 0
    scale = {np.uint8: 1.0, np.uint16: 40.0}.get(dtype, 1.0 / 255.0)
    img = img * scale
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        img = np.clip(np.round(img), info.min, info.max)
    img = img.astype(dtype)
    if pan:
        img = img[..., 0]
    # Visibility: a car is visible when at least half of it lies outside cloud and nodata.
    for t in truth:
        u0, u1 = t["u"]
        hidden = 0.0
        for band in (cloud_u, nodata_u):
            if band is not None:
                a0, a1 = band[0] - length_m / 2, band[1] - length_m / 2
                hidden += max(0.0, min(u1, a1) - max(u0, a0))
        t["visible"] = hidden < 0.5 * (u1 - u0)
    # Track lines handed to the core: the true lines, longer than the rendered area at both
    # ends, then misregistered (rotation about the centre, then shift).
    true_tracks, given = [], []
    rot = math.radians(rotation_deg)
    R = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    for vt in v_tracks:
        uu = np.array([-length_m / 2 - 30.0, 0.0, length_m / 2 + 30.0])
        line = np.array([cx, cy]) + uu[:, None] * eu + vt * ev
        true_tracks.append(line)
        rel = line - np.array([cx, cy])
        given.append(np.array([cx, cy]) + rel @ R.T + np.asarray(shift_m))
    return SynthScene(image=img, transform=transform, tracks=given, true_tracks=true_tracks, truth=truth, valid=valid,
                      cloud=cloud, params={"gsd_m": gsd_m, "bearing_deg": bearing_deg, "seed": seed})


def match(detections, truth, *, track_names=None) -> dict:
    """Match detections to true cars: a detection matches when its centre lies in the car."""
    import shapely

    polys = [shapely.Polygon(t["polygon_map"]) for t in truth]
    used = set()
    tp = 0
    for d in detections:
        c = np.asarray(d.polygon_map)[:-1].mean(axis=0)
        for i, pg in enumerate(polys):
            if i not in used and pg.contains(shapely.Point(c)):
                used.add(i)
                tp += 1
                break
    return {"tp": tp, "fp": len(detections) - tp, "fn": len(truth) - tp, "matched": used}
