"""Along-track segmentation of the image core: step-bounded cars that barely differ in tone."""

from __future__ import annotations

import numpy as np
import pytest

from geo_evidence.core import _segment, count_railcars

import scenes_synthetic as S


def _profile(rng, *, n=2000, step=0.25, segments=(), noise=0.01):
    """A 1-D, 3-channel along-track profile: flat ballast plus flat-toned stretches."""
    c = np.full((n, 3), [0.55, 0.04, 0.0]) + rng.normal(0, noise, (n, 3))
    for s0_m, s1_m, tone in segments:
        c[int(s0_m / step): int(s1_m / step)] = np.asarray(tone) + rng.normal(0, noise, (int(s1_m / step) - int(s0_m / step), 3))
    return c


def test_a_car_length_stretch_between_two_sharp_steps_is_found():
    rng = np.random.default_rng(11)
    c = _profile(rng, segments=[(100.0, 115.5, [0.50, 0.07, 0.0]), (300.0, 319.6, [0.51, 0.06, 0.02])])
    segs = _segment.step_segments(c, np.ones(len(c), bool), step=0.25)
    found = [(s0 * 0.25, s1 * 0.25) for s0, s1 in segs]
    assert len(found) == 2
    for (a, b), (ta, tb) in zip(found, [(100.0, 115.5), (300.0, 319.6)]):
        assert abs(a - ta) <= 1.0 and abs(b - tb) <= 1.0


def test_no_stretch_in_plain_noise_or_a_slow_ramp_or_a_short_blob():
    rng = np.random.default_rng(12)
    c = _profile(rng, segments=[(200.0, 204.0, [0.3, 0.0, 0.0])])  # a 4 m blob: no car
    c[:, 0] += np.linspace(0, 0.2, len(c))  # slow illumination ramp
    assert _segment.step_segments(c, np.ones(len(c), bool), step=0.25) == []


def test_a_stretch_touching_a_cloud_edge_is_not_offered():
    rng = np.random.default_rng(13)
    c = _profile(rng, segments=[(100.0, 115.0, [0.45, 0.07, 0.0])])
    usable = np.ones(len(c), bool)
    usable[int(108 / 0.25): int(111 / 0.25)] = False
    assert _segment.step_segments(c, usable, step=0.25) == []


def test_pale_flat_cars_and_gondolas_in_a_mixed_cut_are_all_found():
    # Flat cars and gondolas whose tone is close to the strips beside the track, coupled
    # between darker and brighter cars: only their sharp ends set them apart.
    kinds = ["locomotive", "flat", "hopper", "tank", "hopper", "gondola", "flat", "gondola", "hopper", "box"]
    sc = S.render(n_tracks=3, length_m=260, cars=S.cut(1, 20, kinds), seed=21)
    res = count_railcars(sc.image, transform=sc.transform, tracks=sc.tracks, valid=sc.valid, cloud=sc.cloud)
    m = S.match(res.detections, sc.truth)
    assert m["tp"] == len(kinds)
    assert abs(res.count - len(kinds)) <= 1


def test_dark_cars_in_a_packed_yard_with_long_shadows_are_found():
    # Five tracks packed with dark tank cars whose long shadows fall on the next track:
    # both side strips of most cars are dark, so contrast against the strips is weak and
    # only the difference from empty track, between the cars' sharp ends, finds them.
    kinds = ["tank", "box", "tank", "tank", "hopper", "tank", "tank", "box", "tank", "tank"]
    cars = [c for t in range(5) for c in S.cut(t, 10 + 4 * t, kinds)]
    sc = S.render(n_tracks=5, length_m=200, cars=cars, shadow=(-1.5, 2.0), seed=32)
    res = count_railcars(sc.image, transform=sc.transform, tracks=sc.tracks, valid=sc.valid, cloud=sc.cloud)
    m = S.match(res.detections, sc.truth)
    assert abs(res.count - len(cars)) <= 0.1 * len(cars)
    assert m["tp"] >= 0.9 * len(cars) and m["fp"] <= 2


@pytest.mark.parametrize("rgb", [(95, 95, 98), (150, 145, 140)])
def test_a_yard_packed_with_cars_of_one_colour_is_counted(rgb):
    # Five tracks, each 85 % covered by a cut of identical hoppers: the densest appearance
    # along every track is that car, not empty ballast. Learned as the "empty" reference,
    # it hid every car and turned the free ballast at the ends into cars (0 of 55 found).
    # The couplers still step every 15 m; stretches inside that rhythm are a cut.
    cars = [c for t in range(5) for c in S.cut(t, 8 + 3 * t, ["hopper"] * 11, colours=[rgb])]
    sc = S.render(n_tracks=5, length_m=200, cars=cars, seed=41)
    res = count_railcars(sc.image, transform=sc.transform, tracks=sc.tracks, valid=sc.valid, cloud=sc.cloud)
    m = S.match(res.detections, sc.truth)
    assert abs(res.count - len(cars)) <= 2
    assert m["tp"] >= len(cars) - 2 and m["fp"] <= 2


def _ballast_among_cars(seed: int, reach: float):
    """200 empty-track samples (a tight cluster at 0) and the same with 800 car samples whose
    looks fill a ball of radius ``reach`` starting right beside it: ``(empty, mixed)``."""
    rng = np.random.default_rng(seed)
    empty = rng.normal(0.0, 0.012, (200, 3))
    d = rng.normal(size=(800, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cars = np.array([reach * 0.4, 0.0, 0.0]) + d * reach * rng.random((800, 1)) ** (1 / 3)
    return empty, rng.permutation(np.vstack([empty, cars]))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reach", [0.16, 0.18, 0.2])
def test_the_noise_of_empty_track_is_measured_on_a_track_packed_with_look_alike_cars(seed, reach):
    # A fifth of the samples are empty ballast (one tight cluster); the rest are cars whose
    # looks scatter over a ball that starts right beside it (loaded gondolas in a shaded
    # yard). The empty track's noise must come out as the ballast's own, not the cars'
    # (1.3 to 2.2 times larger here), or every car's contrast is divided by an inflated
    # noise and the cars are lost. (Cars crowding the ballast still closer: see the next
    # test.)
    empty, mixed = _ballast_among_cars(seed, reach)
    _, alone = _segment.mode_vector(empty, bandwidth=0.04, refine=2)
    mode, spread = _segment.mode_vector(mixed, bandwidth=0.04, refine=2)
    assert spread < 1.3 * alone, f"spread {spread:.3f} against the ballast's own {alone:.3f}"
    assert np.linalg.norm(mode) < 0.5 * alone
    # Refining never inflates the spread of a lone cluster.
    assert alone < 1.05 * _segment.mode_vector(empty, bandwidth=0.04)[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("reach", [0.1, 0.12])
def test_the_noise_of_empty_track_is_measured_among_cars_crowding_its_look(seed, reach):
    # As above, with the cars' looks crowding the ballast so closely that the first
    # estimate's spread exceeds 1.5 bandwidths (the third renderer's packed yards: 2-3x
    # the empty samples' own). Until session 12 such a spread was kept (3.5x the
    # ballast's here); the search now also narrows by half the bandwidth.
    empty, mixed = _ballast_among_cars(seed, reach)
    _, alone = _segment.mode_vector(empty, bandwidth=0.04, refine=2)
    first = _segment.mode_vector(mixed, bandwidth=0.04)[1]
    assert first > 1.5 * 0.04  # the case this test is about
    _, spread = _segment.mode_vector(mixed, bandwidth=0.04, refine=2)
    assert spread < 1.5 * alone, f"spread {spread:.3f} against the ballast's own {alone:.3f}"


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_pair_distances_are_bit_for_bit_those_of_the_broadcast_sum(channels):
    # mode_vector's distances are built channel by channel for speed; they must stay the
    # very numbers of the plain broadcast expression (which numpy sums left to right), or
    # the mode, and every count after it, could move.
    rng = np.random.default_rng(channels)
    x = rng.normal(size=(1500, channels)) * 10.0 ** rng.integers(-4, 4, size=(1500, channels))
    a, b = x[::25], x
    plain = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    assert np.array_equal(_segment._pair_distances(a, b), plain)


def test_mode_vector_refined_from_a_given_first_estimate_is_the_same():
    empty, mixed = _ballast_among_cars(0, 0.12)
    first = _segment.mode_vector(mixed, bandwidth=0.04)
    m0, s0 = _segment.mode_vector(mixed, bandwidth=0.04, refine=2)
    m1, s1 = _segment.mode_vector(mixed, bandwidth=0.04, refine=2, first=first)
    assert np.array_equal(m0, m1) and s0 == s1
