"""Car-type guesses of the image core: physical cues on tiny ribbons, and whole scenes.

The ribbon tests build a car's across/along-track luminance array by hand (no renderer),
so each cue (specular line, open top, hatch line, container blocks, long uniform body) is
checked on its own. The scene tests use the independent test renderer
(tests/scenes_synthetic.py) at fine GSD and match detections to the exact truth.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo_evidence.core import _classify, count_railcars

import scenes_synthetic as S

STEP = 0.15  # along-track sample step (m) of the tiny ribbons
OFFSETS = np.arange(-2.75, 2.75 + 0.075, 0.15)  # across-track offsets at 0.3 m GSD
SIGMA = 0.02  # the yard's noise in feature units


def ribbon(length_m, profile, *, along=None, rng, shadow=True):
    """A car's luminance ribbon (samples, offsets, 1): ``profile(v)`` across the body
    (|v| <= 1.6 m), ballast at 0 outside, the car's own shadow on the +v side, optional
    ``along(u)`` added along the car, and the yard's noise."""
    u = np.arange(0, length_m, STEP)
    v = OFFSETS
    body = np.abs(v) <= 1.6
    L = np.zeros((len(u), len(v)))
    L[:, body] = profile(v[body])[None, :]
    if along is not None:
        L[:, body] += along(u)[:, None]
    if shadow:
        L[:, v > 1.6] = -0.35
    L += rng.normal(0, SIGMA, L.shape)
    return L[..., None]


def guess(F, *, gsd=0.3):
    sums = _classify.track_feature_sums(F, OFFSETS)
    feats = _classify.car_features(sums, 0, len(F), np.zeros(1), SIGMA)
    return _classify.classify(len(F) * STEP, feats, gsd=gsd)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lit_barrel_with_a_specular_line_is_a_tank(seed):
    rng = np.random.default_rng(seed)

    def barrel(v):
        t = np.clip(v / 1.5, -1, 1)
        lam = np.clip(-0.6 * t + 0.8 * np.sqrt(1 - t**2), 0, 1)  # sun on the -v side
        return -0.3 + 0.35 * lam + 0.4 * np.exp(-(((t + 0.35) / 0.13) ** 2))

    assert guess(ribbon(12.5, barrel, rng=rng)) == "tank"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_long_pitched_roof_with_a_faint_ridge_is_a_box_car_not_a_tank(seed):
    # A 16.5 m roof lit on its sun side, with a faint ridge cap: the line is under 4 noise
    # units and the car is longer than tank cars usually are (box cars read as tanks were
    # the largest type confusion of the specular cue on the tuning scenes).
    rng = np.random.default_rng(seed)
    roof = lambda v: 0.1 + 0.03 * np.where(v < 0, 1.0, -1.0) + 0.03 * np.exp(-((v / 0.2) ** 2))  # noqa: E731
    assert guess(ribbon(16.5, roof, rng=rng)) == "box"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dark_load_inside_bright_walls_is_an_open_top(seed):
    rng = np.random.default_rng(seed)
    walls = lambda v: np.where(np.abs(v) > 1.25, 0.05, -0.45)  # noqa: E731
    assert guess(ribbon(14.0, walls, rng=rng)) == "gondola"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_dark_hatch_line_between_lit_slopes_is_a_hopper(seed):
    rng = np.random.default_rng(seed)
    hatch = lambda v: np.where(np.abs(v) < 0.35, 0.0, 0.2)  # noqa: E731
    assert guess(ribbon(15.0, hatch, rng=rng)) == "hopper"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_containers_of_different_tone_on_a_long_deck_are_a_flat(seed):
    rng = np.random.default_rng(seed)
    flat_top = lambda v: np.where(np.abs(v) < 1.22, 0.0, -0.3)  # noqa: E731
    # Deck ends, one light and one dark container, 20 m in all.
    blocks = lambda u: np.select([u < 3.5, u < 10.0, u < 16.5], [-0.3, 0.3, -0.2], -0.3)  # noqa: E731
    assert guess(ribbon(20.5, flat_top, along=blocks, rng=rng)) == "flat"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_container_on_a_dark_deck_beside_its_long_shadow_is_a_flat(seed):
    # A 13.4 m flat under a low sun, as the simulator's yards show it: the deck's dark
    # margin on the sun side, a 1.9 m band of container top, then the container's long
    # shadow across the rest of the deck and the ballast. The shadow pulls the car's
    # estimated centre towards it, so the car reads as "darker on the sun side", the cue
    # of an open top shading its own load; but its brightest part is its middle, with dark
    # edges, where an open top's walls are its brightest part.
    rng = np.random.default_rng(seed)
    v = OFFSETS
    profile = np.select([v < -1.6, v < -1.1, v < 0.8, v < 2.4], [0.0, -0.15, 0.03, -0.40], 0.0)
    u = np.arange(0, 13.4, STEP)
    F = (np.tile(profile, (len(u), 1)) + rng.normal(0, SIGMA, (len(u), len(v))))[..., None]
    assert guess(F) == "flat"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_blocks_of_load_flush_with_the_deck_are_a_flat_a_gradual_load_an_open_top(seed):
    # Two stacks of load of different tone filling a 13.4 m car from side to side (no dark
    # deck margin to see): a clear step between them, a fifth of the car's contrast or
    # more, says blocks on a deck. A bulk load that darkens gradually along the car, with
    # the same fine texture, stays an open top.
    rng = np.random.default_rng(seed)
    top = lambda v: np.full(v.shape, -0.25)  # noqa: E731
    blocks = lambda u: np.where(u < 6.9, 0.0, 0.08) + 0.03 * np.sin(u * 2.1)  # noqa: E731
    ramp = lambda u: 0.08 * u / 13.4 + 0.03 * np.sin(u * 2.1)  # noqa: E731
    assert guess(ribbon(13.4, top, along=blocks, rng=rng)) == "flat"
    assert guess(ribbon(13.4, top, along=ramp, rng=rng)) == "gondola"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_long_uniform_tall_body_is_a_locomotive_not_a_freight_car(seed):
    rng = np.random.default_rng(seed)
    hood = lambda v: np.full(v.shape, -0.3)  # noqa: E731
    assert guess(ribbon(20.5, hood, rng=rng)) == "locomotive"


def test_no_type_is_guessed_at_coarse_gsd():
    rng = np.random.default_rng(0)
    hood = lambda v: np.full(v.shape, -0.3)  # noqa: E731
    assert guess(ribbon(16.0, hood, rng=rng), gsd=3.0) == "unknown"


def test_features_without_the_raw_ribbon_still_give_a_type():
    # Older callers pass only the cumulative sums: the tone cues and length still decide.
    rng = np.random.default_rng(3)
    F = ribbon(16.0, lambda v: np.full(v.shape, -0.3), rng=rng)
    sums = _classify.track_feature_sums(F, OFFSETS)
    sums = {"cum": sums["cum"]}
    feats = _classify.car_features(sums, 0, len(F), np.zeros(1), SIGMA)
    # A 16 m car gets a freight type from its length and tone; an 8 m piece, no type.
    assert _classify.classify(16.0, feats, gsd=0.5) in set(_classify.CAR_TYPES) - {"unknown", "locomotive"}
    assert _classify.classify(8.0, feats, gsd=0.5) == "unknown"


def _typed_matches(sc, res):
    polys = shapely.polygons([shapely.linearrings(t["polygon_map"]) for t in sc.truth])
    used, pairs = set(), []
    for d in res.detections:
        c = np.asarray(d.polygon_map)[:-1].mean(axis=0)
        hit = [h for h in np.flatnonzero(shapely.contains_xy(polys, c[0], c[1])) if h not in used]
        if hit:
            used.add(hit[0])
            pairs.append((sc.truth[hit[0]]["type"], d.car_type))
    return pairs


@pytest.mark.parametrize("gsd", [0.3, 0.5])
def test_test_renderer_cars_of_every_type_are_mostly_typed_right(gsd):
    freight = ["box", "tank", "gondola", "flat", "hopper"]
    pairs = []
    for seed in (11, 12):
        rng = np.random.default_rng(seed)
        cars = []
        for t in range(4):
            kinds = [str(k) for k in rng.permutation(freight)] + [str(rng.choice(freight))]
            cars += S.cut(t, 15.0 + 10.0 * t, (["locomotive"] if t % 2 == 0 else []) + kinds)
        sc = S.render(n_tracks=4, length_m=200, gsd_m=gsd, cars=cars, seed=seed)
        res = count_railcars(sc.image, transform=sc.transform, tracks=sc.tracks)
        pairs += _typed_matches(sc, res)
    assert len(pairs) >= 40
    right = [t == g for t, g in pairs]
    assert np.mean(right) >= 0.8, pairs
    for t in freight + ["locomotive"]:
        mine = [g for tt, g in pairs if tt == t]
        assert np.mean([g == t for g in mine]) >= 0.5, (t, mine)
    # A locomotive is never taken for a freight car.
    assert all(g in ("locomotive", "unknown") for t, g in pairs if t == "locomotive"), pairs
