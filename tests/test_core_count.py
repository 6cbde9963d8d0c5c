"""Behaviour of the image core on tiny scenes from tests/scenes_synthetic.py (exact truth)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geo_evidence.core import CountResult, count_railcars
from geo_evidence.errors import CoreInputError, GeoEvidenceError

import scenes_synthetic as S


def run(sc, **kw):
    return count_railcars(sc.image, transform=sc.transform, tracks=sc.tracks, valid=sc.valid, cloud=sc.cloud, **kw)


def per_track(res: CountResult) -> dict:
    return {t.name: t.count for t in res.tracks}


def assert_each_car_found_once(res: CountResult, sc, expected: dict) -> None:
    """The counts per track are ``expected``, each true car holds one detection, none is false."""
    assert per_track(res) == expected
    m = S.match(res.detections, sc.truth)
    assert m["tp"] == sum(expected.values()) and m["fp"] == 0


def true_per_track(sc) -> dict:
    out = {f"T{i + 1}": 0 for i in range(len(sc.tracks))}
    for t in sc.truth:
        if t["visible"]:
            out[f"T{t['track'] + 1}"] += 1
    return out


def test_touching_cars_in_a_long_cut_are_split_at_the_couplers():
    # Ten coupled cars, several of one colour, so only the 1 m gaps and lengths separate them.
    kinds = ["tank", "tank", "tank", "box", "box", "gondola", "hopper", "tank", "tank", "box"]
    sc = S.render(n_tracks=3, length_m=220, cars=S.cut(1, 20, kinds), seed=3)
    res = run(sc)
    assert res.method == "individual"
    assert per_track(res)["T2"] == len(kinds)
    m = S.match(res.detections, sc.truth)
    assert m["tp"] == len(kinds) and m["fp"] == 0


@pytest.mark.parametrize("gsd", [0.3, 0.5])
@pytest.mark.parametrize("bearing", [0.0, 35.0])
def test_gondolas_loaded_in_heaps_are_split_at_their_couplers_not_their_heaps(gsd, bearing):
    # Ore heaped three times along each gondola: each heap's flank changes the colour as
    # much as a coupler does, yet a car is one car from coupler to coupler.
    cars = S.cut(0, 10, ["gondola"] * 8) + S.cut(1, 20, ["gondola"] * 3 + ["box"] * 2 + ["gondola"] * 3)
    sc = S.render(n_tracks=2, length_m=160, cars=cars, gsd_m=gsd, bearing_deg=bearing, heaps=True, seed=7)
    res = run(sc)
    assert_each_car_found_once(res, sc, {"T1": 8, "T2": 8})


@pytest.mark.parametrize("gsd", [0.3, 0.5])
def test_long_cars_are_one_car_each_not_two_halves(gsd):
    # A locomotive (20 m) hauling container flats (19.6 m) beside a cut of short tank cars
    # (12 m): every long car is one car, and the short cars are still split apart.
    cars = S.cut(0, 10, ["locomotive", "flat", "flat", "flat", "flat"]) + S.cut(1, 30, ["tank"] * 6)
    sc = S.render(n_tracks=2, length_m=220, cars=cars, gsd_m=gsd, seed=31)
    res = run(sc)
    assert_each_car_found_once(res, sc, {"T1": 5, "T2": 6})


@pytest.mark.parametrize("gsd", [0.3, 0.5])
def test_two_coupled_flat_cars_are_two_cars_not_a_platform_edge(gsd):
    # Two pale flat cars coupled: a 40 m run whose coupler barely shows. A platform edge
    # or a road is a long run without couplers too, but two of the longest cars are shorter.
    for seed in (1, 2, 3):
        cars = S.cut(1, 40, ["flat", "flat"]) + S.cut(0, 30, ["box", "tank", "gondola"])
        sc = S.render(n_tracks=2, length_m=160, cars=cars, gsd_m=gsd, seed=seed)
        res = run(sc)
        assert_each_car_found_once(res, sc, {"T1": 3, "T2": 2})


def test_dark_tank_cars_among_the_long_shadows_of_their_neighbours_are_found():
    # Dark tank cars (barely brighter than shadow) between two cuts of tall cars whose low-sun
    # shadows fall across them: a tank's body then looks like the shadows around it, but the
    # specular line along its barrel does not. Six yards (two sun directions, three seeds),
    # 54 tanks in all.
    missed = 0
    for shadow in [(5.0, 0.5), (3.0, 2.0)]:
        for seed in (41, 42, 43):
            cars = S.cut(0, 10, ["box"] * 8) + S.cut(1, 12, ["tank"] * 9) + S.cut(2, 8, ["hopper"] * 8)
            sc = S.render(n_tracks=3, length_m=200, cars=cars, shadow=shadow, gsd_m=0.5, seed=seed)
            res = run(sc)
            m = S.match(res.detections, sc.truth)
            assert m["fp"] == 0
            missed += 9 - per_track(res)["T2"]
    assert missed <= 1


def test_trucks_on_a_parallel_road_and_container_stacks_are_not_counted():
    cars = S.cut(0, 30, ["box", "tank", "gondola"]) + S.cut(2, 90, ["hopper", "box"])
    sc = S.render(n_tracks=3, length_m=200, cars=cars, road=True, trucks=[-80, -40, 0, 40, 70],
                  containers=[(-60, -14.0), (20, -14.0), (50, 16.0)], margin_m=25, seed=4)
    res = run(sc)
    assert res.count == len(cars)
    m = S.match(res.detections, sc.truth)
    assert m["fp"] == 0


@pytest.mark.parametrize("shift,rotation", [((4.0, 0.0), 0.0), ((-4.0, 2.0), 1.0), ((3.0, -3.0), -1.0)])
def test_misregistered_tracks_still_count_on_the_right_track(shift, rotation):
    # Cars on the outer tracks only: a one-track slip would move them onto the wrong names.
    cars = S.cut(0, 20, ["box", "tank", "gondola", "box"]) + S.cut(2, 60, ["tank", "hopper", "box"])
    sc = S.render(n_tracks=4, length_m=200, cars=cars, shift_m=shift, rotation_deg=rotation, seed=5)
    res = run(sc)
    assert per_track(res) == true_per_track(sc)


def test_obscured_track_raises_obscured_fraction_and_widens_the_interval():
    cars = S.cut(0, 10, ["box"] * 5) + S.cut(1, 10, ["tank"] * 6)
    clear = S.render(n_tracks=2, length_m=200, cars=cars, seed=6)
    cloudy = S.render(n_tracks=2, length_m=200, cars=cars, cloud_u=(0, 60), seed=6)
    r_clear, r_cloud = run(clear), run(cloudy)
    assert r_cloud.obscured_fraction > r_clear.obscured_fraction + 0.15
    assert r_cloud.status == "partial"
    # Relative to what is seen, the cloudy interval reaches much further up.
    assert r_cloud.high / max(r_cloud.count, 1) > 1.3 * r_clear.high / max(r_clear.count, 1)
    assert r_cloud.low <= cloudy.n_visible <= r_cloud.high
    # The hidden cars may be there: the interval must reach the full truth too.
    assert r_cloud.high >= len(cloudy.truth)


def test_nodata_band_counts_as_obscured():
    cars = S.cut(0, 10, ["box"] * 4)
    sc = S.render(n_tracks=2, length_m=200, cars=cars, nodata_u=(120, 200), seed=7)
    res = run(sc)
    assert res.status == "partial"
    assert res.tracks[0].obscured_fraction > 0.3
    assert res.low <= sc.n_visible <= res.high


@pytest.mark.parametrize("gsd,method", [(3.0, "length"), (10.0, "occupancy")])
def test_coarse_gsd_switches_method_and_brackets_the_truth(gsd, method):
    cars = S.cut(0, 10, ["box"] * 8) + S.cut(2, 40, ["tank"] * 6)
    sc = S.render(n_tracks=3, length_m=250, gsd_m=gsd, cars=cars, blur_px=0.5, seed=8)
    res = run(sc)
    assert res.method == method
    assert res.detections == []
    assert res.low <= len(cars) <= res.high


@pytest.mark.parametrize("seed,across", [(21, 4.6), (22, 5.2)])
def test_a_long_shadow_across_the_neighbour_track_is_not_a_car(seed, across):
    # Low sun: every car casts a car-wide dark copy of itself onto the next track.
    cars = S.cut(1, 20, ["hopper", "box", "tank", "hopper", "box"])
    sc = S.render(n_tracks=3, length_m=200, cars=cars, shadow=(across, 1.0), seed=seed)
    res = run(sc)
    assert per_track(res) == true_per_track(sc)
    assert S.match(res.detections, sc.truth)["fp"] == 0


def _clean_scene(gsd):
    # A pale grey flat car close to the ballast tone may be missed; the interval must
    # still reach it.
    cars = S.cut(0, 10, ["box", "tank", "gondola", "hopper"]) + S.cut(1, 70, ["tank"] * 5) + S.cut(2, 20, ["box", "box", "flat"])
    sc = S.render(n_tracks=3, length_m=220, cars=cars, gsd_m=gsd, seed=25)
    return cars, run(sc)


@pytest.mark.parametrize("gsd", [0.5, 1.0])
def test_clean_scene_is_counted_and_its_interval_holds_the_truth(gsd):
    cars, res = _clean_scene(gsd)
    assert res.low <= len(cars) <= res.high
    assert abs(res.count - len(cars)) <= 2


@pytest.mark.xfail(strict=True, reason=(
    "target not met yet (issue 3): for 12 clean cars the calibrated interval (>= 90 % held-out "
    "coverage) is [10, 19] at 0.5 m and [5, 41] at 1 m, because a few per cent of clean-looking "
    "scenes are still undercounted by 20-40 % (dark cars in deep shadow, pale cars on snow), and "
    "at 0.6-1 m the third renderer's yards are undercounted by up to half"))
@pytest.mark.parametrize("gsd", [0.5, 1.0])
def test_clean_scene_interval_is_narrow_enough_to_decide_a_claim(gsd):
    cars, res = _clean_scene(gsd)
    # At 1 m a car is three pixels wide and cars in a busy yard go unseen far more often,
    # so the interval may honestly be wider there.
    assert res.high - res.low <= (7 if gsd <= 0.5 else 12)


@pytest.mark.parametrize("gsd,n_tracks,length_m,seed", [(0.5, 4, 200, 9), (0.3, 5, 250, 51), (0.3, 5, 250, 53)])
def test_empty_tracks_count_zero_with_a_tight_interval(gsd, n_tracks, length_m, seed):
    # At 0.3 m the bright ballast between two dark rails runs along every track like a
    # tank's specular line: it must not be read as one.
    sc = S.render(n_tracks=n_tracks, length_m=length_m, cars=[], gsd_m=gsd, seed=seed)
    res = run(sc)
    assert res.count == 0
    # No detection at all is weak evidence (every car may have been missed): since the
    # session-12 calibration, which added a third renderer whose cars are missed far more
    # often, its upper margin is 4 cars (it was 2). A few cars, never tens.
    assert res.high - res.low <= 4
    assert all(t.count == 0 for t in res.tracks)


@pytest.mark.parametrize("pan,dtype", [(False, np.uint8), (True, np.uint16), (False, np.float32), (True, np.float64)])
def test_any_dtype_and_band_count(pan, dtype):
    cars = S.cut(0, 15, ["box", "tank", "gondola"]) + S.cut(1, 50, ["hopper", "box"])
    sc = S.render(n_tracks=2, length_m=150, cars=cars, pan=pan, dtype=dtype, seed=10)
    assert sc.image.dtype == dtype
    assert run(sc).count == len(cars)


def test_four_band_image_uses_the_first_three():
    cars = S.cut(0, 15, ["box", "tank", "gondola"])
    sc = S.render(n_tracks=2, length_m=150, cars=cars, seed=11)
    nir = np.full(sc.image.shape[:2] + (1,), 200, np.uint8)
    res = count_railcars(np.concatenate([sc.image, nir], axis=2), transform=sc.transform, tracks=sc.tracks)
    assert res.count == len(cars)


@pytest.mark.parametrize("bearing", [0.0, 37.0, 90.0, 145.0, 251.0])
def test_any_bearing(bearing):
    cars = S.cut(0, 15, ["box", "tank", "gondola", "box"]) + S.cut(2, 40, ["tank", "hopper"])
    sc = S.render(n_tracks=3, length_m=180, bearing_deg=bearing, cars=cars, seed=12)
    res = run(sc)
    assert per_track(res) == true_per_track(sc)


def test_tracks_running_past_the_image_are_partly_obscured():
    sc = S.render(n_tracks=2, length_m=150, cars=S.cut(0, 20, ["box", "box"]), seed=13)
    # The renderer hands over lines 30 m longer than the image at each end.
    res = run(sc)
    assert res.count == 2
    # 10 m beyond each image edge, of 210 m of line.
    assert res.tracks[0].obscured_fraction == pytest.approx(20 / 210, abs=0.02)


def test_result_is_json_ready_and_polygons_lie_on_the_cars():
    cars = S.cut(1, 20, ["box", "tank"])
    sc = S.render(n_tracks=2, length_m=120, cars=cars, seed=14)
    res = run(sc, track_names=["east", "west"])
    d = json.loads(json.dumps(res.to_dict()))
    assert d["count"] == 2 and d["tracks"][1]["name"] == "west"
    assert {det["track"] for det in d["detections"]} == {"west"}
    for det in res.detections:
        assert det.polygon_px.shape[1] == 2 and det.polygon_map.shape[1] == 2
        assert 8.0 < det.length_m < 22.0


def test_excluded_polygon_is_not_analysed():
    cars = S.cut(0, 10, ["box", "box", "box"])
    sc = S.render(n_tracks=1, length_m=160, cars=cars, seed=15)
    line = sc.true_tracks[0]
    # Exclude a box around the first car (u from -80 to -64 along the track).
    u = (line[-1] - line[0]) / np.hypot(*(line[-1] - line[0]))
    v = np.array([-u[1], u[0]])
    c0 = line[0] + u * (30 + 10 + 8)
    ring = np.array([c0 - 9 * u - 4 * v, c0 + 9 * u - 4 * v, c0 + 9 * u + 4 * v, c0 - 9 * u + 4 * v, c0 - 9 * u - 4 * v])
    res = run(sc, excludes=[ring])
    assert res.count == 2


def _bad(**override):
    sc = S.render(n_tracks=1, length_m=60, cars=[], seed=16)
    kw = dict(transform=sc.transform, tracks=sc.tracks)
    kw.update(override)
    image = kw.pop("image", sc.image)
    return image, kw


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"valid": np.ones((3, 3), bool)}, "valid mask"),
        ({"cloud": np.ones((5, 4), bool)}, "cloud mask"),
        ({"transform": (0.5, 0, np.nan, 0, -0.5, 0)}, "transform"),
        ({"transform": (0, 0, 0, 0, 0, 0)}, "singular"),
        ({"tracks": []}, "no tracks"),
        ({"tracks": [np.array([[0.0, 0.0]])]}, "track 0"),
        ({"tracks": [np.array([[0.0, 0.0], [np.inf, 1.0]])]}, "non-finite"),
        ({"track_names": ["a", "b"]}, "track_names"),
        ({"image": np.zeros(10)}, "image must be"),
        ({"excludes": [np.zeros((2, 2))]}, "exclude 0"),
    ],
)
def test_bad_inputs_raise_core_input_error_with_a_clear_message(override, needle):
    image, kw = _bad(**override)
    with pytest.raises(CoreInputError, match=needle) as info:
        count_railcars(image, **kw)
    assert isinstance(info.value, GeoEvidenceError) and isinstance(info.value, ValueError)


def test_nan_pixels_are_treated_as_nodata():
    cars = S.cut(0, 10, ["box", "tank", "gondola"])
    sc = S.render(n_tracks=2, length_m=150, cars=cars, dtype=np.float32, seed=17)
    img = sc.image.copy()
    # Blank the far half of the image (rows are north-up; the track runs north).
    img[: img.shape[0] // 2] = np.nan
    res = count_railcars(img, transform=sc.transform, tracks=sc.tracks)
    assert res.status == "partial"
    assert res.count == 3  # the three cars lie in the southern half
    assert res.tracks[0].obscured_fraction > 0.4


# --- calibrated interval (geo_evidence/core/_interval.py, benchmarks/calibrate.py) -------------


def _signals(**kw):
    base = dict(gsd=0.5, count=40, weak=0, amb=0, hidden_high=0, obscured=0.0, mean_conf=0.95,
                occupied_m=600.0, visible_m=2000.0)
    base.update(kw)
    return base


def test_weak_evidence_widens_the_interval_downwards_and_hidden_track_upwards():
    from geo_evidence.core import _interval

    clean = _interval.individual_interval(_signals())
    faint = _interval.individual_interval(_signals(mean_conf=0.6, weak=8))
    clouded = _interval.individual_interval(_signals(obscured=0.3, hidden_high=25))
    assert clean[0] <= 40 <= clean[1]
    # Low-contrast detections: more of the count may be false, so the low end drops.
    assert faint[0] < clean[0] - 5
    # Track under cloud may hold more cars than were seen.
    assert clouded[1] >= clean[1] + 25
    # Coarser imagery misses more: the 1 m interval is not narrower than the 0.5 m one.
    coarse = _interval.individual_interval(_signals(gsd=1.0))
    assert coarse[1] - coarse[0] >= clean[1] - clean[0]


def test_an_empty_clean_yard_keeps_a_narrow_interval():
    from geo_evidence.core import _interval

    low, high = _interval.individual_interval(_signals(count=0, occupied_m=0.0))
    # A few cars of upper margin (4 since the session-12 calibration, see
    # test_empty_tracks_count_zero_with_a_tight_interval), never tens.
    assert low == 0 and high <= 4


@pytest.mark.parametrize("gsd", [0.5, 1.0])
def test_calibrated_interval_covers_varied_unseen_scenes(gsd):
    # Eight scenes from the test renderer with random cuts, sun shadows, cloud, shifts and
    # rotations (seeds never used in the calibration, which drew its own scenes); the
    # interval is calibrated for >= 90 % coverage, so at most one may fall outside.
    rng = np.random.default_rng(int(gsd * 100) + 7)
    inside = 0
    for k in range(8):
        n_tracks = int(rng.integers(2, 5))
        cars = []
        for t in range(n_tracks):
            if rng.random() < 0.8:
                kinds = [str(rng.choice(["box", "tank", "gondola", "hopper"])) for _ in range(int(rng.integers(1, 7)))]
                cars += S.cut(t, float(rng.uniform(5, 60)), kinds)
        cu = None
        if rng.random() < 0.3:
            cu = (float(rng.uniform(-60, 0)), float(rng.uniform(10, 60)))
        sc = S.render(n_tracks=n_tracks, length_m=200, cars=cars, gsd_m=gsd, seed=300 + k,
                      shift_m=tuple(float(v) for v in rng.uniform(-3, 3, 2)), rotation_deg=float(rng.uniform(-0.5, 0.5)),
                      shadow=(float(rng.uniform(-3, 3)), 1.0) if rng.random() < 0.5 else None, cloud_u=cu)
        res = run(sc)
        inside += res.low <= sc.n_visible <= res.high
    assert inside >= 7


def test_each_track_interval_holds_that_tracks_cars():
    # The per-track intervals (TrackCount, the JSON's tracks) are built like the scene's
    # calibrated one, from each track's own evidence. Two packed simulator yards (Tumangang
    # at 0.5 m under a 20-degree sun, Khasan at 0.6 m) miss or misplace a fifth of their
    # cars; with the older fixed shares only half of their tracks' intervals held the
    # track's own cars. Six varied scenes of the test renderer (mixed cuts, empty tracks,
    # shadows, a cloud band, shifted lines) add easy tracks, where an empty track must not
    # get a margin of many cars.
    from collections import Counter

    inside = total = 0
    for yard, kw in [("tumangang", dict(when="2023-07-10T02:10:00Z", gsd_m=0.5, cars={"gondola": 120, "box": 60},
                                        sun_azimuth=150.0, sun_elevation=20.0, seed=2)),
                     ("khasan", dict(when="2023-07-10T02:10:00Z", gsd_m=0.6, n_cars=160, sun_azimuth=140.0,
                                     sun_elevation=30.0, seed=3))]:
        res, visible = _simulate_and_count(yard, season="summer", **kw)
        truth = Counter(t["track"] for t in visible)
        for tc in res.tracks:
            total += 1
            inside += tc.low <= truth.get(tc.name, 0) <= tc.high
    rng = np.random.default_rng(4242)
    for k in range(6):
        n_tracks = int(rng.integers(3, 6))
        cars = []
        for t in range(n_tracks):
            if rng.random() < 0.7:
                kinds = [str(rng.choice(["box", "tank", "gondola", "hopper", "flat"])) for _ in range(int(rng.integers(1, 8)))]
                cars += S.cut(t, float(rng.uniform(5, 60)), kinds)
        sc = S.render(n_tracks=n_tracks, length_m=220, cars=cars, gsd_m=0.5, seed=600 + k,
                      cloud_u=(-40.0, 10.0) if k % 3 == 0 else None,
                      shift_m=tuple(float(v) for v in rng.uniform(-3, 3, 2)), rotation_deg=float(rng.uniform(-0.5, 0.5)),
                      shadow=(float(rng.uniform(-3, 3)), 1.0) if k % 2 else None)
        res = run(sc)
        for t, tc in enumerate(res.tracks):
            n_true = sum(1 for c in sc.truth if c["track"] == t and c["visible"])
            total += 1
            inside += tc.low <= n_true <= tc.high
            if n_true == 0 and tc.count == 0 and tc.obscured_fraction == 0:
                assert tc.high <= 3, (k, tc)
        assert sum(tc.count for tc in res.tracks) == res.count
    assert total >= 36
    assert inside >= 0.9 * total, f"{inside} of {total} track intervals hold their cars"


def test_the_older_evidence_interval_stays_available_and_bad_choices_are_refused():
    from geo_evidence.core import CountParams

    cars = S.cut(0, 10, ["box", "tank", "gondola", "hopper"]) + S.cut(1, 70, ["tank"] * 5)
    sc = S.render(n_tracks=3, length_m=220, cars=cars, seed=25)
    cal, old = run(sc), run(sc, params=CountParams(interval="evidence"))
    assert cal.count == old.count
    # The calibrated interval is the honest, wider one.
    assert cal.high - cal.low >= old.high - old.low
    with pytest.raises(CoreInputError, match="interval"):
        run(sc, params=CountParams(interval="tight"))


def _small_sim_yard(n_cars, seed, when_month, mis=(0.0, 0.0)):
    """The simulator's 3-track, 240 m yard at 0.5 m (tracks 5 m apart, a platform 4.6 m beside)."""
    import datetime as dt

    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_scene
    from test_pipeline import _small_aoi_dict

    aoi = load_aoi(_small_aoi_dict())
    when = dt.datetime(2023, when_month, 10, 2, 0, tzinfo=dt.timezone.utc)
    sc = simulate_scene(aoi, when=when, gsd_m=0.5, n_cars=n_cars, seed=seed, misregistration_m=mis)
    lines = [np.asarray(t.line.coords) for t in aoi.tracks]
    res = count_railcars(sc.image, transform=tuple(sc.transform)[:6], tracks=lines,
                         track_names=[t.name for t in aoi.tracks], valid=sc.valid)
    d = np.diff(lines[0][[0, -1]], axis=0)[0]
    normal = np.array([-d[1], d[0]]) / np.hypot(*d)
    across = float(np.asarray(res.registration["shift_m"]) @ normal)
    return res, across


@pytest.mark.parametrize("n_cars,seed,month", [(3, 100, 1), (8, 101, 3), (0, 102, 5), (12, 103, 7), (5, 104, 9)])
def test_small_yard_without_misregistration_is_not_slipped_onto_the_platform(n_cars, seed, month):
    res, across = _small_sim_yard(n_cars, seed, month)
    assert abs(across) < 1.0


def test_small_yard_with_a_true_4m_shift_is_still_registered():
    # The real tracks lie 4 m across from the mapped lines (away from the platform): a fix
    # for the slip above must not pin the registration to the mapped position.
    res, across = _small_sim_yard(8, 101, 3, mis=(0.0, -4.0))
    assert abs(across + 4.0) < 1.0
    assert abs(res.count - 8) <= 1


def test_small_yard_shifted_towards_the_platform_target():
    res, across = _small_sim_yard(8, 101, 3, mis=(0.0, 4.0))
    assert abs(across - 4.0) < 1.0


def _simulate_and_count(yard="tumangang", **kw):
    """Simulate a bundled yard (Tumangang unless ``yard`` names another) with ``kw`` (margin
    40 m) and count it with the AOI's own lines: ``(result, visible true cars)``."""
    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_scene

    aoi = load_aoi(yard)
    sc = simulate_scene(aoi, margin_m=40, **kw)
    res = count_railcars(sc.image, transform=tuple(sc.transform)[:6], tracks=[np.asarray(t.line.coords) for t in aoi.tracks],
                         track_names=[t.name for t in aoi.tracks], valid=sc.valid, cloud=sc.cloud,
                         excludes=[np.asarray(e.exterior.coords) for e in aoi.excludes])
    return res, [t for t in sc.truth if t["visible"]]


def _yard_scene(yard="tumangang", **kw):
    """:func:`_simulate_and_count`, scored: the result, its match against the visible cars
    (a detection is right when its centre lies in a car) and their number."""
    res, visible = _simulate_and_count(yard, **kw)
    return res, S.match(res.detections, visible), len(visible)


def _winter_scene(seed):
    """The Tumangang yard in snow, sun 158 degrees / 32 high, 18 cars."""
    return _yard_scene(when="2023-02-14T02:05:00Z", gsd_m=0.5, n_cars=18, season="snow", sun_azimuth=158,
                            sun_elevation=32, seed=seed)


@pytest.mark.parametrize("seed", [42, 45])
def test_pale_cars_long_winter_shadows_on_the_next_track_are_not_counted(seed):
    # Every car throws a black shadow a car wide onto the next track. White and pale cars
    # do not stand out from the snow, so only their own shadow tells the sun side; without
    # it each shadow is counted as a dark car.
    res, m, n_visible = _winter_scene(seed)
    assert m["fp"] <= 2  # was 14 and 12: one per shadow
    assert res.count <= n_visible + 2


def test_pale_cars_beside_their_own_long_shadow_are_counted():
    # The anti-sun half of each white car blends into the black shadow it throws, so only
    # one half stands out from the lit snow. Such a car is still centred on its track (its
    # anti-sun strip is dark, its sun-side strip lit); read as "one-sided" it was dropped
    # as a neighbour's edge (6 of 18 cars found).
    res, m, _ = _winter_scene(40)
    assert m["tp"] >= 10 and m["fp"] <= 2


def test_white_cars_on_snow_are_found_by_their_own_shadows():
    # The Khasan yard in snow, sun 155 degrees / 33 high: snow-covered cars as pale as the
    # snow-covered track, packed beside white cars on the next track, show neither
    # car-ness nor edges; their couplers step too unevenly to make a chain. What gives each
    # away is its own shadow on its anti-sun strip beside a lit sun-side strip (52 of 68
    # found before that cue, 61 with it; tuning scene 7006009).
    res, m, n_visible = _yard_scene(
        "khasan", when="2023-06-15T02:10:00Z", gsd_m=0.5, n_cars=79, season="snow", sun_azimuth=155.46,
        sun_elevation=32.63, cloud_cover=0.1, misregistration_m=(2.64, 2.66), misregistration_deg=0.25, blur=0.87,
        noise=2.23, nodata_edge=0.15, seed=7006009)
    assert m["tp"] >= n_visible - 10, f"{m['tp']} of {n_visible} cars found"
    assert m["fp"] <= 2


def test_loaded_cars_in_a_neighbours_long_shadow_are_found_by_their_texture():
    # A packed Tumangang yard of gondolas and box cars under a sun 20 degrees high: every
    # car throws its shadow across the next track, and a gondola standing in it is as dark
    # as the shaded ballast beside it, so the cast-shadow tests took it for shadow. Its
    # load (heaps along the car) is textured where shaded ballast is smooth: 149 of 180
    # found before that cue, 155 with it, and no false car more.
    res, m, n_visible = _yard_scene(when="2023-07-10T02:10:00Z", gsd_m=0.5, cars={"gondola": 120, "box": 60},
                                         season="summer", sun_azimuth=150.0, sun_elevation=20.0, seed=2)
    assert m["tp"] >= 153, f"{m['tp']} of {n_visible} cars found"
    assert m["fp"] <= 29  # the shadows counted as cars before the cue (a known weakness)


def test_a_track_packed_with_cars_close_to_its_ballast_in_look_keeps_its_own_noise():
    # Tuning scene 7001006: Tumangang packed with 356 cars (panchromatic, 0.5 m, sun 39
    # degrees high). On four tracks 72-85 % of the length is occupied, largely by
    # loaded gondolas whose look is close to the shaded ballast; measured around the
    # empty-track look, the noise took in those cars and came out twice that of the empty
    # samples, halving every car's contrast: 255 cars found, 286 with the noise refined,
    # 301 since the refinement also narrows by half the bandwidth (session 12).
    res, m, n_visible = _yard_scene(when="2023-02-15T02:10:00Z", gsd_m=0.5, n_cars=356, season="summer",
                                    sun_azimuth=124.28, sun_elevation=39.47, misregistration_m=(-2.28, -4.11),
                                    misregistration_deg=-0.50, blur=0.56, noise=3.17, panchromatic=True, seed=7001006)
    assert m["tp"] >= 295, f"{m['tp']} of {n_visible} cars found"
    assert m["fp"] <= 4


def test_a_stretch_that_does_not_fill_a_car_body_is_not_counted():
    # Tuning scene 7005008 (test renderer, panchromatic 8-bit at 0.5 m, lines 4.4 m off and
    # 0.6 degrees rotated; the render settings and cars are in tests/data): three
    # candidates, each overlapping a true car without being centred on one, differed from
    # empty track on a narrow band only, not across a car's middle, and were counted as
    # three more cars.
    from pathlib import Path

    spec = json.loads((Path(__file__).parent / "data" / "synth_7005008.json").read_text())
    spec["dtype"] = np.dtype(spec["dtype"]).type
    spec["shift_m"] = tuple(spec["shift_m"])
    sc = S.render(**spec)
    res = run(sc)
    m = S.match(res.detections, [t for t in sc.truth if t["visible"]])
    assert m["tp"] >= sc.n_visible - 1
    assert m["fp"] <= 1, f"{m['fp']} false cars"
    assert abs(res.count - sc.n_visible) <= 2


def test_an_empty_track_unlike_the_rest_of_the_yard_is_not_read_as_one_long_cut():
    # A near-empty Tumangang yard at 0.6 m (panchromatic, lines 1.4 m off): one track's
    # empty appearance differs from the yard's typical one (another strip beside it), so
    # against the yard's reference the whole track looked occupied and was cut into a
    # dozen "cars". A track that is uniform along its length, without a coupler rhythm,
    # is its own empty reference.
    res, m, n_visible = _yard_scene(when="2023-06-15T02:10:00Z", gsd_m=0.6, n_cars=3, season="autumn",
                                         sun_azimuth=128.8, sun_elevation=54.1, misregistration_m=(-0.77, -1.16),
                                         misregistration_deg=0.34, blur=0.72, noise=3.07, panchromatic=True, seed=7005022)
    assert m["fp"] <= 2, f"{m['fp']} false cars in a yard of {n_visible}"
    assert res.low <= n_visible <= res.high
