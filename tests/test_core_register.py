"""Registration of the track lines on small hand-drawn yards (exact truth, no simulator).

Each scene is drawn here from its description: tracks along x, a faint ballast bed under
each, optional railcars (3.1 m wide bodies), an optional concrete platform, noise. The AOI's
lines are the true track axes moved by a known misregistration, which ``register`` must undo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geo_evidence.core._register import register
from geo_evidence.core._ribbon import band_views

GSD = 0.5
LENGTH = 200.0


def _strip(v: np.ndarray, half: float) -> np.ndarray:
    """Coverage of a strip |v| <= half with a half-metre soft edge (optics blur)."""
    return np.clip((half - np.abs(v)) / 0.5 + 0.5, 0.0, 1.0)


def draw_yard(tracks_y, *, cars=(), platform_y=None, shift=(0.0, 0.0), rot_deg=0.0, seed=0, bed=25.0):
    """Image, transform and misregistered lines of a straight yard.

    ``cars``: (track index, x from, x to, brightness); ``bed``: how much brighter an empty
    track's ballast bed is than the ground (the platform is 100 brighter). The true tracks
    are the mapped lines rotated by ``rot_deg`` about the yard centre and then moved by
    ``shift``; so the registration that puts the lines back on the tracks is exactly
    (shift, rot_deg).
    """
    rng = np.random.default_rng(seed)
    ys = np.asarray(tracks_y, float)
    y0, y1 = ys.min() - 22.0, ys.max() + 22.0
    x0, x1 = -LENGTH / 2 - 20.0, LENGTH / 2 + 20.0
    w, h = int((x1 - x0) / GSD), int((y1 - y0) / GSD)
    transform = (GSD, 0.0, x0, 0.0, -GSD, y1)
    xx = x0 + (np.arange(w) + 0.5) * GSD
    yy = y1 - (np.arange(h) + 0.5) * GSD
    X, Y = np.meshgrid(xx, yy)
    centre = np.array([0.0, ys.mean()])
    # Track-local coordinates of every pixel: undo the shift, then the rotation.
    th = np.deg2rad(rot_deg)
    px, py = X - shift[0] - centre[0], Y - shift[1] - centre[1]
    u = np.cos(th) * px + np.sin(th) * py + centre[0]
    v = -np.sin(th) * px + np.cos(th) * py + centre[1]
    img = np.full((h, w), 105.0)
    img += 4.0 * np.sin(X / 9.0) * np.cos(Y / 7.0)  # uneven ground
    on_yard = np.abs(u) <= LENGTH / 2
    for ty in ys:
        # An empty track: a ballast bed brighter than the ground, 2.8 m wide.
        img += bed * _strip(v - ty, 1.4) * on_yard
    for t, a, b, value in cars:
        body = _strip(v - ys[t], 1.55) * ((u >= a) & (u <= b))
        img = img * (1 - body) + value * body
    if platform_y is not None:
        # Flat concrete, 4 m wide, brighter than anything in the yard, 160 m long.
        plat = _strip(v - platform_y, 2.0) * (np.abs(u) <= 80.0)
        img = img * (1 - plat) + 205.0 * plat
    img += rng.normal(0.0, 2.5, img.shape)
    rgb = np.clip(np.stack([img * 1.02, img, img * 0.96], axis=-1), 0, 255).astype(np.uint8)
    s = np.linspace(-LENGTH / 2, LENGTH / 2, 11)
    lines = [np.column_stack([s, np.full_like(s, ty)]) for ty in ys]
    return rgb, transform, lines


def run(img, transform, lines, **kw):
    return register(band_views(img), transform, lines, gsd=GSD, search_m=7.0, max_rotation_deg=1.5,
                    per_track_m=0.75, body_weight=0.5, **kw)


def lateral(reg, y_track: float) -> float:
    """Where the registration moves a mapped line at y (mid-yard), across the tracks."""
    xy = np.array([[0.0, y_track]])
    rel = xy - reg.centre
    return float(reg.shift[1] + rel[0, 0] * reg.theta)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_empty_yard_beside_a_bright_platform_is_not_moved_onto_the_platform(seed):
    # Three EMPTY tracks 5 m apart and a flat 4 m platform 4.6 m beyond the outer one: the
    # platform's sharp, strong edges look more like a car body than a faint empty bed does,
    # but it is one feature against a track's; the lines are already right.
    img, tf, lines = draw_yard([0.0, 5.0, 10.0], platform_y=-4.6, seed=seed)
    reg = run(img, tf, lines)
    assert abs(lateral(reg, 5.0)) < 0.6


def test_a_yard_with_cars_beside_a_platform_stays_put():
    cars = [(1, -60.0, -45.0, 60.0), (1, -44.0, -29.0, 170.0), (2, 20.0, 35.0, 50.0)]
    img, tf, lines = draw_yard([0.0, 5.0, 10.0], cars=cars, platform_y=-4.6, seed=4)
    reg = run(img, tf, lines)
    assert abs(lateral(reg, 5.0)) < 0.6


@pytest.mark.xfail(strict=True, reason="known gap: when an empty track's bed is only ~1/10 of the platform's "
                   "contrast, its edge-pair evidence falls below the vote's saturation while the platform's does not, "
                   "and the map still slips one spacing; telling them apart needs a width or texture term that dark "
                   "cars with their shadows (as wide and flat as a platform) do not trip")
def test_a_very_faint_empty_yard_beside_a_platform_is_not_moved_onto_it():
    img, tf, lines = draw_yard([0.0, 5.0, 10.0], platform_y=-4.6, seed=1, bed=9.0)
    reg = run(img, tf, lines)
    assert abs(lateral(reg, 5.0)) < 0.6


@pytest.mark.parametrize("dy", [-4.0, 4.0, 5.0])
def test_a_true_shift_of_about_one_track_spacing_is_found_even_beside_a_platform(dy):
    # A real misregistration as large as the track spacing, towards or away from the
    # platform, must not be pinned to the mapped position or to the platform.
    cars = [(0, -70.0, -55.0, 60.0), (2, 10.0, 25.0, 165.0)]
    img, tf, lines = draw_yard([0.0, 5.0, 10.0, 15.0], cars=cars, platform_y=-4.6, shift=(0.0, dy), seed=5)
    reg = run(img, tf, lines)
    assert abs(lateral(reg, 7.5) - dy) < 0.6


def test_shift_and_rotation_are_recovered_together():
    cars = [(0, -80.0, -65.0, 55.0), (0, -64.0, -49.0, 160.0), (3, 40.0, 55.0, 60.0), (3, 60.0, 75.0, 175.0)]
    img, tf, lines = draw_yard([0.0, 5.2, 10.4, 15.6], cars=cars, shift=(1.5, -2.5), rot_deg=0.6, seed=6)
    reg = run(img, tf, lines)
    assert abs(np.rad2deg(reg.theta) - 0.6) < 0.2
    # Both ends of the yard land on their tracks (the rotation moves them +-1 m).
    for x in (-90.0, 90.0):
        th = np.deg2rad(0.6)
        true_y = 7.8 + np.sin(th) * x - 2.5  # the centre line of the yard, rotated and shifted
        rel = np.array([x, 7.8]) - reg.centre
        got = 7.8 + reg.shift[1] + rel[0] * reg.theta
        assert abs(got - true_y) < 0.5


def test_nothing_usable_in_the_image_means_no_registration():
    # Every ribbon sample masked (cloud, nodata): no shift may be invented.
    img, tf, lines = draw_yard([0.0, 5.0, 10.0], platform_y=-4.6, seed=7)
    reg = run(img, tf, lines, valid_fn=lambda xy: np.zeros(xy.shape[:-1], bool))
    assert np.all(reg.shift == 0.0) and reg.theta == 0.0 and np.all(reg.per_track == 0.0)


def _packed_shadowed_yard(shift_x: float, shadow=(2.5, -2.0)):
    """Four tracks 5 m apart, each packed with ten dark tanks and gondolas that cast shadows
    across the 1.8 m gaps (test renderer), the mapped lines moved ``shift_x`` across them."""
    import scenes_synthetic as S

    cars = []
    for t in range(4):
        cars += S.cut(t, 10 + 3 * t, ["tank", "gondola", "tank", "tank", "gondola", "tank", "tank", "gondola", "tank",
                                      "tank"])
    return S.render(n_tracks=4, length_m=200, cars=cars, shadow=shadow, seed=31, shift_m=(shift_x, 0.0))


def _worst_residual(reg, sc) -> float:
    """Largest across-track distance (m) between a registered line and its true track, at
    both ends and the middle of every track (the tracks run north, so across is x)."""
    from geo_evidence.core._geometry import resample_line

    worst = 0.0
    for t, (given, true) in enumerate(zip(sc.tracks, sc.true_tracks)):
        _, xy, nrm = resample_line(given, 10.0)
        ends = [0, len(xy) // 2, len(xy) - 1]
        moved = reg.apply(xy[ends], nrm[ends], t)
        worst = max(worst, float(np.max(np.abs(moved[:, 0] - true[0, 0]))))
    return worst


_PACKED_GAP = ("known gap: in a packed yard whose dark cars cast shadows as dark as themselves across the 1.8 m gaps, "
               "a shadow-filled gap is a dark band between two car edges, which the edge-pair and body terms score "
               "as high as a car; the map slips about half a spacing (every ribbon on a gap, no car found). A centre-"
               "line symmetry term and a scene-relative vote floor fixed these but broke other shadow and platform "
               "tests")


@pytest.mark.xfail(strict=True, reason=_PACKED_GAP)
@pytest.mark.parametrize("shift_x, shadow", [(0.0, (2.5, -2.0)), (3.0, (2.5, -2.0)), (-3.0, (2.5, -2.0)),
                                             (0.0, (1.5, 0.5))])
def test_a_packed_yard_whose_shadows_fill_the_gaps_is_not_registered_half_a_spacing_off(shift_x, shadow):
    sc = _packed_shadowed_yard(shift_x, shadow)
    reg = register(band_views(sc.image), sc.transform, sc.tracks, gsd=0.5, search_m=7.0, max_rotation_deg=1.5,
                   per_track_m=0.75, body_weight=0.5)
    assert _worst_residual(reg, sc) < 0.6


def test_a_packed_yard_without_shadows_is_registered():
    # The same yard in flat light: the cars' own edges decide, and the lines stay put.
    sc = _packed_shadowed_yard(3.0, shadow=None)
    reg = register(band_views(sc.image), sc.transform, sc.tracks, gsd=0.5, search_m=7.0, max_rotation_deg=1.5,
                   per_track_m=0.75, body_weight=0.5)
    assert _worst_residual(reg, sc) < 0.6


@pytest.mark.xfail(strict=True, reason=_PACKED_GAP)
def test_the_cars_of_a_packed_shadowed_yard_are_found():
    import scenes_synthetic as S

    from geo_evidence.core import count_railcars

    sc = _packed_shadowed_yard(0.0)
    res = count_railcars(sc.image, transform=sc.transform, tracks=sc.tracks, valid=sc.valid, cloud=sc.cloud)
    assert S.match(res.detections, sc.truth)["tp"] >= 36  # of 40 cars


def _assert_lines_land_on_their_tracks(sc, *, gsd: float) -> None:
    """Register a test-renderer scene with the core's parameters; every line must land
    within 0.6 m of its true track (median along the line)."""
    import shapely

    from geo_evidence.core._geometry import resample_line

    lines = [np.asarray(line, float) for line in sc.tracks]
    reg = register(band_views(sc.image), sc.transform, lines, gsd=gsd, search_m=7.0, max_rotation_deg=1.5,
                   per_track_m=0.75, body_weight=0.5)
    for t, (line, true) in enumerate(zip(lines, sc.true_tracks)):
        _, xy, nrm = resample_line(line, 5.0)
        off = shapely.distance(shapely.LineString(np.asarray(true)), shapely.points(reg.apply(xy, nrm, t)))
        assert float(np.median(off)) < 0.6, f"track {t} lies {np.median(off):.1f} m off its track"


@pytest.mark.parametrize("seed", [1, 4, 7, 10])
def test_an_empty_yard_with_its_rails_resolved_is_registered_onto_the_beds(seed):
    # At 0.3 m the two rails of an empty track are thin dark lines inside its ballast bed.
    # They must not make the bed's own edge (bed on one side, bare ground on the other)
    # look more like a track than the bed: the lines have to land on the beds.
    import scenes_synthetic as S

    sc = S.render(n_tracks=2 + seed % 4, length_m=300.0, spacing_m=5.0 + 0.1 * (seed % 6), bearing_deg=17.0 + 29 * seed,
                  gsd_m=0.3, cars=[], noise=1.0 + seed % 4, blur_px=0.5,
                  shift_m=(2.5 * np.cos(seed), 2.5 * np.sin(seed)), rotation_deg=0.5 * np.sin(3 * seed), seed=seed)
    _assert_lines_land_on_their_tracks(sc, gsd=0.3)


@pytest.mark.parametrize("seed", [1, 3, 4, 5])
def test_a_panchromatic_yard_at_half_a_metre_is_registered_onto_its_tracks(seed):
    # In a single band at 0.5 m the rails of each track are still resolved, and without
    # colour to show the bed the lines were pulled ~3 m sideways into the gaps between the
    # beds (these four yards all slipped, every car lost).
    import scenes_synthetic as S

    rng = np.random.default_rng(900 + seed)
    cars = []
    for t in range(4):
        s = float(rng.uniform(0, 30))
        while s < 260 and rng.random() < 0.85:
            kinds = [str(rng.choice(["box", "tank", "gondola", "hopper", "flat"])) for _ in range(int(rng.integers(1, 9)))]
            cut = [c for c in S.cut(t, s, kinds) if c["s0"] + S.CAR_LOOK[c["type"]][0] < 300]
            if not cut:
                break
            cars += cut
            s = cut[-1]["s0"] + S.CAR_LOOK[cut[-1]["type"]][0] + float(rng.uniform(8, 60))
    sc = S.render(n_tracks=4, length_m=300, spacing_m=5.0, bearing_deg=float(rng.uniform(0, 360)), gsd_m=0.5, cars=cars,
                  pan=True, noise=3.2, blur_px=0.42, shift_m=tuple(float(v) for v in rng.uniform(-4, 4, 2)),
                  rotation_deg=float(rng.uniform(-0.7, 0.7)), seed=950 + seed)
    assert sc.image.ndim == 2
    _assert_lines_land_on_their_tracks(sc, gsd=0.5)


def _register_yard_7001016(gsd: float, tol_m: float) -> None:
    """Tuning scene 7001016 of the accuracy benchmark (a synthetic yard with a platform,
    low sun, long shadows) rendered at ``gsd``, registered with the core's parameters;
    every line must land within ``tol_m`` of its true track."""
    import shapely
    from shapely import affinity

    from geo_evidence.aoi import load_aoi
    from geo_evidence.core._geometry import resample_line
    from geo_evidence.simulate import simulate_scene

    aoi = load_aoi(Path(__file__).parent / "data" / "yard_7001016.geojson")
    mis, rot = (-0.4956, -1.0833), -0.489
    sc = simulate_scene(aoi, when="2023-05-15T02:10:00Z", gsd_m=gsd, n_cars=40, season="summer", sun_azimuth=152.39,
                        sun_elevation=16.86, haze=0.4, misregistration_m=mis, misregistration_deg=rot, blur=0.87,
                        noise=1.55, margin_m=40.0, seed=7001016)

    lines = [np.asarray(t.line.coords) for t in aoi.tracks]
    reg = register(band_views(sc.image), tuple(sc.transform)[:6], lines, gsd=gsd, search_m=7.0, max_rotation_deg=1.5,
                   per_track_m=0.75, body_weight=0.5)
    for t, tr in enumerate(aoi.tracks):
        true = affinity.translate(affinity.rotate(tr.line, rot, origin=aoi.yard.centroid), *mis)
        _, xy, nrm = resample_line(np.asarray(tr.line.coords), 5.0)
        off = float(np.median(shapely.distance(true, shapely.points(reg.apply(xy, nrm, t)))))
        assert off < tol_m, f"track {t} lies {off:.1f} m off"


def test_between_two_lattice_positions_the_smaller_shift_wins():
    # The yard of tuning scene 7001016 at 1 m: tracks repeat every ~5 m and their empty
    # beds barely stand out at 1 m, so the map one spacing off scored 4 % more than the
    # true 1.2 m shift. Between such distinct hypotheses a prior for small shifts
    # decides; the lines must land on the tracks.
    _register_yard_7001016(1.0, tol_m=1.0)


def test_the_true_placement_is_compared_even_when_the_best_coarse_cells_all_agree():
    # The same yard at 0.5 m: the low sun's long shadows of the cars and a bright platform
    # beside the yard make the placement one spacing over (one line on the platform, one
    # track of cars left without a line) score about as high as the true one, and the
    # five best coarse cells were all that slipped placement (shifted along the tracks
    # or rotated a step), so the true placement was never refined: every line 4.8 m off.
    _register_yard_7001016(0.5, tol_m=0.6)
