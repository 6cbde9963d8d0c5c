"""A third, independent renderer of simulated satellite scenes of rail yards.

A STYLE PROBE. This module exists to measure how well the image core
(``geo_evidence.core``) generalises to an imagery style it was not built on. It was written
without reading the core or the project simulator (``geo_evidence.simulate``), and it
deliberately looks unlike both that simulator and the small test renderer
(``tests/scenes_synthetic.py``). Its first measurement (session 12, base seed 7101) was
taken before any change to the core. Like the other renderers, its scenes at tuning seeds
(base seeds below 100,000) may be looked at to find failure MODES; figures reported as
held-out come from fresh base seeds only (``python benchmarks/accuracy.py --renderer third``
without ``--seed``), and no threshold may be fitted to one renderer's look.

    scene(rng, gsd, seed) -> dict(image, transform, tracks, names, valid, cloud, excludes,
                                  truth, desc)

What a scene holds (most options switched at random per scene):

* Geometry - 2-8 tracks 4.5-6.5 m apart (sometimes one wide gap with a platform, canopy or
  service road between two groups), a 150-600 m yard at any bearing, straight or a gentle
  curve (concentric arcs, radius 600-3000 m), sometimes a stub track ending at a buffer
  stop and a turnout diverging from an outer track into a parallel siding.
* Rails and ballast - ballast per track (fresh grey, rusty, oily, granite, weedy), sleepers
  every ~0.6 m drawn on the supersampled grid (so they alias as a real sensor would), rails
  polished or rusty, oil stains between the rails, ground of grass / dirt / gravel /
  concrete / snow, tyre tracks and puddles.
* Cars - box, tank (cylinder shading, domes, walkway), gondola (empty with wall shade, or
  coal / ore / scrap / gravel heaps), hopper (covered with hatches, or open with sloped
  bays), flat (empty deck, containers, timber, road vehicles) and locomotives (narrow hood,
  radiator fans, exhaust); realistic sizes, paint palette with fading and dirt, coupler gaps
  0.8-2.0 m, cuts of 1-40 cars, occupancy from empty to packed.
* Light and view - sun azimuth 0-360 deg and elevation 15-70 deg; every raised object casts
  a shadow (car bodies leave a lit strip under the frame, bogies shade it), sides facing
  the sun are lit; tall sheds and container stacks shade cars; optional off-nadir lean
  (0-20 deg) that moves roofs off their footprints and shows the near side. The truth
  footprint is always the car's rectangle ON THE GROUND.
* Distractors - a road with trucks and trailers, a container terminal, sheds, platforms
  with canopies, parked cars, catenary masts / headspans / wires and their shadows, lamp
  posts, trees, material piles.
* Atmosphere and sensor - haze, thin and thick cloud (thick cloud flagged in ``cloud``),
  cloud shadows (not flagged), a nodata wedge, a Gaussian or Airy PSF, shot and read noise,
  optional unsharp-mask halo, optional 8x8 DCT (JPEG-like) blocking, panchromatic in ~30 %
  of scenes, uint8 / 11-bit uint16 / float32 reflectance. 3 m and 10 m scenes are the same
  scene averaged down.

Rendering: every feature is drawn on a supersampled grid (2x at 0.3 m, 3x at 0.5/0.6 m, 4x at
1 m, ~0.4 m cells at 3 and 10 m) in bands of rows, so the full fine frame never sits in memory;
ground-level linear features (ballast, sleepers, rails, roads) come from the (u along, n across)
yard frame, raised objects are convex prisms (footprint, lean and shadow hulls) drawn in order
of height. Each band is averaged to the GSD, then cloud, PSF, noise and quantisation follow at
the output grid. A 600 m yard at 0.3 m renders in about 2-2.5 s and ~250 MB.

All randomness comes from the ``rng`` passed in, so a scene is reproducible from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.signal import fftconvolve
from scipy.special import j1

Array = np.ndarray

# --------------------------------------------------------------------------------------
# Palettes and sizes (display-like reflectance, 0..1)
# --------------------------------------------------------------------------------------

PAINT = {
    "rust": (0.45, 0.25, 0.17), "oxide": (0.50, 0.20, 0.15), "black": (0.09, 0.09, 0.10),
    "grey": (0.42, 0.42, 0.42), "silver": (0.66, 0.66, 0.64), "blue": (0.15, 0.26, 0.48),
    "green": (0.18, 0.34, 0.22), "yellow": (0.80, 0.67, 0.18), "white": (0.86, 0.86, 0.83),
    "brown": (0.34, 0.25, 0.18), "teal": (0.22, 0.42, 0.42), "orange": (0.78, 0.40, 0.14),
    "tan": (0.62, 0.54, 0.40), "red": (0.62, 0.14, 0.12),
}
TYPE_PAINTS = {
    "box": ["oxide", "brown", "blue", "green", "yellow", "white", "rust", "grey", "orange"],
    "tank": ["black", "black", "grey", "silver", "white", "silver", "blue", "green"],
    "gondola": ["rust", "black", "brown", "oxide", "grey", "green", "blue"],
    "hopper": ["silver", "white", "tan", "grey", "blue", "rust", "brown", "black"],
    "flat": ["rust", "brown", "grey", "black", "oxide"],
    "locomotive": ["yellow", "red", "blue", "green", "black", "orange", "grey", "white"],
}
CONTAINER_PAINTS = ["blue", "red", "green", "orange", "white", "grey", "yellow", "teal", "oxide", "brown", "silver"]
# type: (length min, length max, width, height min, height max)
CAR_DIMS = {
    "box": (15.0, 18.0, 3.2, 4.2, 4.2),
    "tank": (11.0, 18.0, 3.0, 4.3, 4.3),
    "gondola": (12.0, 16.0, 3.15, 3.0, 3.6),
    "hopper": (13.0, 18.0, 3.2, 4.0, 4.0),
    "flat": (13.0, 20.0, 3.0, 1.3, 1.3),
    "locomotive": (18.0, 22.0, 3.15, 4.6, 4.6),
}
GROUND = {
    "grass": (0.30, 0.37, 0.20), "lush": (0.21, 0.32, 0.14), "dry": (0.55, 0.50, 0.34),
    "dirt": (0.50, 0.42, 0.32), "gravel": (0.55, 0.53, 0.49), "concrete": (0.68, 0.67, 0.63),
    "asphalt": (0.26, 0.26, 0.27), "snow": (0.90, 0.92, 0.95), "slush": (0.62, 0.62, 0.63),
    "cinder": (0.36, 0.33, 0.30),
}
BALLAST = {
    "fresh": (0.58, 0.57, 0.55), "rusty": (0.47, 0.36, 0.28), "oily": (0.28, 0.26, 0.24),
    "granite": (0.60, 0.52, 0.48), "mixed": (0.45, 0.43, 0.40),
}
TIES = [(0.20, 0.16, 0.12), (0.42, 0.38, 0.33), (0.70, 0.69, 0.66), (0.30, 0.26, 0.22)]
WEED = np.array((0.24, 0.34, 0.14), np.float32)
SNOW = np.array(GROUND["snow"], np.float32)
GAUGE_HALF = 0.7535  # rail-head centre offset from the track centre, m
RAIL_W = 0.072


def rgb(v) -> Array:
    """A colour (or any values) as float32."""
    return np.asarray(v, np.float32)


# --------------------------------------------------------------------------------------
# Small geometry helpers
# --------------------------------------------------------------------------------------

def smoothstep(x: Array) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def hash01(a: Array, c: Array, k: float) -> Array:
    """Deterministic per-point pseudo-noise in [0, 1) (cheap texture, no rng per pixel)."""
    v = np.sin(a * 12.9898 + c * 78.233 + k) * 43758.5453
    return (v - np.floor(v)).astype(np.float32)


def rect_poly(cx: float, cy: float, ex: float, ey: float, hl: float, hw: float) -> Array:
    """Counter-clockwise corners of a rectangle (centre, along unit vector, half sizes)."""
    px, py = -ey, ex
    loc = ((-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw))
    return np.array([[cx + a * ex + c * px, cy + a * ey + c * py] for a, c in loc])


def hull(pts: Array) -> Array:
    """Convex hull (counter-clockwise) of a few points, monotone chain."""
    pts = np.asarray(pts, float)
    p = [tuple(q) for q in pts[np.lexsort((pts[:, 1], pts[:, 0]))].tolist()]
    if len(p) <= 2:
        return np.array(p)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for q in p:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 1e-12:
            lower.pop()
        lower.append(q)
    upper: list = []
    for q in reversed(p):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 1e-12:
            upper.pop()
        upper.append(q)
    return np.array(lower[:-1] + upper[:-1])


def edges(poly: Array) -> list:
    pts = np.asarray(poly, float).tolist()
    return list(zip(pts, pts[1:] + pts[:1]))


def points_in_convex(poly: Array, x: Array, y: Array) -> Array:
    inside = np.ones(np.shape(x), bool)
    for (x1, y1), (x2, y2) in edges(poly):
        inside &= (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0
    return inside


def line_cov(d: Array, hw: float, f: float) -> Array:
    """Box-filtered coverage of a line of half width ``hw`` at distance ``d`` (pixel ``f``)."""
    d = np.abs(d)
    return np.clip(np.minimum(d + f / 2, hw) - np.maximum(d - f / 2, -hw), 0.0, None) / f


# --------------------------------------------------------------------------------------
# Light, view and the yard frame
# --------------------------------------------------------------------------------------

@dataclass
class Light:
    az: float   # direction TO the sun, degrees clockwise from north
    el: float   # elevation, degrees
    amb: float  # skylight share

    def __post_init__(self) -> None:
        a, e = math.radians(self.az), math.radians(self.el)
        self.s = np.array([math.sin(a), math.cos(a)])
        self.lh, self.lz = math.cos(e), math.sin(e)
        self.tan_el = math.tan(e)
        self.F = self.amb + (1 - self.amb) * self.lz
        self.sv = -self.s / self.tan_el  # ground shadow offset per metre of height
        self.shade = (self.amb / self.F) * np.array([0.94, 0.98, 1.07], np.float32)

    def local(self, ex: float, ey: float) -> "LocalLight":
        return LocalLight(self.s[0] * ex + self.s[1] * ey, -self.s[0] * ey + self.s[1] * ex, self)


@dataclass
class LocalLight:
    sa: float  # sun horizontal component along the object
    sc: float  # ... and across it (left normal)
    g: Light

    def illum(self, na, nc, nz) -> Array:
        d = self.g.lh * (na * self.sa + nc * self.sc) + self.g.lz * nz
        return ((self.g.amb + (1 - self.g.amb) * np.maximum(d, 0.0)) / self.g.F).astype(np.float32)

    def spec(self, na, nc, nz, power: float) -> Array:
        h = np.array([self.g.lh * self.sa, self.g.lh * self.sc, self.g.lz + 1.0])
        h /= np.linalg.norm(h)
        return (np.maximum(na * h[0] + nc * h[1] + nz * h[2], 0.0) ** power).astype(np.float32)


@dataclass
class View:
    k: float          # tan(off-nadir lean)
    d: Array          # unit direction roofs move in (map x, y)

    def disp(self, z: float) -> Array:
        return z * self.k * self.d


@dataclass
class Frame:
    """Yard frame: u along the reference line, n across (left); optional constant curvature."""

    eu: Array
    ev: Array
    kappa: float

    def to_xy(self, u, n) -> Array:
        u, n = np.asarray(u, float), np.asarray(n, float)
        if self.kappa == 0.0:
            return u[..., None] * self.eu + n[..., None] * self.ev
        R = 1.0 / self.kappa
        phi = u * self.kappa
        q = (n - R)[..., None]
        return R * self.ev + q * (np.cos(phi)[..., None] * self.ev - np.sin(phi)[..., None] * self.eu)

    def to_un(self, x: Array, y: Array) -> tuple[Array, Array]:
        eu, ev = self.eu.astype(np.float32), self.ev.astype(np.float32)
        if self.kappa == 0.0:
            return x * eu[0] + y * eu[1], x * ev[0] + y * ev[1]
        R = np.float32(1.0 / self.kappa)
        rx, ry = x - R * ev[0], y - R * ev[1]
        sg = -np.sign(self.kappa)
        n = R + sg * np.hypot(rx, ry)
        phi = np.arctan2(-(rx * eu[0] + ry * eu[1]) * sg, (rx * ev[0] + ry * ev[1]) * sg)
        return (phi / np.float32(self.kappa)).astype(np.float32), n.astype(np.float32)

    def across(self, u) -> Array:
        phi = np.asarray(u, float) * self.kappa
        return np.cos(phi)[..., None] * self.ev - np.sin(phi)[..., None] * self.eu

    def along(self, u) -> Array:
        phi = np.asarray(u, float) * self.kappa
        return np.cos(phi)[..., None] * self.eu + np.sin(phi)[..., None] * self.ev


# --------------------------------------------------------------------------------------
# Scene plan
# --------------------------------------------------------------------------------------

@dataclass
class Track:
    name: str
    n0: float
    u_lo: float = -math.inf
    u_hi: float = math.inf
    siding: tuple | None = None  # (u_t, delta, Lt): n = n0 + delta * smoothstep((u - u_t) / Lt)
    look: dict = field(default_factory=dict)

    def n_at(self, u) -> Array:
        u = np.asarray(u, float)
        if self.siding is None:
            return np.full(u.shape, self.n0)
        ut, delta, lt = self.siding
        return self.n0 + delta * smoothstep((u - ut) / lt)


@dataclass
class Prism:
    """A raised box: footprint (centre, along unit vector, half sizes) from z0 to z1."""

    cx: float
    cy: float
    ex: float
    ey: float
    hl: float
    hw: float
    z0: float
    z1: float
    kind: str
    look: dict
    shadow_z0: float | None = None
    draw: bool = True
    big: bool = False
    under: float = 0.0  # side below this height is dark undercarriage

    def foot(self) -> Array:
        return rect_poly(self.cx, self.cy, self.ex, self.ey, self.hl, self.hw)


@dataclass
class Car:
    kind: str
    track: str
    cx: float
    cy: float
    ex: float
    ey: float
    L: float
    W: float
    prisms: list


@dataclass
class Plan:
    gsd: float
    centre: Array
    frame: Frame
    Ly: float
    tracks: list
    siding_idx: int | None
    stub_idx: int | None
    bands: list           # (kind, n_lo, n_hi, params) ground-level linear features
    n_lo: float
    n_hi: float
    margin_u: float
    light: Light
    view: View
    season: str
    ground: tuple
    prisms: list = field(default_factory=list)
    cars: list = field(default_factory=list)
    trees: list = field(default_factory=list)
    piles: list = field(default_factory=list)
    puddles: list = field(default_factory=list)
    poles: list = field(default_factory=list)
    beams: list = field(default_factory=list)
    catenary: dict | None = None
    opts: dict = field(default_factory=dict)


def plan_tracks(rng: np.random.Generator, Ly: float) -> tuple[list, int | None, int | None, tuple | None]:
    """Track offsets, names and looks; returns tracks, siding index, stub index, wide gap."""
    n = int(rng.integers(2, 9))
    base = float(rng.uniform(4.5, 6.5))
    gaps = np.clip(base + rng.normal(0, 0.15, n - 1), 4.5, 6.5)
    wide = None
    if n >= 3 and rng.random() < 0.3:
        j = int(rng.integers(1, n - 1))
        gaps[j] = float(rng.uniform(9.0, 16.0))
        wide = j
    offs = np.concatenate([[0.0], np.cumsum(gaps)])
    offs -= offs.mean()
    letters = "ABCDEFGHJK"
    g0 = int(rng.integers(0, 8))
    tracks = []
    k_in_group, group = 0, g0
    for i, n0 in enumerate(offs):
        if wide is not None and i == wide + 1:
            group, k_in_group = group + 1, 0
        k_in_group += 1
        tracks.append(Track(f"{letters[group]}{k_in_group}", float(n0), look=track_look(rng)))
    wide_gap = None if wide is None else (float(offs[wide]), float(offs[wide + 1]))
    stub = None
    if rng.random() < 0.3:
        stub = int(rng.integers(0, n))
        tracks[stub].u_hi = float(rng.uniform(-0.25, 0.3) * Ly)
    siding = None
    if rng.random() < 0.3 and n < 8:
        side = int(rng.choice([-1, 1]))
        base_idx = 0 if side < 0 else n - 1
        if base_idx != stub:
            delta = side * float(rng.uniform(8.0, 15.0))
            lt = abs(delta) * float(rng.uniform(8.0, 11.0))
            ut = float(rng.uniform(-0.45, 0.1)) * Ly
            ut = min(ut, Ly / 2 - lt - 40.0)
            name = f"{letters[(g0 + 5) % len(letters)]}{int(rng.integers(1, 4))}"
            tracks.append(Track(name, tracks[base_idx].n0, u_lo=ut, siding=(ut, delta, lt), look=track_look(rng)))
            siding = len(tracks) - 1
    return tracks, siding, stub, wide_gap


def track_look(rng: np.random.Generator) -> dict:
    kind = str(rng.choice(list(BALLAST), p=[0.35, 0.2, 0.15, 0.1, 0.2]))
    used = rng.random() < 0.7
    return dict(
        ballast=rgb(BALLAST[kind]) * float(rng.uniform(0.85, 1.12)),
        tie=rgb(TIES[int(rng.integers(0, len(TIES)))]),
        tie_vis=float(rng.uniform(0.35, 0.95)),
        tie_frac=float(rng.uniform(0.36, 0.46)),
        tie_sp=float(rng.uniform(0.58, 0.66)),
        tie_ph=float(rng.random()),
        rail=rgb((0.74, 0.74, 0.77) if used else (0.36, 0.23, 0.16)) * float(rng.uniform(0.8, 1.1)),
        hw=float(rng.uniform(1.6, 2.1)),
        weedy=float(rng.choice([0.0, 0.0, 0.3, 0.7])),
        oily=float(rng.uniform(0.0, 0.6)),
        snow=float(rng.uniform(0.3, 0.95)),
    )


def plan_zones(rng: np.random.Generator, plan_n_lo: float, plan_n_hi: float, wide_gap: tuple | None, sides_taken: dict) -> list:
    """Ground bands beside (and between) the track groups: (kind, n_lo, n_hi, params)."""
    bands = []
    if wide_gap is not None:
        a, b = wide_gap[0] + 2.4, wide_gap[1] - 2.4
        kind = str(rng.choice(["platform", "service", "bed"], p=[0.45, 0.35, 0.2]))
        bands.append((kind, a, b, {"canopy": kind == "platform" and rng.random() < 0.6}))
    for side in (-1, 1):
        edge = (plan_n_hi if side > 0 else plan_n_lo) + side * sides_taken.get(side, 0.0)
        pos = edge + side * float(rng.uniform(3.5, 12.0))
        kinds = list(rng.choice(["road", "service", "terminal", "sheds", "trees", "piles", "parking", "none"],
                                size=int(rng.integers(0, 3)), replace=False,
                                p=[0.2, 0.14, 0.13, 0.17, 0.12, 0.08, 0.08, 0.08]))
        for kind in kinds:
            width = {"road": 8.0, "service": float(rng.uniform(5, 7)), "terminal": float(rng.uniform(18, 30)),
                     "sheds": float(rng.uniform(14, 26)), "trees": float(rng.uniform(6, 12)),
                     "piles": float(rng.uniform(10, 18)), "parking": 11.0, "none": float(rng.uniform(3, 10))}[kind]
            lo, hi = sorted((pos, pos + side * width))
            bands.append((kind, lo, hi, {"side": side}))
            pos += side * (width + float(rng.uniform(2.0, 6.0)))
    return bands


def plan_scene(rng: np.random.Generator, gsd: float) -> Plan:
    """Draw the whole scene: yard geometry, bands beside it, light, view, cars, distractors."""
    Ly = float(rng.uniform(150, 600))
    bearing = math.radians(float(rng.uniform(0, 360)))
    eu = np.array([math.sin(bearing), math.cos(bearing)])
    ev = np.array([-eu[1], eu[0]])
    kappa = 0.0
    if rng.random() < 0.3:
        kappa = float(rng.choice([-1, 1])) / float(rng.uniform(600, 3000))
    tracks, siding, stub, wide_gap = plan_tracks(rng, Ly)
    offs = [t.n0 for t in tracks]
    taken = {}
    if siding is not None:
        d = tracks[siding].siding[1]
        taken[int(np.sign(d))] = abs(d)
    n_lo, n_hi = min(offs), max(offs)
    bands = plan_zones(rng, n_lo, n_hi, wide_gap, taken)
    bands.insert(0, ("bed", n_lo - 3.6 - taken.get(-1, 0.0), n_hi + 3.6 + taken.get(1, 0.0), {}))
    all_lo = min(b[1] for b in bands) - float(rng.uniform(4, 14))
    all_hi = max(b[2] for b in bands) + float(rng.uniform(4, 14))
    season = str(rng.choice(["summer", "autumn", "bare", "industrial", "snow"], p=[0.35, 0.2, 0.1, 0.15, 0.2]))
    ground = {"summer": ("grass", "dirt") if rng.random() < 0.6 else ("lush", "dry"), "autumn": ("dry", "dirt"),
              "bare": ("dirt", "gravel"), "industrial": ("concrete", "gravel"), "snow": ("snow", "slush")}[season]
    light = Light(float(rng.uniform(0, 360)), float(rng.uniform(15, 70)), float(rng.uniform(0.25, 0.45)))
    lean = float(rng.uniform(0, 20)) if rng.random() < 0.4 else 0.0
    la = float(rng.uniform(0, 2 * math.pi))
    view = View(math.tan(math.radians(lean)), np.array([math.sin(la), math.cos(la)]))
    centre = np.array([400_000.0 + float(rng.uniform(0, 90_000)), 4_600_000.0 + float(rng.uniform(0, 90_000))])
    plan = Plan(gsd=gsd, centre=centre, frame=Frame(eu, ev, kappa), Ly=Ly, tracks=tracks, siding_idx=siding,
                stub_idx=stub, bands=bands, n_lo=all_lo, n_hi=all_hi, margin_u=float(rng.uniform(10, 25)),
                light=light, view=view, season=season, ground=ground)
    plan.opts.update(lean=lean, curve=kappa != 0.0, siding=siding is not None, stub=stub is not None,
                     wide=wide_gap is not None)
    place_cars(rng, plan)
    place_distractors(rng, plan)
    return plan


# --------------------------------------------------------------------------------------
# Cars
# --------------------------------------------------------------------------------------

def track_polyline(plan: Plan, t: Track, u0: float, u1: float, step: float) -> Array:
    n = max(2, int(math.ceil((u1 - u0) / step)) + 1)
    u = np.linspace(u0, u1, n)
    return plan.frame.to_xy(u, t.n_at(u))


def usable_range(plan: Plan, t: Track) -> tuple[float, float]:
    lo, hi = -plan.Ly / 2, plan.Ly / 2
    if t.siding is not None:
        ut, _, lt = t.siding
        lo = max(lo, ut + 0.75 * lt)
    hi = min(hi, t.u_hi - 3.0)
    return lo, hi


def draw_cut(rng: np.random.Generator, k: int) -> list[tuple[str, float, str]]:
    """Types, lengths and paints of a cut of ``k`` coupled cars."""
    kinds = ["box", "tank", "gondola", "hopper", "flat"]
    w = np.array([0.22, 0.22, 0.22, 0.2, 0.14])
    if rng.random() < 0.5:  # unit train: one model
        kind = str(rng.choice(kinds, p=w))
        lmin, lmax = CAR_DIMS[kind][:2]
        L = float(rng.uniform(lmin, lmax))
        paint = str(rng.choice(TYPE_PAINTS[kind]))
        cars = [(kind, L + float(rng.normal(0, 0.05)), paint if rng.random() < 0.85 else str(rng.choice(TYPE_PAINTS[kind])))
                for _ in range(k)]
    else:
        cars = []
        for _ in range(k):
            kind = str(rng.choice(kinds, p=w))
            lmin, lmax = CAR_DIMS[kind][:2]
            cars.append((kind, float(rng.uniform(lmin, lmax)), str(rng.choice(TYPE_PAINTS[kind]))))
    if rng.random() < 0.15 or k == 1 and rng.random() < 0.3:
        paint = str(rng.choice(TYPE_PAINTS["locomotive"]))
        locos = [("locomotive", float(rng.uniform(18, 22)), paint) for _ in range(int(rng.integers(1, 3)))]
        cars = locos + cars[: max(0, k - len(locos))] if rng.random() < 0.7 else cars + locos
    return cars


def place_cars(rng: np.random.Generator, plan: Plan) -> None:
    """Fill each track with cuts of coupled cars to a drawn occupancy (sometimes packed)."""
    packed = rng.random() < 0.2
    empty_yard = rng.random() < 0.06
    for t in plan.tracks:
        lo, hi = usable_range(plan, t)
        if hi - lo < 12 or empty_yard:
            continue
        occ = float(rng.uniform(0.8, 0.97)) if packed else (0.0 if rng.random() < 0.15 else float(rng.uniform(0.05, 0.95)))
        poly = track_polyline(plan, t, lo, hi, 0.5)
        seg = np.hypot(*np.diff(poly, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        T = s[-1]
        cuts, used = [], 0.0
        while used < occ * T - 10:
            left = occ * T - used
            k = int(rng.integers(1, int(np.clip(left / 15.0, 1, 40)) + 1))
            cut = draw_cut(rng, k)
            gaps = rng.uniform(0.8, 2.0, len(cut))
            length = sum(c[1] for c in cut) + float(gaps[:-1].sum())
            while cut and used + length > T - 2.0:  # trim the cut to the room left
                _, L, _ = cut.pop()
                length -= L + (float(gaps[len(cut) - 1]) if cut else 0.0)
            if not cut:
                break
            cuts.append((cut, gaps))
            used += length
        if not cuts:
            continue
        free = max(T - used, 0.0)
        shares = rng.dirichlet(np.ones(len(cuts) + 1) * (0.6 if packed else 1.0)) * free
        pos = float(shares[0])
        for (cut, gaps), sh in zip(cuts, shares[1:]):
            for (kind, L, paint), gap in zip(cut, gaps):
                if pos + L > T:
                    break
                plan.cars.append(make_car(rng, plan, t.name, kind, L, paint, poly, s, pos))
                pos += L + float(gap)
            pos += float(sh)


def make_car(rng: np.random.Generator, plan: Plan, track: str, kind: str, L: float, paint: str,
             poly: Array, s: Array, s0: float) -> Car:
    """A car from arc length ``s0`` to ``s0 + L`` along ``poly``: body on the chord, bogies, loads."""
    p0 = np.array([np.interp(s0, s, poly[:, 0]), np.interp(s0, s, poly[:, 1])])
    p1 = np.array([np.interp(s0 + L, s, poly[:, 0]), np.interp(s0 + L, s, poly[:, 1])])
    e = (p1 - p0) / np.linalg.norm(p1 - p0)
    if rng.random() < 0.5:  # cars face either way
        e = -e
    W = CAR_DIMS[kind][2]
    H = float(rng.uniform(*CAR_DIMS[kind][3:]))
    jit = float(np.clip(rng.normal(0, 0.06), -0.15, 0.15))
    c = (p0 + p1) / 2 + jit * np.array([-e[1], e[0]])
    look = car_look(rng, plan, kind, paint, L, W, H)
    body = Prism(c[0], c[1], e[0], e[1], L / 2, W / 2, 0.0, H, kind, look, shadow_z0=1.0, under=1.05)
    prisms = [body]
    for sgn in (-1, 1):  # bogies: shade the lit strip under the frame
        b = c + sgn * (L / 2 - 2.3) * e
        prisms.append(Prism(b[0], b[1], e[0], e[1], 1.4, 1.3, 0.0, 1.0, "none", {}, draw=False))
    if kind == "flat":
        prisms += flat_loads(rng, plan, c, e, L, H)
    return Car(kind, track, float(c[0]), float(c[1]), float(e[0]), float(e[1]), L, W, prisms)


def car_look(rng: np.random.Generator, plan: Plan, kind: str, paint: str, L: float, W: float, H: float) -> dict:
    base = rgb(PAINT[paint])
    fade = float(rng.uniform(0.0, 0.45))
    col = base * (1 - fade) + rgb((0.55, 0.53, 0.5)) * fade
    look = dict(rgb=col * float(rng.uniform(0.85, 1.1)), L=L, W=W, H=H, dirt=float(rng.uniform(0.0, 0.35)),
                ph=rng.uniform(0, 6.3, 4), freq=rng.uniform(0.3, 1.6, 2), seed=float(rng.uniform(0, 100)),
                snow=float(rng.uniform(0.5, 1.0)) if plan.season == "snow" and kind != "locomotive" and rng.random() < 0.5 else 0.0)
    if kind == "box":
        look.update(roof=col if rng.random() < 0.6 else rgb(PAINT[str(rng.choice(["silver", "grey", "white"]))]),
                    seam=float(rng.uniform(1.1, 1.7)), board=rng.random() < 0.35)
    elif kind == "tank":
        nd = int(rng.choice([1, 1, 2]))
        look.update(domes=[0.0] if nd == 1 else [-L / 6, L / 6], rd=float(rng.uniform(0.45, 0.8)),
                    walk=rng.random() < 0.6, gloss=float(rng.uniform(0.1, 0.5)), power=float(rng.uniform(20, 80)))
    elif kind == "gondola":
        look.update(load=str(rng.choice(["empty", "coal", "ore", "scrap", "gravel"], p=[0.35, 0.25, 0.15, 0.15, 0.1])),
                    heaps=int(rng.integers(2, 5)), fill=float(rng.uniform(0.1, 0.6)), floor=1.1)
    elif kind == "hopper":
        covered = rng.random() < 0.6
        look.update(covered=covered, hatches=int(rng.integers(3, 5)), round=rng.random() < 0.5,
                    bays=int(rng.integers(3, 5)), load="coal" if (not covered and rng.random() < 0.5) else "empty",
                    fill=float(rng.uniform(0.1, 0.5)), heaps=int(rng.integers(2, 5)), floor=1.1)
    elif kind == "flat":
        look.update(deck=rgb((0.42, 0.33, 0.24)) if rng.random() < 0.5 else col)
    elif kind == "locomotive":
        look.update(cab=float(rng.choice([-1, 1])), fans=int(rng.integers(2, 4)),
                    roof=col if rng.random() < 0.6 else rgb(PAINT[str(rng.choice(["grey", "silver", "black"]))]))
    return look


def flat_loads(rng: np.random.Generator, plan: Plan, c: Array, e: Array, L: float, H: float) -> list:
    r = rng.random()
    out = []
    if r < 0.35:
        return out
    if r < 0.75:  # containers
        lens = [12.19] if L > 13.2 and rng.random() < 0.5 else ([6.06, 6.06] if L > 13.0 else [6.06])
        if len(lens) == 1 and lens[0] < 7 and L > 13 and rng.random() < 0.5:
            lens = [6.06]
        total = sum(lens) + 0.3 * (len(lens) - 1)
        a = -total / 2 + float(rng.uniform(-0.3, 0.3)) * (L - total) / 2
        for ln in lens:
            p = c + (a + ln / 2) * e
            look = container_look(rng)
            out.append(Prism(p[0], p[1], e[0], e[1], ln / 2, 1.22, H, H + 2.59, "container", look))
            a += ln + 0.3
    elif r < 0.9:  # timber
        p = c
        look = dict(rgb=rgb((0.45, 0.33, 0.22)) * float(rng.uniform(0.8, 1.2)), d=float(rng.uniform(0.25, 0.45)),
                    dirt=0.1, ph=rng.uniform(0, 6.3, 4), freq=rng.uniform(0.3, 1.6, 2), seed=float(rng.uniform(0, 100)), snow=0.0)
        out.append(Prism(p[0], p[1], e[0], e[1], L / 2 - 0.6, 1.3, H, H + float(rng.uniform(1.6, 2.4)), "timber", look))
    else:  # road vehicles
        n = int((L - 1) // 4.9)
        for i in range(n):
            p = c + (-L / 2 + 0.8 + 2.4 + i * 4.9) * e
            out.append(Prism(p[0], p[1], e[0], e[1], 2.25, 0.9, H, H + 1.5, "auto", auto_look(rng)))
    return out


def container_look(rng: np.random.Generator) -> dict:
    col = rgb(PAINT[str(rng.choice(CONTAINER_PAINTS))]) * float(rng.uniform(0.8, 1.1))
    return dict(rgb=col, dirt=float(rng.uniform(0, 0.25)), ph=rng.uniform(0, 6.3, 4), freq=rng.uniform(0.3, 1.6, 2),
                seed=float(rng.uniform(0, 100)), snow=0.0)


def auto_look(rng: np.random.Generator) -> dict:
    col = rgb(PAINT[str(rng.choice(["white", "silver", "black", "red", "blue", "grey", "white"]))])
    return dict(rgb=col, dirt=0.05, ph=rng.uniform(0, 6.3, 4), freq=rng.uniform(0.3, 1.6, 2), seed=0.0, snow=0.0)


# --------------------------------------------------------------------------------------
# Distractors
# --------------------------------------------------------------------------------------

def obj_at(plan: Plan, u: float, n: float, turn: float = 0.0) -> tuple[float, float, float, float]:
    """Map position and along vector of a point at (u, n), rotated by ``turn`` radians."""
    p = plan.frame.to_xy(u, n)
    a = plan.frame.along(u)
    ca, sa = math.cos(turn), math.sin(turn)
    ex, ey = a[0] * ca - a[1] * sa, a[0] * sa + a[1] * ca
    return float(p[0]), float(p[1]), float(ex), float(ey)


def u_span(plan: Plan) -> tuple[float, float]:
    return -plan.Ly / 2 - plan.margin_u, plan.Ly / 2 + plan.margin_u


def place_distractors(rng: np.random.Generator, plan: Plan) -> None:
    for kind, lo, hi, prm in plan.bands:
        fn = {"road": road_traffic, "service": service_road, "terminal": terminal, "sheds": sheds,
              "trees": tree_row, "piles": pile_zone, "parking": parking, "platform": platform}.get(kind)
        if fn is not None:
            fn(rng, plan, lo, hi, prm)
    if plan.stub_idx is not None:
        t = plan.tracks[plan.stub_idx]
        x, y, ex, ey = obj_at(plan, t.u_hi + 0.6, t.n0)
        look = dict(rgb=rgb(PAINT[str(rng.choice(["red", "yellow", "grey"]))]), dirt=0.2, ph=rng.uniform(0, 6.3, 4),
                    freq=rng.uniform(0.3, 1.6, 2), seed=0.0, snow=0.0)
        plan.prisms.append(Prism(x, y, ex, ey, 0.6, 1.6, 0.0, 1.2, "plain", look))
    if rng.random() < 0.3:
        catenary(rng, plan)
    if rng.random() < 0.5:
        lamp_posts(rng, plan)
    u0, u1 = u_span(plan)
    for _ in range(int(rng.integers(0, 8))):  # stray trees at the edges of the frame
        n = float(rng.choice([plan.n_lo + 3, plan.n_hi - 3]))
        add_tree(rng, plan, float(rng.uniform(u0, u1)), n + float(rng.uniform(-3, 3)))


def road_traffic(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    u0, u1 = u_span(plan)
    for lane, sgn in ((lo + 2.3, 1.0), (hi - 2.3, -1.0)):
        u = u0 + float(rng.uniform(0, 60))
        while u < u1:
            if rng.random() < 0.5:
                truck(rng, plan, u, lane + float(rng.normal(0, 0.2)), sgn)
            u += float(rng.uniform(25, 120))


def truck(rng: np.random.Generator, plan: Plan, u: float, n: float, sgn: float) -> None:
    x, y, ex, ey = obj_at(plan, u, n, 0.0 if sgn > 0 else math.pi)
    e = np.array([ex, ey])
    Lt = float(rng.uniform(12.5, 14.5))
    paint = str(rng.choice(TYPE_PAINTS["box"] + ["white", "white", "silver"]))
    tl = dict(rgb=rgb(PAINT[paint]) * float(rng.uniform(0.8, 1.1)), dirt=float(rng.uniform(0, 0.3)),
              ph=rng.uniform(0, 6.3, 4), freq=rng.uniform(0.3, 1.6, 2), seed=float(rng.uniform(0, 99)), snow=0.0,
              seam=float(rng.uniform(0.6, 1.1)))
    pt = np.array([x, y]) - (Lt / 2 + 0.6) * e
    kind = "container" if rng.random() < 0.3 else "trailer"
    plan.prisms.append(Prism(pt[0], pt[1], ex, ey, Lt / 2, 1.25, 0.0, 4.0 if kind == "trailer" else 3.9, kind,
                             tl if kind == "trailer" else container_look(rng), shadow_z0=1.0, under=1.1))
    pc = np.array([x, y]) + 1.6 * e
    cl = dict(rgb=rgb(PAINT[str(rng.choice(["white", "red", "blue", "silver", "yellow", "green"]))]), dirt=0.1,
              ph=rng.uniform(0, 6.3, 4), freq=rng.uniform(0.3, 1.6, 2), seed=0.0, snow=0.0)
    plan.prisms.append(Prism(pc[0], pc[1], ex, ey, 1.3, 1.25, 0.0, 3.3, "cab", cl, shadow_z0=0.8, under=0.9))


def service_road(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    u0, u1 = u_span(plan)
    for _ in range(int(rng.integers(0, 6))):
        u, n = float(rng.uniform(u0, u1)), float(rng.uniform(lo, hi))
        plan.puddles.append((u, n, float(rng.uniform(0.8, 4.0)), float(rng.uniform(0.5, 1.8)), rng.random() < 0.5))
    for _ in range(int(rng.integers(0, 3))):
        truck(rng, plan, float(rng.uniform(u0, u1)), (lo + hi) / 2, float(rng.choice([-1, 1])))


def terminal(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    u0 = float(rng.uniform(-plan.Ly / 2, plan.Ly / 4))
    length = float(rng.uniform(60, 200))
    rows = int((hi - lo - 4) // 2.8)
    for r in range(rows):
        n = lo + 2 + 1.22 + r * 2.8
        u = u0
        while u < min(u0 + length, plan.Ly / 2 + plan.margin_u):
            ln = 12.19 if rng.random() < 0.7 else 6.06
            if rng.random() < 0.85:
                tiers = int(rng.integers(1, 5))
                x, y, ex, ey = obj_at(plan, u + ln / 2, n)
                plan.prisms.append(Prism(x, y, ex, ey, ln / 2, 1.22, 0.0, 2.59 * tiers, "container", container_look(rng),
                                         big=tiers >= 2))
            u += ln + float(rng.uniform(0.25, 0.8))


def sheds(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    u, (_, u1) = -plan.Ly / 2 - plan.margin_u + float(rng.uniform(-20, 60)), u_span(plan)
    while u < u1:
        ln = float(rng.uniform(20, 80))
        depth = float(rng.uniform(10, hi - lo))
        n = (lo + depth / 2) if prm["side"] > 0 else (hi - depth / 2)
        x, y, ex, ey = obj_at(plan, u + ln / 2, n)
        col = rgb(PAINT[str(rng.choice(["grey", "silver", "blue", "oxide", "white", "rust", "green"]))])
        look = dict(rgb=col, gable=rng.random() < 0.6, pitch=float(rng.uniform(0.15, 0.35)), rib=float(rng.uniform(0.4, 1.0)),
                    sky=rng.random() < 0.4, dirt=float(rng.uniform(0, 0.3)), ph=rng.uniform(0, 6.3, 4),
                    freq=rng.uniform(0.05, 0.3, 2), seed=0.0, snow=0.9 if plan.season == "snow" else 0.0)
        plan.prisms.append(Prism(x, y, ex, ey, ln / 2, depth / 2, 0.0, float(rng.uniform(6, 14)), "building", look, big=True))
        u += ln + float(rng.uniform(8, 50))


def platform(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    if not prm.get("canopy"):
        return
    ua = float(rng.uniform(-plan.Ly / 2, 0))
    ln = float(rng.uniform(40, 150))
    x, y, ex, ey = obj_at(plan, ua + ln / 2, (lo + hi) / 2)
    look = dict(rgb=rgb(PAINT[str(rng.choice(["silver", "white", "grey", "green"]))]), dirt=0.15, ph=rng.uniform(0, 6.3, 4),
                freq=rng.uniform(0.05, 0.3, 2), seed=0.0, snow=0.9 if plan.season == "snow" else 0.0, gable=False,
                pitch=0.0, rib=1.5, sky=False)
    plan.prisms.append(Prism(x, y, ex, ey, ln / 2, (hi - lo) / 2 - 0.3, 4.0, 4.6, "building", look, big=True))


def parking(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    u0, u1 = u_span(plan)
    ua = float(rng.uniform(u0, u1 - 60))
    for i in range(int(rng.integers(5, 30))):
        u = ua + i * 2.6
        if u > u1 or rng.random() < 0.3:
            continue
        for n in ((lo + 2.6, hi - 2.6) if rng.random() < 0.5 else ((lo + hi) / 2,)):
            x, y, ex, ey = obj_at(plan, u, n, math.pi / 2)
            plan.prisms.append(Prism(x, y, ex, ey, 2.25, 0.9, 0.0, 1.5, "auto", auto_look(rng), shadow_z0=0.3))


def tree_row(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    u0, u1 = u_span(plan)
    u = u0 + float(rng.uniform(0, 10))
    while u < u1:
        add_tree(rng, plan, u, float(rng.uniform(lo, hi)))
        u += float(rng.uniform(3, 14))


def add_tree(rng: np.random.Generator, plan: Plan, u: float, n: float) -> None:
    p = plan.frame.to_xy(u, n)
    r = float(rng.uniform(1.5, 4.5))
    hc = float(rng.uniform(r + 2, r + 10))
    if plan.season == "summer":
        col = rgb((0.14, 0.24, 0.10)) * float(rng.uniform(0.8, 1.3))
    elif plan.season == "autumn":
        col = rgb(((0.45, 0.32, 0.12), (0.35, 0.30, 0.12), (0.18, 0.24, 0.10))[int(rng.integers(0, 3))])
    else:
        col = rgb((0.30, 0.26, 0.22))
    plan.trees.append((float(p[0]), float(p[1]), r, hc, col, plan.season in ("snow", "bare"), float(rng.uniform(0, 6.3))))


def pile_zone(rng: np.random.Generator, plan: Plan, lo: float, hi: float, prm: dict) -> None:
    u0, u1 = u_span(plan)
    mat = rgb(((0.10, 0.10, 0.11), (0.55, 0.52, 0.48), (0.70, 0.60, 0.42), (0.45, 0.25, 0.16))[int(rng.integers(0, 4))])
    for _ in range(int(rng.integers(2, 6))):
        u, n = float(rng.uniform(u0, u1)), (lo + hi) / 2
        x, y, ex, ey = obj_at(plan, u, n, float(rng.normal(0, 0.2)))
        ra = float(rng.uniform(5, 12))
        rb = min(float(rng.uniform(3, 7)), (hi - lo) / 2)
        plan.piles.append((x, y, ex, ey, ra, rb, float(rng.uniform(1.5, 4.5)), mat * float(rng.uniform(0.85, 1.15))))


def catenary(rng: np.random.Generator, plan: Plan) -> None:
    offs = [t.n0 for t in plan.tracks if t.siding is None]
    a, b = min(offs) - 2.8, max(offs) + 2.8
    u0, u1 = u_span(plan)
    h = float(rng.uniform(7.5, 9.5))
    u = u0 + float(rng.uniform(0, 30))
    step = float(rng.uniform(50, 65))
    while u < u1:
        pa, pb = plan.frame.to_xy(u, a), plan.frame.to_xy(u, b)
        plan.poles += [(float(pa[0]), float(pa[1]), h, 0.25, False), (float(pb[0]), float(pb[1]), h, 0.25, False)]
        plan.beams.append((pa, pb, h - 0.5, 0.12))
        u += step
    plan.catenary = dict(heights=(5.6, 6.8), tracks=[t.n0 for t in plan.tracks if t.siding is None])


def lamp_posts(rng: np.random.Generator, plan: Plan) -> None:
    u0, u1 = u_span(plan)
    for _ in range(int(rng.integers(2, 7))):
        side = plan.tracks[0].n0 - 3.5 if rng.random() < 0.5 else plan.tracks[-1].n0 + 3.5
        p = plan.frame.to_xy(float(rng.uniform(u0, u1)), side)
        plan.poles.append((float(p[0]), float(p[1]), float(rng.uniform(15, 25)), 0.35, True))


# --------------------------------------------------------------------------------------
# Roof painters: (a, c) roof-local coordinates of roof pixels -> lit RGB (n, 3)
# --------------------------------------------------------------------------------------

def flat_lit(col: Array, n: int) -> Array:
    return np.broadcast_to(col, (n, 3)).astype(np.float32)


def wall_shade(a: Array, c: Array, hl: float, hw: float, depth: Array | float, lt: LocalLight) -> Array:
    """True where a floor point inside an open box (inner half sizes) is shaded by a wall."""
    big = np.float32(1e6)
    da = np.where(lt.sa > 1e-6, (hl - a) / max(lt.sa, 1e-6), np.where(lt.sa < -1e-6, (-hl - a) / min(lt.sa, -1e-6), big))
    dc = np.where(lt.sc > 1e-6, (hw - c) / max(lt.sc, 1e-6), np.where(lt.sc < -1e-6, (-hw - c) / min(lt.sc, -1e-6), big))
    d = np.minimum(da, dc)
    return d * lt.g.tan_el < depth


def paint_box(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    hw = pr.hw
    t = np.clip(c / hw, -1, 1) * 0.12
    out = flat_lit(lk["roof"], a.size) * lt.illum(0.0, t, np.sqrt(1 - t * t))[:, None]
    seam = (np.mod(a, lk["seam"]) < 0.09)
    out[seam] *= 0.85
    out[np.abs(a) > pr.hl - 0.25] *= 0.8
    if lk["board"]:
        m = np.abs(c) < 0.28
        out[m] = out[m] * 0.4 + rgb((0.30, 0.26, 0.22)) * 0.6
    return out


def paint_tank(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    r, hl = pr.hw, pr.hl
    rh = 0.8
    tc = np.clip(c / r, -0.995, 0.995)
    ta = np.clip((np.abs(a) - (hl - rh)) / rh, 0, 1)
    frame = tc * tc + ta * ta > 1.0
    na = np.sign(a) * ta
    nz = np.sqrt(np.clip(1 - tc * tc - na * na, 0.02, 1))
    norm = np.sqrt(na * na + tc * tc + nz * nz)
    na, nc, nz = na / norm, tc / norm, nz / norm
    out = lk["rgb"][None, :] * lt.illum(na, nc, nz)[:, None] + lk["gloss"] * lt.spec(na, nc, nz, lk["power"])[:, None]
    if lk["walk"]:
        m = np.abs(c) < 0.3
        out[m] = out[m] * 0.5 + 0.18
    for ad in lk["domes"]:
        rho2 = ((a - ad) ** 2 + c * c) / lk["rd"] ** 2
        m = rho2 < 1
        if m.any():
            da, dc = (a[m] - ad) / lk["rd"], c[m] / lk["rd"]
            dz = np.sqrt(np.clip(1 - da * da - dc * dc, 0.05, 1))
            out[m] = lk["rgb"] * 0.9 * lt.illum(da * 0.6, dc * 0.6, dz)[:, None]
            ring = m & (rho2 > 0.75)
            out[ring] *= 0.6
    out[frame] = rgb((0.16, 0.15, 0.14))
    return out


def heap_surface(a: Array, c: Array, pr: Prism, lt: LocalLight, lk: dict) -> tuple[Array, Array]:
    """Load height above the floor and its lighting for heaped bulk loads."""
    L = 2 * pr.hl
    lam = L / lk["heaps"]
    amp = lk["fill"]
    ph = 2 * np.pi * (a + pr.hl) / lam
    z = pr.z1 - 0.25 - amp * (1 - np.cos(ph)) / 2 - 0.15 * (c / pr.hw) ** 2
    dzda = -amp * np.pi / lam * np.sin(ph)
    dzdc = -0.3 * c / pr.hw ** 2
    norm = np.sqrt(dzda ** 2 + dzdc ** 2 + 1)
    return z, lt.illum(-dzda / norm, -dzdc / norm, 1 / norm)


LOADS = {"coal": (0.09, 0.09, 0.10), "ore": (0.44, 0.25, 0.17), "gravel": (0.55, 0.53, 0.50), "scrap": (0.35, 0.28, 0.24)}


def paint_open_top(a: Array, c: Array, pr: Prism, lt: LocalLight, bays: int = 0) -> Array:
    """Gondolas and open hoppers: rim, floor (with wall shade) or a heaped load."""
    lk = pr.look
    t = 0.15
    out = flat_lit(lk["rgb"] * 1.12, a.size)
    inner = (np.abs(a) < pr.hl - t) & (np.abs(c) < pr.hw - t)
    ai, ci = a[inner], c[inner]
    if lk["load"] == "empty":
        col = lk["rgb"] * 0.55 + rgb((0.35, 0.22, 0.14)) * 0.25
        if bays:
            x = np.mod((ai + pr.hl) / (2 * pr.hl / bays), 1.0)
            slope = np.where(x < 0.5, -1.0, 1.0) * 0.7
            shade = lt.illum(slope / 1.22, 0.0, 1 / 1.22)
            depth = pr.z1 - (lk["floor"] + 1.2 * np.abs(2 * x - 1))
        else:
            shade = np.ones(ai.size, np.float32)
            depth = pr.z1 - lk["floor"]
            ribs = (np.abs(ci) > pr.hw - t - 0.12) & (np.mod(ai, 1.3) < 0.18)
            shade = np.where(ribs, 0.75, shade)
        val = col[None, :] * shade[:, None]
    else:
        z, shade = heap_surface(ai, ci, pr, lt, lk)
        depth = pr.z1 - z
        base = rgb(LOADS[lk["load"]])
        sp = hash01(np.floor(ai / 0.25), np.floor(ci / 0.25), lk["seed"])
        if lk["load"] == "scrap":
            val = (base[None, :] * (0.4 + 1.4 * sp[:, None])) * shade[:, None]
        else:
            val = base[None, :] * (0.85 + 0.3 * sp[:, None]) * shade[:, None]
    sh = wall_shade(ai, ci, pr.hl - t, pr.hw - t, depth, lt)
    val[sh] *= lt.g.shade
    out[inner] = val
    return out


def paint_gondola(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    return paint_open_top(a, c, pr, lt)


def paint_hopper(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    if not lk["covered"]:
        return paint_open_top(a, c, pr, lt, bays=lk["bays"])
    t = np.clip(c / pr.hw, -1, 1) * 0.3
    ta = np.where(np.abs(a) > pr.hl - 1.2, np.sign(a) * 0.45, 0.0)
    nz = np.sqrt(1 - t * t)
    out = lk["rgb"][None, :] * lt.illum(ta, t, nz)[:, None]
    spacing = 2 * (pr.hl - 1.6) / max(lk["hatches"] - 1, 1)
    for i in range(lk["hatches"]):
        ah = -pr.hl + 1.6 + i * spacing
        if lk["round"]:
            m = (a - ah) ** 2 + c * c < 0.33 ** 2
        else:
            m = (np.abs(a - ah) < 0.55) & (np.abs(c) < 0.35)
        out[m] = out[m] * 0.7
    m = (np.abs(np.abs(c) - 0.55) < 0.12)
    out[m] *= 0.82
    return out


def paint_flat(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    out = flat_lit(lk["deck"], a.size)
    out[np.mod(c, 0.27) < 0.05] *= 0.82
    out[np.abs(c) > pr.hw - 0.18] *= 0.7
    out[(np.abs(c) > pr.hw - 0.3) & (np.mod(a, 1.8) < 0.2)] *= 0.6
    return out


def paint_loco(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    hl, hw = pr.hl, pr.hw
    out = flat_lit(lk["roof"], a.size)
    t = np.clip(c / (hw - 0.4), -1, 1) * 0.25
    out *= lt.illum(0.0, t, np.sqrt(1 - t * t))[:, None]
    ac = a * lk["cab"]  # cab at ac ~ +hl
    cab = ac > hl - 3.4
    out[cab] = lk["rgb"] * 1.05
    rad = (ac < -hl + 1.2 + 0.22 * 2 * hl) & (ac > -hl + 1.2) & (np.abs(c) < hw - 0.7)
    out[rad] = rgb((0.12, 0.12, 0.13))
    for i in range(lk["fans"]):
        af = -hl + 1.9 + i * 1.5
        rho = np.hypot(ac - af, c)
        out[rho < 0.62] = rgb((0.07, 0.07, 0.08))
        out[np.abs(rho - 0.62) < 0.06] = rgb((0.45, 0.45, 0.45))
    ex = (np.abs(ac - 0.05 * hl) < 0.3) & (np.abs(c) < 0.3)
    out[ex] = rgb((0.05, 0.05, 0.05))
    soot = np.exp(-((ac - 0.05 * hl) / 3.0) ** 2) * 0.35
    out *= (1 - soot)[:, None]
    grid = (np.abs(ac - 0.3 * hl) < 1.5) & (np.abs(c) < hw - 0.8) & (np.mod(ac, 0.3) < 0.12)
    out[grid] *= 0.5
    walk = np.abs(c) > hw - 0.4
    out[walk] = rgb((0.20, 0.20, 0.21))
    return out


def paint_container(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    out = flat_lit(lk["rgb"], a.size)
    out[np.mod(a, 0.28) < 0.09] *= 0.86
    corner = (np.abs(a) > pr.hl - 0.2) & (np.abs(c) > pr.hw - 0.2)
    out[corner] *= 0.5
    return out


def paint_trailer(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    out = flat_lit(pr.look["rgb"], a.size)
    out[np.mod(a, pr.look["seam"]) < 0.08] *= 0.88
    out[np.abs(a) > pr.hl - 0.15] *= 0.75
    return out


def paint_cab(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    out = flat_lit(pr.look["rgb"], a.size)
    out[a > pr.hl - 0.6] *= rgb((0.35, 0.38, 0.45))
    return out


def paint_auto(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    out = flat_lit(pr.look["rgb"], a.size)
    out[np.abs(np.abs(a - 0.2) - 0.95) < 0.3] = rgb((0.10, 0.11, 0.13))
    return out


def paint_timber(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    x = np.mod(c / lk["d"], 1.0) * 2 - 1
    nz = np.sqrt(np.clip(1 - x * x, 0.05, 1))
    out = lk["rgb"][None, :] * lt.illum(0.0, x * 0.8, nz)[:, None]
    return out


def paint_building(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    lk = pr.look
    if lk["gable"]:
        s = np.where(c > 0, 1.0, -1.0) * math.sin(math.atan(lk["pitch"]))
        shade = lt.illum(0.0, s, math.cos(math.atan(lk["pitch"])))
    else:
        shade = np.ones(a.size, np.float32)
    out = lk["rgb"][None, :] * shade[:, None]
    out[np.mod(a, lk["rib"]) < 0.12 * lk["rib"]] *= 0.88
    if lk["gable"]:
        out[np.abs(c) < 0.25] *= 0.8
    if lk["sky"]:
        m = (np.mod(a, 6.0) < 1.0) & (np.abs(np.abs(c) - pr.hw / 2) < 0.6)
        out[m] = rgb((0.78, 0.80, 0.82))
    out[(np.abs(a) > pr.hl - 0.3) | (np.abs(c) > pr.hw - 0.3)] *= 0.85
    return out


def paint_plain(a: Array, c: Array, pr: Prism, lt: LocalLight) -> Array:
    out = flat_lit(pr.look["rgb"], a.size)
    out[np.mod(c + a, 0.8) < 0.3] *= 0.6
    return out


PAINTERS = {"box": paint_box, "tank": paint_tank, "gondola": paint_gondola, "hopper": paint_hopper, "flat": paint_flat,
            "locomotive": paint_loco, "container": paint_container, "trailer": paint_trailer, "cab": paint_cab,
            "auto": paint_auto, "timber": paint_timber, "building": paint_building, "plain": paint_plain}


def weather(out: Array, a: Array, c: Array, lk: dict) -> Array:
    """Per-object dirt streaks and snow on the roof."""
    if lk.get("dirt", 0) > 0:
        ph, fr = lk["ph"], lk["freq"]
        d = 0.5 + 0.5 * np.sin(a * fr[0] + ph[0]) * np.cos(c * fr[1] * 2 + ph[1])
        d = d * (0.6 + 0.4 * np.sin(a * 0.37 + ph[2]))
        out *= (1 - lk["dirt"] * d)[:, None].astype(np.float32)
    if lk.get("snow", 0) > 0:  # irregular cover: sum of incommensurate waves
        ph = lk["ph"]
        patch = (np.sin(a * 0.37 + ph[3]) + 0.7 * np.sin(a * 1.13 + c * 0.9 + ph[0])
                 + 0.5 * np.sin(c * 2.9 - a * 0.61 + ph[1]))
        m = patch < -2.2 + 4.4 * lk["snow"]
        out[m] = out[m] * 0.15 + SNOW * 0.85
    return out


# --------------------------------------------------------------------------------------
# The fine canvas
# --------------------------------------------------------------------------------------

@dataclass
class Grid:
    """The output grid and its supersampled (fine) grid, relative to the yard centre."""

    f: float
    ss: int
    rows: int
    cols: int
    xs: Array  # fine column centres
    ys: Array  # fine row centres
    transform: tuple


@dataclass
class Canvas:
    """A band of fine rows being rendered (the whole frame never sits in memory at once)."""

    f: float
    row0: int   # first fine row of the band
    xs: Array
    ys: Array
    img: Array  # (band rows, fine cols, 3) float32
    lit: Array  # (band rows, fine cols) direct-light fraction

    def window(self, xmin: float, xmax: float, ymin: float, ymax: float) -> tuple[int, int, int, int] | None:
        f = self.f
        c0 = max(0, int(math.floor((xmin - self.xs[0]) / f)))
        c1 = min(self.xs.size, int(math.ceil((xmax - self.xs[0]) / f)) + 1)
        r0 = max(0, int(math.floor((self.ys[0] - ymax) / f)))
        r1 = min(self.ys.size, int(math.ceil((self.ys[0] - ymin) / f)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def poly_window(self, poly: Array, pad: float = 0.0):
        return self.window(poly[:, 0].min() - pad, poly[:, 0].max() + pad, poly[:, 1].min() - pad, poly[:, 1].max() + pad)

    def convex_mask(self, poly: Array, win) -> Array:
        r0, r1, c0, c1 = win
        X, Y = self.xs[c0:c1], self.ys[r0:r1]
        lo = np.full(Y.shape, -np.inf)
        hi = np.full(Y.shape, np.inf)
        ok = np.ones(Y.shape, bool)
        for (x1, y1), (x2, y2) in edges(poly):
            dx, dy = x2 - x1, y2 - y1
            rhs = dx * (Y - y1) + dy * x1
            if dy > 1e-12:
                hi = np.minimum(hi, rhs / dy)
            elif dy < -1e-12:
                lo = np.maximum(lo, rhs / dy)
            else:
                ok &= dx * (Y - y1) >= 0
        return (X[None, :] >= lo[:, None]) & (X[None, :] < hi[:, None]) & ok[:, None]


def make_grid(plan: Plan, gsd: float) -> Grid:
    """Output transform and fine grid covering the yard, its side bands and margins."""
    u0, u1 = u_span(plan)
    u = np.linspace(u0, u1, 80)
    pts = np.concatenate([plan.frame.to_xy(u, np.full(u.shape, n)) for n in (plan.n_lo, plan.n_hi)])
    if plan.siding_idx is not None:
        t = plan.tracks[plan.siding_idx]
        pts = np.concatenate([pts, track_polyline(plan, t, t.u_lo, u1, 5.0)])
    cx, cy = plan.centre
    x0 = math.floor((cx + pts[:, 0].min()) / gsd) * gsd
    y1 = math.ceil((cy + pts[:, 1].max()) / gsd) * gsd
    cols = int(math.ceil((cx + pts[:, 0].max() - x0) / gsd))
    rows = int(math.ceil((y1 - cy - pts[:, 1].min()) / gsd))
    ss = {0.3: 2, 0.5: 3, 0.6: 3, 1.0: 4, 3.0: 8}.get(gsd, max(2, int(round(gsd / 0.45))))
    f = gsd / ss
    xs = (x0 - cx) + (np.arange(cols * ss) + 0.5) * f
    ys = (y1 - cy) - (np.arange(rows * ss) + 0.5) * f
    transform = (float(gsd), 0.0, float(x0), 0.0, -float(gsd), float(y1))
    return Grid(f, ss, rows, cols, xs, ys, transform)


# --------------------------------------------------------------------------------------
# Smooth random fields on a coarse grid
# --------------------------------------------------------------------------------------

@dataclass
class Coarse:
    x0: float
    y1: float
    cell: float
    shape: tuple

    def fbm(self, rng: np.random.Generator, scales_m: tuple, gain: float = 0.55) -> Array:
        out = np.zeros(self.shape, np.float32)
        amp = 1.0
        for s in scales_m:
            g = gaussian_filter(rng.standard_normal(self.shape).astype(np.float32), max(s / self.cell, 0.5), mode="wrap")
            out += amp * g / (g.std() + 1e-9)
            amp *= gain
        return (out - out.mean()) / (out.std() + 1e-9)

    def on_grid(self, field_: Array, xs: Array, ys: Array) -> Array:
        """Bilinear resampling onto an axis-aligned grid (separable weight matrices)."""
        Wr = interp_matrix(self.shape[0], (self.y1 - ys) / self.cell - 0.5)
        Wc = interp_matrix(self.shape[1], (xs - self.x0) / self.cell - 0.5)
        return (Wr @ field_ @ Wc.T).astype(np.float32)

    def at(self, field_: Array, x: Array, y: Array) -> Array:
        return map_coordinates(field_, [(self.y1 - y) / self.cell - 0.5, (x - self.x0) / self.cell - 0.5],
                               order=1, mode="nearest")


def interp_matrix(n: int, idx: Array) -> Array:
    idx = np.clip(idx, 0, n - 1.000001)
    i = np.floor(idx).astype(int)
    t = (idx - i).astype(np.float32)
    M = np.zeros((idx.size, n), np.float32)
    ar = np.arange(idx.size)
    M[ar, i] = 1 - t
    M[ar, np.minimum(i + 1, n - 1)] += t
    return M


def make_coarse(gr: Grid, cell: float) -> Coarse:
    x0 = gr.xs[0] - gr.f / 2 - 2 * cell
    y1 = gr.ys[0] + gr.f / 2 + 2 * cell
    w = gr.xs[-1] - gr.xs[0] + 4 * cell
    h = gr.ys[0] - gr.ys[-1] + 4 * cell
    return Coarse(x0, y1, cell, (int(h / cell) + 3, int(w / cell) + 3))


# --------------------------------------------------------------------------------------
# Rendering: ground, linear features (strips), shadows, raised objects
# --------------------------------------------------------------------------------------

def out_centres(gr: Grid) -> tuple[Array, Array]:
    g = gr.f * gr.ss
    xo = gr.xs[0] - gr.f / 2 + (np.arange(gr.cols) + 0.5) * g
    yo = gr.ys[0] + gr.f / 2 - (np.arange(gr.rows) + 0.5) * g
    return xo, yo


def ground_field(rng: np.random.Generator, plan: Plan, gr: Grid, co: Coarse) -> tuple:
    """Ground materials at output resolution (broadcast onto the fine grid band by band)."""
    xo, yo = out_centres(gr)
    mix = co.on_grid(co.fbm(rng, (60.0, 25.0, 10.0)), xo, yo)
    patch = co.on_grid(co.fbm(rng, (20.0, 8.0)), xo, yo)
    ma, mb = rgb(GROUND[plan.ground[0]]), rgb(GROUND[plan.ground[1]])
    w = smoothstep(mix * 0.8 + 0.5)[..., None]
    grain = gaussian_filter(rng.standard_normal((gr.rows, gr.cols)).astype(np.float32), 0.6)
    mod = 1 + 0.08 * patch + float(rng.uniform(0.03, 0.08)) * grain
    return ma, mb - ma, w, mod


def fill_ground(cv: Canvas, gr: Grid, ground: tuple) -> None:
    ma, dm, w, mod = ground
    o0 = cv.row0 // gr.ss
    n = cv.img.shape[0] // gr.ss
    g = ma + dm * w[o0:o0 + n]
    g *= mod[o0:o0 + n, :, None]
    wide = np.repeat(g, gr.ss, axis=1)
    v = cv.img.reshape(n, gr.ss, gr.cols * gr.ss, 3)
    for k in range(gr.ss):
        v[:, k] = wide


@dataclass
class TrackTables:
    offs: Array        # across offsets of the parallel tracks (sorted)
    order: Array       # track index of each sorted offset
    mids: Array
    u0: float          # along-track table origin
    var: Array         # (n_tracks, n_bins) brightness variation
    weed: Array
    oil: Array
    edge: Array        # (n_tracks, n_bins) ballast half width
    looks: dict        # name -> (n_tracks, ...) arrays


def make_tables(rng: np.random.Generator, plan: Plan, u_lo: float, u_hi: float) -> TrackTables:
    par = [i for i, t in enumerate(plan.tracks) if t.siding is None]
    offs = np.array([plan.tracks[i].n0 for i in par])
    o = np.argsort(offs)
    order = np.array(par)[o]
    offs = offs[o]
    nb = int(u_hi - u_lo) + 4
    nt = len(plan.tracks)

    def smooth(sig, scale):
        return gaussian_filter(rng.standard_normal((nt, nb)).astype(np.float32), (0, sig)) * scale

    var = smooth(6, 1.0)
    var = 0.08 * var / (var.std() + 1e-9)
    weed = smooth(10, 1.0)
    weed = np.clip(weed / (weed.std() + 1e-9) - 0.6, 0, 1) * np.array([t.look["weedy"] for t in plan.tracks], np.float32)[:, None]
    oil = smooth(3, 1.0)
    oil = np.clip(oil / (oil.std() + 1e-9) - 0.3, 0, 1.5) * np.array([t.look["oily"] for t in plan.tracks], np.float32)[:, None]
    looks = {k: np.array([t.look[k] for t in plan.tracks], np.float32) for k in plan.tracks[0].look}
    edge = smooth(1.5, 1.0)
    edge = looks["hw"][:, None] + 0.15 * edge / (edge.std() + 1e-9)
    mids = (offs[1:] + offs[:-1]) / 2
    return TrackTables(offs, order, mids, u_lo, var, weed, oil, edge, looks)


@dataclass
class Strip:
    """A run of fine rows, the columns it needs, and n sampled along it (to find sub-ranges)."""

    r0: int
    r1: int
    c0: int
    c1: int
    cs: Array  # sampled columns (absolute)
    ns: Array  # n at the strip's first, middle and last row for those columns
    step: int

    def sub(self, lo: float, hi: float, pad: float = 1.0) -> slice | None:
        """Columns (relative to c0) of this strip in which n may lie within [lo, hi]."""
        hit = np.flatnonzero(((self.ns >= lo - pad) & (self.ns <= hi + pad)).any(axis=0))
        if hit.size == 0:
            return None
        a = max(self.c0, int(self.cs[hit[0]]) - self.step) - self.c0
        b = min(self.c1, int(self.cs[hit[-1]]) + self.step + 1) - self.c0
        return slice(a, b) if b > a else None


def strip_ranges(cv: Canvas, plan: Plan, lo: float, hi: float, rows_per: int = 96, shift: Array | None = None):
    """Fine row strips and the column range in which n (of the point moved back by ``shift``)
    lies within [lo, hi]."""
    step = 8
    cs = np.arange(0, cv.xs.size, step)
    if cs[-1] != cv.xs.size - 1:
        cs = np.append(cs, cv.xs.size - 1)
    sx, sy = (0.0, 0.0) if shift is None else (float(shift[0]), float(shift[1]))
    X = (cv.xs[cs] - sx).astype(np.float32)[None, :]
    for r0 in range(0, cv.ys.size, rows_per):
        r1 = min(cv.ys.size, r0 + rows_per)
        ys = (np.array([cv.ys[r0], cv.ys[(r0 + r1) // 2], cv.ys[r1 - 1]]) - sy).astype(np.float32)
        _, N = plan.frame.to_un(X + 0 * ys[:, None], ys[:, None] + 0 * X)
        hit = np.flatnonzero(((N >= lo) & (N <= hi)).any(axis=0))
        if hit.size == 0:
            continue
        c0 = max(0, int(cs[hit[0]]) - step)
        c1 = min(cv.xs.size, int(cs[hit[-1]]) + 2 * step)
        yield Strip(r0, r1, c0, c1, cs, N, step)


@dataclass
class LinearLook:
    """Scene-wide looks of the ground-level linear features (drawn once, used per band)."""

    grain: Array
    soft: Array
    bed: Array
    bands: dict
    wob: Array


def linear_look(rng: np.random.Generator, plan: Plan) -> LinearLook:
    grain_tile = (1 + 0.12 * rng.standard_normal((97, 89))).astype(np.float32)
    snow = plan.season == "snow"
    bed_col = rgb(GROUND["cinder"]) * float(rng.uniform(0.85, 1.2))
    if snow:
        bed_col = rgb((0.80, 0.80, 0.82))
    band_cols = {"road": rgb(GROUND["asphalt"]) * float(rng.uniform(0.8, 1.2)),
                 "service": rgb(GROUND["dirt"] if not snow else GROUND["slush"]) * float(rng.uniform(0.8, 1.05)),
                 "platform": rgb(GROUND["concrete"]) * float(rng.uniform(0.85, 1.05)),
                 "terminal": rgb(GROUND["asphalt"] if rng.random() < 0.5 else GROUND["concrete"]) * float(rng.uniform(0.9, 1.2)),
                 "sheds": rgb(GROUND["concrete"]) * float(rng.uniform(0.8, 1.0)),
                 "parking": rgb(GROUND["asphalt"]) * float(rng.uniform(0.9, 1.2))}
    return LinearLook(grain_tile, grain_tile ** 0.3, bed_col, band_cols, rng.uniform(0, 6.3, 8))


def paint_linear(plan: Plan, cv: Canvas, tb: TrackTables, lk: LinearLook) -> None:
    """Yard bed, roads, platforms and the tracks (ballast, sleepers, rails), strip by strip."""
    f = cv.f
    grain_tile, soft_tile, bed_col, band_cols, wob = lk.grain, lk.soft, lk.bed, lk.bands, lk.wob
    lo = min(b[1] for b in plan.bands) - 1.0
    hi = max(b[2] for b in plan.bands) + 1.0
    offs = [t.n0 for t in plan.tracks]
    t_lo, t_hi = min(offs) - 2.5, max(offs) + 2.5
    if plan.siding_idx is not None:
        d = plan.tracks[plan.siding_idx].siding[1]
        t_lo, t_hi = min(t_lo, t_lo + d), max(t_hi, t_hi + d)
    for st in strip_ranges(cv, plan, lo - 2, hi + 2):
        X = cv.xs[st.c0:st.c1].astype(np.float32)[None, :]
        Y = cv.ys[st.r0:st.r1].astype(np.float32)[:, None]
        U, N = plan.frame.to_un(X, Y)
        blk = cv.img[st.r0:st.r1, st.c0:st.c1]
        rc = np.ix_(np.arange(cv.row0 + st.r0, cv.row0 + st.r1) % 97, np.arange(st.c0, st.c1) % 89)
        G, Gs = grain_tile[rc], soft_tile[rc]
        for kind, b_lo, b_hi, prm in plan.bands:
            sl = st.sub(b_lo, b_hi)
            if sl is None or (kind != "bed" and kind not in band_cols):
                continue
            u, n, b = U[:, sl], N[:, sl], blk[:, sl]
            if kind == "bed":
                e = 0.4 * np.sin(u * 0.11 + wob[0]) + 0.25 * np.sin(u * 0.53 + wob[1])
                m = (n > b_lo + e) & (n < b_hi - e)
                tile, col = G, bed_col
            else:
                m = (n > b_lo) & (n < b_hi)
                tile, col = Gs, band_cols[kind]
            b[m] = col * tile[:, sl][m, None]
            band_marks(b, u, n, kind, b_lo, b_hi, f, wob)
        sl = st.sub(t_lo, t_hi)
        if sl is not None:
            paint_tracks(plan, tb, blk[:, sl], U[:, sl], N[:, sl], G[:, sl], f)
        if plan.catenary is not None:
            pad = max(plan.catenary["heights"]) * float(np.hypot(*plan.light.sv))
            sw = st.sub(t_lo - pad, t_hi + pad)
            if sw is not None:
                wire_shadows(plan, tb, cv.lit[st.r0:st.r1, st.c0:st.c1][:, sw], U[:, sw], N[:, sw], f)


def band_marks(blk: Array, U: Array, N: Array, kind: str, lo: float, hi: float, f: float, wob: Array) -> None:
    """Lane markings, platform edge lines, tyre tracks."""
    mid = (lo + hi) / 2
    if kind == "road":
        dash = (np.mod(U, 12.0) < 3.0)
        cov = line_cov(N - mid, 0.075, f) * dash
        cov = np.maximum(cov, line_cov(N - lo - 0.4, 0.075, f))
        cov = np.maximum(cov, line_cov(N - hi + 0.4, 0.075, f))
        blk += cov[..., None] * (rgb((0.85, 0.85, 0.82)) - blk)
    elif kind == "platform":
        cov = np.maximum(line_cov(N - lo - 0.55, 0.05, f), line_cov(N - hi + 0.55, 0.05, f))
        blk += cov[..., None] * (rgb((0.82, 0.72, 0.20)) - blk)
    elif kind in ("service", "parking"):
        path = mid + 0.8 * np.sin(U / 37.0 + wob[2]) + 0.3 * np.sin(U / 11.0 + wob[3])
        cov = np.maximum(line_cov(N - path - 0.9, 0.22, f), line_cov(N - path + 0.9, 0.22, f))
        blk *= (1 - 0.25 * cov)[..., None]
        if kind == "parking":
            st = line_cov(np.mod(U, 2.6) - 1.3, 0.05, f) * ((N - lo > 0.3) & (hi - N > 0.3))
            blk += st[..., None] * (rgb((0.8, 0.8, 0.78)) - blk)


def paint_tracks(plan: Plan, tb: TrackTables, blk: Array, U: Array, N: Array, grain: Array, f: float) -> None:
    """Ballast, sleepers, oil stains and rails of the track nearest to each pixel."""
    kap = plan.frame.kappa
    j = np.searchsorted(tb.mids, N)
    K = tb.order[j]
    dN = N - tb.offs[j]
    if plan.siding_idx is not None:
        t = plan.tracks[plan.siding_idx]
        ut, delta, lt = t.siding
        x = np.clip((U - ut) / lt, 0, 1)
        ns = t.n0 + delta * x * x * (3 - 2 * x)
        slope = delta / lt * 6 * x * (1 - x)
        dS = (N - ns) / np.sqrt(1 + slope * slope)
        closer = (U >= ut) & (np.abs(dS) < np.abs(dN))
        K = np.where(closer, plan.siding_idx, K)
        dN = np.where(closer, dS, dN)
    ub = (U - np.float32(tb.u0)).astype(np.int32)
    np.clip(ub, 0, tb.var.shape[1] - 1, out=ub)
    ad = np.abs(dN)
    bal = ad < tb.edge[K, ub]
    if plan.stub_idx is not None:
        bal &= ~((K == plan.stub_idx) & (U > plan.tracks[plan.stub_idx].u_hi))
    if not bal.any():
        return
    lk = tb.looks
    Kb, ubb, adb = K[bal], ub[bal], ad[bal]
    g = grain[bal]
    col = lk["ballast"][Kb] * ((1 + tb.var[Kb, ubb]) * g)[:, None]
    wd = np.clip(tb.weed[Kb, ubb] * np.clip(g - 0.8, 0, 1) * 3, 0, 1)
    col += wd[:, None] * (WEED - col)
    if plan.season == "snow":
        col += lk["snow"][Kb, None] * (SNOW - col)
    Ub = U[bal]
    along = Ub * (1 - kap * N[bal]) if kap else Ub
    tie = (adb < 1.3) & (np.mod(along / lk["tie_sp"][Kb] + lk["tie_ph"][Kb], 1.0) < lk["tie_frac"][Kb])
    vis = lk["tie_vis"][Kb[tie]] * (0.5 if plan.season == "snow" else 1.0)
    col[tie] += vis[:, None] * (lk["tie"][Kb[tie]] - col[tie])
    oil = adb < 0.72
    col[oil] *= (1 - 0.55 * np.clip(tb.oil[Kb[oil], ubb[oil]], 0, 1))[:, None]
    cov = line_cov(adb - GAUGE_HALF, RAIL_W / 2, f)
    rm = cov > 0
    col[rm] += cov[rm, None] * (lk["rail"][Kb[rm]] - col[rm])
    sh = line_cov(adb - GAUGE_HALF - 0.06, 0.03, f)  # the rail's own thin shadow
    col *= (1 - 0.5 * sh)[:, None]
    blk[bal] = col


def wire_shadows(plan: Plan, tb: TrackTables, lit: Array, U: Array, N: Array, f: float) -> None:
    """Thin shadows of the contact and messenger wires on the ground."""
    sv = plan.light.sv
    phi = U * np.float32(plan.frame.kappa)
    se, su = float(sv @ plan.frame.ev), float(sv @ plan.frame.eu)
    per_m = (np.cos(phi) * se - np.sin(phi) * su) if plan.frame.kappa else np.float32(se)
    for h in plan.catenary["heights"]:
        Ns = N - per_m * np.float32(h)
        j = np.searchsorted(tb.mids, Ns)
        cov = line_cov(Ns - tb.offs[j], 0.02, f)
        np.minimum(lit, 1 - 0.8 * cov, out=lit)


def cast_shadows(plan: Plan, cv: Canvas, prisms: list, trees: list, poles: list, beams: list) -> None:
    """Block direct sunlight (``cv.lit``) behind every raised object."""
    sv = plan.light.sv
    for pr in prisms:
        z0 = pr.z0 if pr.shadow_z0 is None else max(pr.shadow_z0, pr.z0)
        if pr.z1 <= z0:
            continue
        foot = pr.foot()
        poly = hull(np.concatenate([foot + sv * z0, foot + sv * pr.z1]))
        win = cv.poly_window(poly)
        if win is None:
            continue
        m = cv.convex_mask(poly, win)
        r0, r1, c0, c1 = win
        cv.lit[r0:r1, c0:c1][m] = 0.0
    for x, y, r, hc, col, bare, ph in trees:
        tree_shadow(cv, plan, x, y, r, hc, bare)
    for x, y, h, w, lamp in poles:
        base = np.array([x, y])
        capsule(cv, cv.lit, base, base + sv * h, w / 2, value=0.0)
        if lamp:
            capsule(cv, cv.lit, base + sv * (h - 0.3) - 0.6 * plan.frame.eu, base + sv * (h - 0.3) + 0.6 * plan.frame.eu, 0.3, 0.0)
    for pa, pb, h, w in beams:
        capsule(cv, cv.lit, pa + sv * h, pb + sv * h, w, value=0.0)


def capsule(cv: Canvas, target: Array, p0: Array, p1: Array, hw: float, value=0.0, alpha: float = 1.0) -> None:
    """Paint a thick segment: min() into a 2-D map, or blend a colour into the image."""
    win = cv.window(min(p0[0], p1[0]) - hw - cv.f, max(p0[0], p1[0]) + hw + cv.f,
                    min(p0[1], p1[1]) - hw - cv.f, max(p0[1], p1[1]) + hw + cv.f)
    if win is None:
        return
    r0, r1, c0, c1 = win
    X, Y = cv.xs[c0:c1][None, :], cv.ys[r0:r1][:, None]
    d = p1 - p0
    L2 = max(float(d @ d), 1e-9)
    t = np.clip(((X - p0[0]) * d[0] + (Y - p0[1]) * d[1]) / L2, 0, 1)
    dist = np.hypot(X - p0[0] - t * d[0], Y - p0[1] - t * d[1])
    cov = (line_cov(dist, hw, cv.f) * alpha).astype(np.float32)
    sub = target[r0:r1, c0:c1]
    if target.ndim == 2:
        np.minimum(sub, 1 - cov * (1 - value), out=sub)
    else:
        sub += cov[..., None] * (np.asarray(value, np.float32) - sub)


def tree_shadow(cv: Canvas, plan: Plan, x: float, y: float, r: float, hc: float, bare: bool) -> None:
    sv = plan.light.sv
    base = np.array([x, y])
    capsule(cv, cv.lit, base, base + sv * (hc - r), 0.2, value=0.0)
    c = base + sv * hc
    major = r / plan.light.lz
    ext = major + 1
    win = cv.window(c[0] - ext, c[0] + ext, c[1] - ext, c[1] + ext)
    if win is None:
        return
    r0, r1, c0, c1 = win
    X, Y = cv.xs[c0:c1][None, :] - c[0], cv.ys[r0:r1][:, None] - c[1]
    s = -plan.light.s
    pa = X * s[0] + Y * s[1]
    pc = -X * s[1] + Y * s[0]
    m = (pa / major) ** 2 + (pc / r) ** 2 < 1
    sub = cv.lit[r0:r1, c0:c1]
    sub[m] = np.minimum(sub[m], 0.55 if bare else 0.08)


def apply_shadows(plan: Plan, cv: Canvas) -> None:
    """Darken (and tint blue) the ground where direct sunlight is blocked."""
    shade = plan.light.shade
    step = 128
    for r0 in range(0, cv.img.shape[0], step):
        L = cv.lit[r0:r0 + step]
        cols = np.flatnonzero((L < 1).any(axis=0))
        if cols.size == 0:
            continue
        c0, c1 = cols[0], cols[-1] + 1
        cv.img[r0:r0 + step, c0:c1] *= shade + (1 - shade) * L[:, c0:c1, None]


def paint_puddle(plan: Plan, cv: Canvas, puddle: tuple) -> None:
    u, n, ra, rb, sky = puddle
    p = plan.frame.to_xy(u, n)
    e = plan.frame.along(u)
    win = cv.window(p[0] - ra, p[0] + ra, p[1] - ra, p[1] + ra)
    if win is not None:
        r0, r1, c0, c1 = win
        X, Y = cv.xs[c0:c1][None, :] - p[0], cv.ys[r0:r1][:, None] - p[1]
        a, c = X * e[0] + Y * e[1], -X * e[1] + Y * e[0]
        q = (a / ra) ** 2 + (c / rb) ** 2 + 0.15 * np.sin(a * 2.1) * np.sin(c * 3.3)
        m = q < 1
        col = rgb((0.55, 0.60, 0.70)) if sky else rgb((0.12, 0.13, 0.15))
        cv.img[r0:r1, c0:c1][m] = col


def paint_pile(plan: Plan, cv: Canvas, pile: tuple) -> None:
    """A heap of bulk material: shaded mound and its shadow (slices projected to the ground)."""
    lt = plan.light
    x, y, ex, ey, ra, rb, h, col = pile
    win = cv.window(x - ra, x + ra, y - ra, y + ra)
    if win is not None:
        r0, r1, c0, c1 = win
        X, Y = cv.xs[c0:c1][None, :] - x, cv.ys[r0:r1][:, None] - y
        a, c = X * ex + Y * ey, -X * ey + Y * ex
        q = (a / ra) ** 2 + (c / rb) ** 2
        m = q < 1
        ga, gc = (-2 * h * a / ra ** 2)[m], (-2 * h * c / rb ** 2)[m]
        nx = -(ga * ex - gc * ey)
        ny = -(ga * ey + gc * ex)
        nrm = np.sqrt(nx * nx + ny * ny + 1)
        d = lt.lh * (nx * lt.s[0] + ny * lt.s[1]) / nrm + lt.lz / nrm
        sh = (lt.amb + (1 - lt.amb) * np.maximum(d, 0)) / lt.F
        sp = hash01(np.floor(a[m] / 0.3), np.floor(c[m] / 0.3), 3.0)
        cv.img[r0:r1, c0:c1][m] = col * (sh * (0.85 + 0.3 * sp))[:, None]
    for t in (0.25, 0.5, 0.75):
        sc = math.sqrt(1 - t)
        cx_, cy_ = x + lt.sv[0] * h * t, y + lt.sv[1] * h * t
        wn = cv.window(cx_ - ra, cx_ + ra, cy_ - ra, cy_ + ra)
        if wn is None:
            continue
        q0, q1, k0, k1 = wn
        X, Y = cv.xs[k0:k1][None, :], cv.ys[q0:q1][:, None]
        aa, cc = (X - cx_) * ex + (Y - cy_) * ey, -(X - cx_) * ey + (Y - cy_) * ex
        ms = (aa / (ra * sc)) ** 2 + (cc / (rb * sc)) ** 2 < 1
        a0, c0_ = (X - x) * ex + (Y - y) * ey, -(X - x) * ey + (Y - y) * ex
        ms &= (a0 / ra) ** 2 + (c0_ / rb) ** 2 >= 1  # not on the mound itself
        cv.lit[q0:q1, k0:k1][ms] = 0.0


def paint_sides(plan: Plan, cv: Canvas, pr: Prism, win: tuple, side: Array, D0: Array, D1: Array, lt: LocalLight) -> None:
    """The near sides of a leaning prism: lit by the sun or not, dark undercarriage below ``under``."""
    r0, r1, c0, c1 = win
    ex, ey, k = pr.ex, pr.ey, plan.view.k
    ii, jj = np.nonzero(side)
    X, Y = cv.xs[c0 + jj] - pr.cx - D0[0], cv.ys[r0 + ii] - pr.cy - D0[1]
    a, c = X * ex + Y * ey, -X * ey + Y * ex
    dd = D1 - D0
    Da, Dc = dd[0] * ex + dd[1] * ey, -dd[0] * ey + dd[1] * ex
    long_face = np.abs(c - Dc) > pr.hw
    sgc = -np.sign(Dc) if Dc else 1.0  # outward normal of the visible long face (across)
    sga = -np.sign(Da) if Da else 1.0
    ill = np.where(long_face, lt.illum(0.0, sgc, 0.0), lt.illum(sga, 0.0, 0.0))
    vals = pr.look.get("rgb", rgb((0.5, 0.5, 0.5)))[None, :] * (0.85 * ill)[:, None]
    if pr.under > pr.z0:
        dpc = abs(plan.view.d[0] * -ey + plan.view.d[1] * ex) * k
        dpa = abs(plan.view.d[0] * ex + plan.view.d[1] * ey) * k
        h_long = np.abs(c - sgc * pr.hw) / max(dpc, 1e-6)
        h_end = np.abs(a - sga * pr.hl) / max(dpa, 1e-6)
        z = pr.z0 + np.where(long_face, h_long, h_end)
        vals[z < pr.under] = rgb((0.10, 0.10, 0.10))
    cv.img[r0:r1, c0:c1][side] = vals


def draw_prism(plan: Plan, cv: Canvas, pr: Prism, casters: "Casters") -> None:
    """Draw a raised box: its near sides (when the view leans) and its painted roof, moved by
    the lean for its height and shaded where a taller caster's shadow reaches it."""
    view, light = plan.view, plan.light
    D1, D0 = view.disp(pr.z1), view.disp(pr.z0)
    foot = pr.foot()
    roof = foot + D1
    tall = np.hypot(*(D1 - D0)) > 0.02
    poly = hull(np.concatenate([foot + D0, roof])) if tall else roof
    win = cv.poly_window(poly)
    if win is None:
        return
    r0, r1, c0, c1 = win
    rm = cv.convex_mask(roof, win)
    sub = cv.img[r0:r1, c0:c1]
    lt = light.local(pr.ex, pr.ey)
    ex, ey = pr.ex, pr.ey
    if tall:
        side = cv.convex_mask(poly, win) & ~rm
        if side.any():
            paint_sides(plan, cv, pr, win, side, D0, D1, lt)
    if not rm.any():
        return
    ii, jj = np.nonzero(rm)
    X, Y = cv.xs[c0 + jj] - pr.cx - D1[0], cv.ys[r0 + ii] - pr.cy - D1[1]
    a, c = X * ex + Y * ey, -X * ey + Y * ex
    vals = PAINTERS[pr.kind](a, c, pr, lt)
    vals = weather(vals, a, c, pr.look)
    roof_shadows(plan, pr, vals, X + pr.cx, Y + pr.cy, casters)
    sub[rm] = vals


def roof_shadows(plan: Plan, pr: Prism, vals: Array, wx: Array, wy: Array, casters: "Casters") -> None:
    """Shade roof pixels (world positions wx, wy at height z1) lying in a taller caster's shadow."""
    if casters.n == 0:
        return
    sv = plan.light.sv
    reach = (casters.z1 - pr.z1) * float(np.hypot(*sv)) + casters.size + pr.hl + pr.hw
    near = (casters.z1 > pr.z1 + 0.2) & (np.hypot(casters.cx - pr.cx, casters.cy - pr.cy) < reach)
    x0, x1, y0, y1 = wx.min(), wx.max(), wy.min(), wy.max()
    for i in np.flatnonzero(near):
        b = casters.items[i]
        foot = b.foot()
        pts = np.concatenate([foot + sv * max(b.z0 - pr.z1, 0.0), foot + sv * (b.z1 - pr.z1)])
        if pts[:, 0].max() < x0 or pts[:, 0].min() > x1 or pts[:, 1].max() < y0 or pts[:, 1].min() > y1:
            continue
        m = points_in_convex(hull(pts), wx, wy)
        vals[m] *= plan.light.shade


@dataclass
class Casters:
    """Tall objects (sheds, stacked containers, canopies) that can shade lower roofs."""

    items: list

    def __post_init__(self) -> None:
        self.n = len(self.items)
        self.cx = np.array([b.cx for b in self.items])
        self.cy = np.array([b.cy for b in self.items])
        self.z1 = np.array([b.z1 for b in self.items])
        self.size = np.array([b.hl + b.hw for b in self.items])


def draw_tree(plan: Plan, cv: Canvas, tree: tuple) -> None:
    x, y, r, hc, col, bare, ph = tree
    c = np.array([x, y]) + plan.view.disp(hc)
    win = cv.window(c[0] - r * 1.2, c[0] + r * 1.2, c[1] - r * 1.2, c[1] + r * 1.2)
    if win is None:
        return
    r0, r1, c0, c1 = win
    X, Y = cv.xs[c0:c1][None, :] - c[0], cv.ys[r0:r1][:, None] - c[1]
    th = np.arctan2(Y, X)
    rr = r * (1 + 0.12 * np.sin(5 * th + ph) + 0.06 * np.sin(11 * th + 2 * ph))
    rho2 = (X * X + Y * Y) / (rr * rr)
    m = rho2 < 1
    if not m.any():
        return
    lt = plan.light
    nx, ny = (X / rr)[m], (Y / rr)[m]
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0, 1))
    d = lt.lh * (nx * lt.s[0] + ny * lt.s[1]) + lt.lz * nz
    sh = (lt.amb + (1 - lt.amb) * np.maximum(d, 0)) / lt.F
    leaf = hash01(np.floor(X[m] / 0.35) if X.shape == m.shape else np.floor(np.broadcast_to(X, m.shape)[m] / 0.35),
                  np.floor(np.broadcast_to(Y, m.shape)[m] / 0.35), ph)
    vals = col * (sh * (0.7 + 0.6 * leaf))[:, None]
    sub = cv.img[r0:r1, c0:c1]
    if bare:
        sub[m] = sub[m] * 0.5 + vals * 0.5
    else:
        sub[m] = vals


def draw_poles(plan: Plan, cv: Canvas, poles: list, beams: list) -> None:
    for x, y, h, w, lamp in poles:
        base = np.array([x, y])
        top = base + plan.view.disp(h)
        capsule(cv, cv.img, base, top, w / 2, value=(0.45, 0.45, 0.46))
        if lamp:
            e = plan.frame.eu
            capsule(cv, cv.img, top - 0.6 * e, top + 0.6 * e, 0.3, value=(0.75, 0.75, 0.72))
    for pa, pb, h, w in beams:
        D = plan.view.disp(h)
        capsule(cv, cv.img, pa + D, pb + D, w, value=(0.35, 0.35, 0.36))


def draw_wires(plan: Plan, cv: Canvas, tb: TrackTables) -> None:
    """The wires themselves, seen at their height (moved by the lean)."""
    lo, hi = min(plan.catenary["tracks"]) - 3, max(plan.catenary["tracks"]) + 3
    for h in plan.catenary["heights"]:
        D = plan.view.disp(h)
        for st in strip_ranges(cv, plan, lo, hi, shift=D):
            X = (cv.xs[st.c0:st.c1] - D[0]).astype(np.float32)[None, :]
            Y = (cv.ys[st.r0:st.r1] - D[1]).astype(np.float32)[:, None]
            _, N = plan.frame.to_un(X, Y)
            j = np.searchsorted(tb.mids, N)
            cov = line_cov(N - tb.offs[j], 0.015, cv.f)
            cv.img[st.r0:st.r1, st.c0:st.c1] *= (1 - 0.6 * cov)[..., None]


def y_range(pts: Array, pad: float) -> tuple[float, float]:
    pts = np.asarray(pts, float).reshape(-1, 2)
    return float(pts[:, 1].min() - pad), float(pts[:, 1].max() + pad)


@dataclass
class Items:
    """Everything drawn on the fine grid, each with the y range it may touch (shadow included)."""

    shadow_prisms: list
    draw_list: list        # ("prism" | "tree", object), sorted by top height
    ground: list           # ("puddle" | "pile", object)
    poles: list
    beams: list
    ranges: dict = field(default_factory=dict)  # id(obj) -> (ymin, ymax)
    _spans: dict = field(default_factory=dict)  # cached range arrays per list

    def pick(self, objs: list, ylo: float, yhi: float, tagged: bool = False) -> list:
        """The objects whose y range meets [ylo, yhi] (``tagged``: (tag, object) pairs)."""
        key = (id(objs), tagged)
        if key not in self._spans:
            self._spans[key] = np.array([self.ranges[id(o[1] if tagged else o)] for o in objs]).reshape(-1, 2)
        sp = self._spans[key]
        return [objs[i] for i in np.flatnonzero((sp[:, 1] >= ylo) & (sp[:, 0] <= yhi))]


def collect_items(plan: Plan) -> Items:
    sv, view = plan.light.sv, plan.view
    prisms = plan.prisms + [p for c in plan.cars for p in c.prisms]
    items = Items(prisms, [], [], plan.poles, plan.beams)
    for p in prisms:
        foot = p.foot()
        items.ranges[id(p)] = y_range(np.concatenate([foot, foot + sv * p.z1, foot + view.disp(p.z1)]), 1.0)
    for t in plan.trees:
        x, y, r, hc = t[:4]
        c = np.array([x, y])
        items.ranges[id(t)] = y_range([c, c + sv * hc, c + view.disp(hc)], r / plan.light.lz + 2 * r + 1)
    for pu in plan.puddles:
        p = plan.frame.to_xy(pu[0], pu[1])
        items.ranges[id(pu)] = y_range(p, pu[2] + 1)
    for pl in plan.piles:
        c = np.array(pl[:2])
        items.ranges[id(pl)] = y_range([c, c + sv * pl[6]], pl[4] + 1)
    for po in plan.poles:
        c = np.array(po[:2])
        items.ranges[id(po)] = y_range([c, c + sv * po[2], c + view.disp(po[2])], 2.0)
    for be in plan.beams:
        pa, pb, h = be[0], be[1], be[2]
        items.ranges[id(be)] = y_range([pa, pb, pa + sv * h, pb + sv * h, pa + view.disp(h), pb + view.disp(h)], 1.0)
    order = [(p.z1, 0, i) for i, p in enumerate(prisms) if p.draw] + [(t[3] + t[2], 1, i) for i, t in enumerate(plan.trees)]
    items.draw_list = [("prism", prisms[i]) if k == 0 else ("tree", plan.trees[i]) for _, k, i in sorted(order)]
    items.ground = [("puddle", pu) for pu in plan.puddles] + [("pile", pl) for pl in plan.piles]
    return items


def render(rng: np.random.Generator, plan: Plan, gr: Grid, co: Coarse) -> Array:
    """Render the scene band by band on the fine grid and average each band to the GSD."""
    g = ground_field(rng, plan, gr, co)
    xc = np.array([gr.xs[0], gr.xs[-1], gr.xs[0], gr.xs[-1]], np.float32)
    yc = np.array([gr.ys[0], gr.ys[0], gr.ys[-1], gr.ys[-1]], np.float32)
    uc, _ = plan.frame.to_un(xc, yc)
    tb = make_tables(rng, plan, float(uc.min()) - 50, float(uc.max()) + 50)
    lk = linear_look(rng, plan)
    items = collect_items(plan)
    casters = Casters([p for p in plan.prisms if p.big])
    band = max(1, 320 // gr.ss)  # output rows per band
    nfc = gr.xs.size
    img_buf = np.empty((band * gr.ss, nfc, 3), np.float32)
    lit_buf = np.empty((band * gr.ss, nfc), np.float32)
    out = np.empty((gr.rows, gr.cols, 3), np.float32)
    for o0 in range(0, gr.rows, band):
        o1 = min(gr.rows, o0 + band)
        n = (o1 - o0) * gr.ss
        R0 = o0 * gr.ss
        cv = Canvas(gr.f, R0, gr.xs, gr.ys[R0:R0 + n], img_buf[:n], lit_buf[:n])
        cv.lit.fill(1.0)
        ylo, yhi = float(cv.ys[-1]) - gr.f, float(cv.ys[0]) + gr.f
        render_band(plan, cv, gr, g, tb, lk, items, casters, ylo, yhi)
        out[o0:o1] = block_mean(cv.img, gr.ss)
    return out


def block_mean(img: Array, ss: int) -> Array:
    """Average ss x ss blocks of a (rows*ss, cols*ss, 3) array (sums of strided views: fast)."""
    n, w = img.shape[0] // ss, img.shape[1] // ss
    v = img.reshape(n, ss, w * ss, 3)
    rows = v[:, 0].copy()
    for k in range(1, ss):
        rows += v[:, k]
    r = rows.reshape(n, w, ss, 3)
    acc = r[:, :, 0].copy()
    for k in range(1, ss):
        acc += r[:, :, k]
    acc *= np.float32(1.0 / (ss * ss))
    return acc


def render_band(plan: Plan, cv: Canvas, gr: Grid, g: Array, tb: TrackTables, lk: LinearLook, items: Items,
                casters: "Casters", ylo: float, yhi: float) -> None:
    fill_ground(cv, gr, g)
    paint_linear(plan, cv, tb, lk)
    for kind, obj in items.pick(items.ground, ylo, yhi, tagged=True):
        (paint_puddle if kind == "puddle" else paint_pile)(plan, cv, obj)
    cast_shadows(plan, cv, items.pick(items.shadow_prisms, ylo, yhi), items.pick(plan.trees, ylo, yhi),
                 items.pick(items.poles, ylo, yhi), items.pick(items.beams, ylo, yhi))
    apply_shadows(plan, cv)
    for kind, obj in items.pick(items.draw_list, ylo, yhi, tagged=True):
        if kind == "prism":
            draw_prism(plan, cv, obj, casters)
        else:
            draw_tree(plan, cv, obj)
    draw_poles(plan, cv, items.pick(items.poles, ylo, yhi), items.pick(items.beams, ylo, yhi))
    if plan.catenary is not None:
        draw_wires(plan, cv, tb)


# --------------------------------------------------------------------------------------
# Atmosphere and sensor (output resolution)
# --------------------------------------------------------------------------------------

def yard_mask(plan: Plan, xo: Array, yo: Array) -> Array:
    X, Y = np.meshgrid(xo.astype(np.float32), yo.astype(np.float32))
    U, N = plan.frame.to_un(X, Y)
    offs = [t.n0 for t in plan.tracks]
    return (np.abs(U) < plan.Ly / 2) & (N > min(offs) - 3) & (N < max(offs) + 3)


def clouds(rng: np.random.Generator, plan: Plan, gr: Grid, co: Coarse, img: Array, opts: dict) -> tuple[Array, Array]:
    """Cloud shadows, haze, thin and thick cloud. Returns the (coarse) cloud opacity too."""
    xo, yo = out_centres(gr)
    shadow = haze = None
    if rng.random() < 0.2:  # shadows of clouds outside the frame (not flagged)
        f = co.fbm(rng, (80.0, 30.0, 10.0))
        shadow = np.clip((f - 0.8) / 0.5, 0, 1) * float(rng.uniform(0.35, 0.6))
        opts["cloud_shadow"] = True
    if rng.random() < 0.35:
        h = float(rng.uniform(0.08, 0.45))
        veil = rgb((0.62, 0.68, 0.80)) * float(rng.uniform(0.8, 1.1))
        haze = h * (1 + 0.25 * co.fbm(rng, (150.0,)))
        opts["haze"] = round(h, 2)
    thin = np.zeros(co.shape, np.float32)
    if rng.random() < 0.25:
        f = co.fbm(rng, (60.0, 20.0, 6.0))
        thin = np.clip((f + 0.3) / 1.5, 0, 1) * float(rng.uniform(0.15, 0.45))
        opts["thin_cloud"] = True
    thick = np.zeros(co.shape, np.float32)
    if rng.random() < 0.3:
        f = co.fbm(rng, (70.0, 25.0, 8.0))
        ym = yard_mask(plan, co.x0 + (np.arange(co.shape[1]) + 0.5) * co.cell, co.y1 - (np.arange(co.shape[0]) + 0.5) * co.cell)
        cover = float(rng.uniform(0.03, 0.6))
        thr = float(np.quantile(f[ym], 1 - cover)) if ym.any() else 1.0
        thick = np.clip(0.5 + (f - thr) / 0.35, 0, 1)
        opts["cloud"] = round(cover, 2)
    opac_c = 1 - (1 - thin) * (1 - thick)
    tex = co.fbm(rng, (30.0, 8.0)) if opac_c.any() else None
    step = 256
    for r0 in range(0, gr.rows, step):  # row chunks: small temporaries
        ys = yo[r0:r0 + step]
        v = img[r0:r0 + step]
        if shadow is not None:
            v *= (1 - co.on_grid(shadow, xo, ys))[..., None]
        if haze is not None:
            hv = co.on_grid(haze, xo, ys)[..., None]
            v *= 1 - hv
            v += hv * veil
        if tex is not None:
            op = co.on_grid(opac_c, xo, ys)[..., None]
            v *= 1 - op
            v += op * ((0.92 + 0.06 * co.on_grid(tex, xo, ys))[..., None] * rgb((0.97, 0.98, 1.0)))
    return img, opac_c


def airy_kernel(r0: float) -> Array:
    rad = int(math.ceil(2.5 * r0))
    sub = 5
    g = (np.arange(-rad * sub, (rad + 1) * sub) + 0.5 - sub / 2) / sub
    X, Y = np.meshgrid(g, g)
    x = 3.8317 * np.hypot(X, Y) / r0 + 1e-9
    k = (2 * j1(x) / x) ** 2
    n = 2 * rad + 1
    k = k.reshape(n, sub, n, sub).sum(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


@dataclass
class Optics:
    """The sensor's point spread function: a Gaussian (sigma, px) or an Airy pattern."""

    sigma: float = 0.0
    kernel: Array | None = None

    @property
    def halo(self) -> int:
        return int(4 * self.sigma + 1.5) if self.kernel is None else self.kernel.shape[0] // 2 + 1

    def apply(self, img: Array) -> Array:
        if self.kernel is None:
            return gaussian_filter(img, (self.sigma, self.sigma, 0), mode="nearest")
        p = self.kernel.shape[0] // 2
        out = np.empty_like(img)
        for b in range(img.shape[2]):
            out[..., b] = fftconvolve(np.pad(img[..., b], p, mode="edge"), self.kernel, mode="valid")
        return out


def draw_optics(rng: np.random.Generator, opts: dict) -> Optics:
    if rng.random() < 0.5:
        s = float(rng.uniform(0.35, 0.8))
        opts["psf"] = f"gauss{s:.2f}"
        return Optics(sigma=s)
    r0 = float(rng.uniform(1.0, 1.8))
    opts["psf"] = f"airy{r0:.2f}"
    return Optics(kernel=airy_kernel(r0))


def by_rows(H: int, halo: int, step: int = 256):
    """Row blocks [r0, r1) with their haloed read range [a, b)."""
    for r0 in range(0, H, step):
        r1 = min(H, r0 + step)
        yield r0, r1, max(0, r0 - halo), min(H, r1 + halo)


def jpeg_blocks(img: Array, quality: float) -> Array:
    """8x8 block DCT quantisation of each band (0..1 data), like a JPEG-compressed product."""
    q = np.array([
        [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    q = np.maximum(np.floor((q * scale + 50) / 100), 1)
    H, W = img.shape[:2]
    ph, pw = (-H) % 8, (-W) % 8
    out = np.empty_like(img)
    for b in range(img.shape[2]):
        x = np.pad(img[..., b] * 255 - 128, ((0, ph), (0, pw)), mode="edge")
        blocks = x.reshape(x.shape[0] // 8, 8, x.shape[1] // 8, 8).transpose(0, 2, 1, 3)
        d = sfft.dctn(blocks, axes=(2, 3), norm="ortho")
        d = np.round(d / q) * q
        y = sfft.idctn(d, axes=(2, 3), norm="ortho").transpose(0, 2, 1, 3).reshape(x.shape)
        out[..., b] = (y[:H, :W] + 128) / 255
    return out


def sensor(rng: np.random.Generator, plan: Plan, img: Array, opts: dict) -> Array:
    """PSF, optional panchromatic band, shot + read noise, optional unsharp mask and JPEG-like
    blocking, processed in row blocks (with halos) to keep temporaries small."""
    img *= rgb(1 + rng.normal(0, 0.05, 3))
    optics = draw_optics(rng, opts)
    pan = rng.random() < 0.3
    if pan:
        opts["pan"] = True
    read = float(rng.uniform(0.002, 0.008))
    shot = float(rng.uniform(0.0001, 0.0006))
    H, W = img.shape[:2]
    out = np.empty((H, W, 1 if pan else 3), np.float32)
    for r0, r1, a, b in by_rows(H, optics.halo):
        blk = optics.apply(img[a:b])[r0 - a:r1 - a]
        if pan:
            blk = (blk @ rgb((0.25, 0.45, 0.30)))[..., None]
        sd = np.maximum(blk, 0)
        sd *= shot
        sd += read ** 2
        np.sqrt(sd, out=sd)
        sd *= rng.standard_normal(blk.shape, dtype=np.float32)
        out[r0:r1] = blk + sd
    if rng.random() < 0.35:  # unsharp mask: halos like a pan-sharpened product
        amt, sig = float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.8, 2.0))
        sharp = np.empty_like(out)
        for r0, r1, a, b in by_rows(H, int(3 * sig + 1.5)):
            blur = gaussian_filter(out[a:b], (sig, sig, 0), mode="nearest", truncate=3.0)[r0 - a:r1 - a]
            sharp[r0:r1] = out[r0:r1] * (1 + amt) - amt * blur
        out = sharp
        opts["sharpen"] = round(amt, 2)
    if 0.5 <= plan.gsd <= 1.0 and rng.random() < 0.4:
        qual = float(rng.uniform(30, 80))
        out = jpeg_blocks(np.clip(out, 0, 1.2), qual)
        opts["jpeg"] = int(qual)
    return out


def quantise(rng: np.random.Generator, img: Array, valid: Array | None, opts: dict) -> Array:
    kind = int(rng.integers(0, 3))
    if kind == 0:
        hi = float(np.quantile(img[::4, ::4], 0.995)) or 1.0
        gain = 245.0 / max(hi, 0.2) * float(rng.uniform(0.85, 1.0))
        out = np.clip(np.round(img * gain), 1, 255).astype(np.uint8)
    elif kind == 1:
        g, off = float(rng.uniform(1100, 1900)), float(rng.uniform(30, 150))
        out = np.clip(np.round(off + img * g), 1, 2047).astype(np.uint16)
    else:
        out = np.clip(img * float(rng.uniform(0.7, 1.0)), 0, 1).astype(np.float32)
    if out.shape[2] == 1:
        out = out[..., 0]
    if valid is not None:
        out[~valid] = 0
    opts["dtype"] = out.dtype.name
    return out


def nodata_wedge(rng: np.random.Generator, rows: int, cols: int):
    """A straight tile edge cutting off one corner: returns a function (row, col) -> valid."""
    corner = int(rng.integers(0, 4))
    fa, fb = float(rng.uniform(0.15, 0.5)), float(rng.uniform(0.15, 0.5))

    def ok(r, c):
        rr = r / rows if corner in (0, 1) else 1 - r / rows
        cc = c / cols if corner in (0, 2) else 1 - c / cols
        return rr / fa + cc / fb >= 1.0

    return ok


# --------------------------------------------------------------------------------------
# Truth and the track lines handed to the counter
# --------------------------------------------------------------------------------------

def car_truth(plan: Plan, car: Car, transform: tuple, shape: tuple, co: Coarse, opac_c: Array, valid_fn) -> dict:
    foot = rect_poly(car.cx, car.cy, car.ex, car.ey, car.L / 2, car.W / 2)
    ring = np.vstack([foot, foot[:1]]) + plan.centre
    ga, gc = np.meshgrid(np.linspace(-0.45, 0.45, 11) * car.L, np.linspace(-0.4, 0.4, 3) * car.W)
    x = car.cx + ga * car.ex - gc * car.ey
    y = car.cy + ga * car.ey + gc * car.ex
    gsd, x0, y1 = transform[0], transform[2], transform[5]
    col = (x + plan.centre[0] - x0) / gsd
    row = (y1 - y - plan.centre[1]) / gsd
    clear = (col >= 0) & (col < shape[1]) & (row >= 0) & (row < shape[0])
    clear &= co.at(opac_c, x, y) <= 0.5
    if valid_fn is not None:
        clear &= valid_fn(row, col)
    return {"polygon_map": ring, "type": car.kind, "track": car.track, "visible": bool(clear.mean() >= 0.5)}


def given_tracks(rng: np.random.Generator, plan: Plan) -> tuple[list, tuple]:
    """The track lines handed to the counter: the true centre lines (a turnout siding from its
    switch, a stub to 2 m past its buffer stop) run 20-40 m past the yard ends, then rotated by
    up to 1 deg about the yard centre and shifted by up to 5 m (a fifth of scenes: near zero)."""
    shift = rng.uniform(-5, 5, 2) * (0.1 if rng.random() < 0.2 else 1.0)
    rot = math.radians(float(rng.uniform(-1, 1)) * (0.1 if rng.random() < 0.2 else 1.0))
    R = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    out = []
    for t in plan.tracks:
        ua = -plan.Ly / 2 - float(rng.uniform(20, 40))
        ub = plan.Ly / 2 + float(rng.uniform(20, 40))
        if t.siding is not None:
            ua = t.siding[0]
        ub = min(ub, t.u_hi + 2.0)
        bendy = plan.frame.kappa != 0.0 or t.siding is not None
        step = 5.0 if bendy else float(rng.choice([ub - ua, 25.0]))
        line = track_polyline(plan, t, ua, ub, step)
        out.append(line @ R.T + shift + plan.centre)
    return out, (float(shift[0]), float(shift[1]), math.degrees(rot))


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

def scene(rng: np.random.Generator, gsd: float, seed: int) -> dict:
    """Render one held-out-style scene at ``gsd`` metres (see the module docstring)."""
    plan = plan_scene(rng, gsd)
    gr = make_grid(plan, gsd)
    transform = gr.transform
    co = make_coarse(gr, max(4.0, gsd))
    img = render(rng, plan, gr, co)
    opts = dict(plan.opts)
    img, opac_c = clouds(rng, plan, gr, co, img, opts)
    img = sensor(rng, plan, img, opts)
    rows, cols = img.shape[:2]
    valid = valid_fn = None
    if rng.random() < 0.2:
        valid_fn = nodata_wedge(rng, rows, cols)
        valid = valid_fn((np.arange(rows) + 0.5)[:, None], (np.arange(cols) + 0.5)[None, :])
        opts["nodata"] = True
    cloud = None
    if opac_c.max() > 0.5:
        xo, yo = out_centres(gr)
        cloud = co.on_grid(opac_c, xo, yo) > 0.5
    image = quantise(rng, img, valid, opts)
    truth = [car_truth(plan, c, transform, (rows, cols), co, opac_c, valid_fn) for c in plan.cars]
    tracks, (dx, dy, rot) = given_tracks(rng, plan)
    flags = " ".join(k for k in ("curve", "siding", "stub", "wide", "pan", "cloud_shadow", "thin_cloud", "nodata")
                     if opts.get(k))
    extra = " ".join(f"{k}={opts[k]}" for k in ("haze", "cloud", "sharpen", "jpeg") if k in opts)
    desc = (f"third seed={seed} gsd={gsd} tracks={len(plan.tracks)} cars={len(truth)} "
            f"vis={sum(t['visible'] for t in truth)} {plan.season} sun={plan.light.az:.0f}/{plan.light.el:.0f} "
            f"lean={opts['lean']:.0f} {opts['dtype']} {opts['psf']} {flags} {extra} "
            f"mis=({dx:.1f},{dy:.1f}) rot={rot:.2f}").replace("  ", " ").strip()
    return dict(image=image, transform=transform, tracks=tracks, names=[t.name for t in plan.tracks], valid=valid,
                cloud=cloud, excludes=[], truth=truth, desc=desc)


if __name__ == "__main__":
    import sys
    import time

    s = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    g = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    t0 = time.perf_counter()
    sc = scene(np.random.default_rng(s), g, s)
    print(sc["desc"], sc["image"].shape, sc["image"].dtype, f"{time.perf_counter() - t0:.2f}s")
