"""The coarse-GSD path of the image core (3 m ``length``, 10 m ``occupancy``).

Scenes come from the independent test renderer (tests/scenes_synthetic.py) and, for one
check, the project simulator at 3 m. Truth is the number of visible cars. One test is a
strict xfail: it states the 3 m target (count within 20 %) that the current estimator does
not meet, so it flips to a failure the day it does and the marker must then be removed.
"""

from __future__ import annotations

import numpy as np
import pytest

from geo_evidence.core import count_railcars

import scenes_synthetic as S

TYPES = ["box", "tank", "gondola", "hopper", "flat"]


def yard(gsd: float, occupancy: float, *, seed: int = 1, **kw):
    """Four 400 m tracks, each with one cut filling ``occupancy`` of its length."""
    cars = []
    for t in range(4):
        n = int(round(occupancy * 400.0 / 15.5))
        if n:
            cars += S.cut(t, 20.0, [TYPES[(i + t) % len(TYPES)] for i in range(n)])
    return S.render(n_tracks=4, length_m=400.0, gsd_m=gsd, cars=cars, seed=seed, shift_m=(1.5, -1.0), **kw)


def run(sc):
    return count_railcars(sc.image, transform=sc.transform, tracks=sc.tracks, valid=sc.valid, cloud=sc.cloud)


@pytest.mark.parametrize("gsd,method", [(1.5, "length"), (3.0, "length"), (5.0, "length"), (10.0, "occupancy")])
def test_method_follows_the_gsd_and_no_cars_are_resolved(gsd, method):
    res = run(yard(gsd, 0.2))
    assert res.method == method
    assert res.detections == [] and res.by_type == {}
    assert res.gsd_m == pytest.approx(gsd, rel=1e-6)
    # The per-track figures add up to the yard's and each interval holds its count.
    assert sum(t.count for t in res.tracks) == res.count
    for t in res.tracks:
        assert t.low <= t.count <= t.high
    assert res.to_dict()["method"] == method


@pytest.mark.parametrize("gsd", [3.0, 10.0])
def test_empty_yard_gives_a_low_count_and_an_interval_from_zero(gsd):
    res = run(yard(gsd, 0.0, seed=3))
    assert res.count <= 1
    assert res.low == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_3m_interval_holds_the_truth_and_the_count_grows_with_occupancy(seed):
    scenes = [yard(3.0, occ, seed=seed) for occ in (0.0, 0.2, 0.45)]
    results = [run(sc) for sc in scenes]
    for sc, res in zip(scenes, results):
        assert res.low <= sc.n_visible <= res.high, (sc.n_visible, res.count, res.low, res.high)
    counts = [r.count for r in results]
    assert counts[0] < counts[1] < counts[2]


@pytest.mark.xfail(strict=True, reason="3 m target not met yet: within 20 % on ~30 % of tuning scenes; side-by-side "
                   "cuts of mixed colours (this yard) are undercounted by about half")
def test_3m_count_within_20_percent():
    sc = yard(3.0, 0.45, seed=1)
    res = run(sc)
    assert abs(res.count - sc.n_visible) <= 0.2 * sc.n_visible


def test_3m_packed_yard_inside_the_interval():
    # 70 % of the track length under cars: the length method finds few of them, so the
    # upper bound must come from the track's capacity, not from the weak estimate.
    sc = yard(3.0, 0.7, seed=1)
    res = run(sc)
    assert res.low <= sc.n_visible <= res.high


@pytest.mark.parametrize("hide", ["cloud_u", "nodata_u"])
@pytest.mark.parametrize("gsd", [3.0, 10.0])
def test_hidden_length_is_reported_and_its_cars_stay_inside_the_interval(gsd, hide):
    clear = yard(gsd, 0.45, seed=4)
    hidden = yard(gsd, 0.45, seed=4, **{hide: (100.0, 250.0)})
    rc, rh = run(clear), run(hidden)
    assert rh.status == "partial"
    # 150 m of the 400 m tracks lie under the band.
    assert rh.obscured_fraction == pytest.approx(150.0 / 400.0, abs=0.06)
    assert rh.obscured_fraction > rc.obscured_fraction + 0.25
    assert rh.low <= hidden.n_visible <= rh.high
    # Under the band may stand as many cars as were seen elsewhere: the upper bound must
    # allow for every car of the yard, hidden ones included.
    assert rh.high >= len(hidden.truth)
    assert hidden.n_visible < len(hidden.truth)


def test_simulator_yard_at_3m_is_bracketed():
    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_scene

    aoi = load_aoi("tumangang")
    tracks = [np.asarray(t.line.coords) for t in aoi.tracks]
    names = [t.name for t in aoi.tracks]
    excl = [np.asarray(e.exterior.coords) for e in aoi.excludes]
    for n, seed in ((0, 5), (40, 5)):
        sc = simulate_scene(aoi, when="2023-10-19T02:10:00Z", gsd_m=3.0, n_cars=n, margin_m=40.0, seed=seed)
        res = count_railcars(sc.image, transform=sc.transform, tracks=tracks, track_names=names, valid=sc.valid,
                             cloud=sc.cloud, excludes=excl)
        vis = sum(t["visible"] for t in sc.truth)
        assert res.method == "length"
        assert res.low <= vis <= res.high
        if n == 0:
            assert res.low == 0 and res.count <= 3


def test_3m_packed_yard_of_one_dark_colour_is_counted_against_the_ballast():
    # 60 % of every track under black tank cars, side by side: the commonest colour on
    # the tracks is a car, so a reference taken as that mode would find no car at all.
    # The ballast is found from the ground beside the bundle instead.
    cars = []
    for t in range(4):
        cars += S.cut(t, 20.0, ["tank"] * int(round(0.6 * 400.0 / 13.0)))
    sc = S.render(n_tracks=4, length_m=400.0, gsd_m=3.0, cars=cars, seed=1, shift_m=(1.5, -1.0))
    res = run(sc)
    assert res.count >= 0.5 * sc.n_visible, (res.count, sc.n_visible)
    assert res.low <= sc.n_visible <= res.high


@pytest.mark.parametrize("seed", [1, 2])
def test_3m_shadow_band_across_an_empty_yard_is_not_counted(seed):
    # A 36 m band at 30-45 % brightness across the whole scene (a building's or a cloud's
    # shadow) darkens every track like a cut of dark cars, but the ground beside the
    # bundle darkens with it and the band is flat across the tracks.
    for factor in (0.45, 0.3):
        sc = yard(3.0, 0.0, seed=seed)
        img = sc.image.astype(np.float32)
        h = img.shape[0]
        img[h // 2 - 6: h // 2 + 6, :] *= factor
        sc.image = img.astype(sc.image.dtype)
        res = run(sc)
        assert res.count <= 1, (factor, res.count)
        assert res.low == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("occupancy", [0.45, 0.8])
def test_10m_interval_holds_the_truth_and_is_narrower_than_capacity(seed, occupancy):
    # A yard packed to four fifths of its track is as real as a half-full one (until
    # session 12 the bound assumed at most ~50 %, and a packed yard fell outside it).
    sc = yard(10.0, occupancy, seed=seed)
    res = run(sc)
    assert res.low <= sc.n_visible <= res.high, (sc.n_visible, res.low, res.high)
    # No wider than what the track can hold: the shortest cars (12 m pitch) end to end.
    visible = sum(t.length_m * (1 - t.obscured_fraction) for t in res.tracks)
    assert res.high < visible / 12.0


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("occupancy", [0.8, 0.9])
def test_3m_interval_holds_a_packed_yard(seed, occupancy):
    # Cuts of mixed colours side by side are undercounted by about half at 3 m (see the
    # xfail below), so only what the track can physically hold bounds a packed yard; a
    # bound fitted to yards filled to ~65 % fell short of it (82 for 84-92 cars here).
    sc = yard(3.0, occupancy, seed=seed)
    res = run(sc)
    assert res.low <= sc.n_visible <= res.high, (sc.n_visible, res.count, res.low, res.high)
    visible = sum(t.length_m * (1 - t.obscured_fraction) for t in res.tracks)
    assert res.high < visible / 12.0


def test_3m_scene_bound_is_no_more_than_its_tracks_can_hold_together():
    # One long cut on one of six tracks: the scene's bound, a multiple of the whole count,
    # would reach past what the five empty tracks' own bounds and the full one's capacity
    # allow together; the scene is capped there, and still holds the truth.
    cars = S.cut(2, 10.0, [TYPES[i % len(TYPES)] for i in range(24)])
    sc = S.render(n_tracks=6, length_m=400.0, gsd_m=3.0, cars=cars, seed=5, shift_m=(1.0, 0.5))
    res = run(sc)
    assert res.low <= sc.n_visible <= res.high, (sc.n_visible, res.count, res.low, res.high)
    assert res.high <= sum(t.high for t in res.tracks)


def test_3m_scene_interval_is_narrower_than_the_sum_of_track_intervals():
    # The scene's band comes from the scene's count, not from adding every track's own
    # worst case (which would put each track at its capacity at once).
    sc = yard(3.0, 0.2, seed=2)
    res = run(sc)
    assert res.low <= sc.n_visible <= res.high
    assert res.high - res.low <= sum(t.high - t.low for t in res.tracks)
    assert res.high < sum(t.high for t in res.tracks)
