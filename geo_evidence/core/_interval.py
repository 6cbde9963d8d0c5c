"""Count interval of the individual-car path (GSD <= 1.2 m), calibrated split-conformally.

The interval is built from the scene's own evidence plus a calibrated margin::

    low  = sure  - ceil(K_LO * scale_low(s))
    high = count + amb + hidden_high + ceil(K_HI * scale_high(s))

``sure`` are the confident detections, ``amb`` the unclaimed car-like stretches and the
pieces longer than any single car, ``hidden_high`` what cloud or nodata may hide.
``scale_low`` / ``scale_high`` grow with the count and with packing (high side) or weak
detections (low side). On the low side the conformal factor differs between scenes with
clean evidence (confident detections, few weak ones) and the rest: weak
evidence (low contrast in snow, haze or shade, many weak detections, no detection at
all) widens the interval downwards, clean evidence does not pay for it.
Weak evidence widens the upper side through ``amb`` and ``hidden_high``; the calibrated
upper margin is one per band at 0.6-1 m, where clean evidence does not make misses rarer
(see "weaknesses" below), and per stratum at 0.3-0.5 m, where it does (session 12). Tried and
dropped (they widened the interval more than they helped on the tuning scenes, or grew
with the yard's size rather than with difficulty): sub-threshold car-ness on free track,
track length looked at, cast-shadow length, registration gain, ballast brightness.

How the constants were obtained: ``python benchmarks/calibrate.py`` (tuning base seeds
4101-4112, 20 scenes per fine GSD band each, drawn by benchmarks/accuracy.py's generators;
see benchmarks/heldout/README.md). Split conformal: the scale weights (``A``, ``B_*``,
from a small grid) are chosen on the scenes of the odd seeds 4101-4111 as those giving the
narrowest mean interval there; the factors ``K_LO`` / ``K_HI`` are then set on the even
seeds' scenes, per band and stratum, as the ceil(q (n + 1))-th smallest scaled residual
(the finite-sample split-conformal rank). q = 0.975 per side since session 5: with
q = 0.95 (>= 90 % two-sided on the calibration half) the two fresh held-out checks of
session 4 held the truth on only 79 % and 82 % of the <= 0.5 m scenes, so the nominal
level is raised to leave room for the scenes that the tuning draws under-represent.
B_PACK came out 0: packing did not predict misses beyond the count itself. Both are fitted per fine band (0.3/0.5 m and 0.6/1.0
m) and blended linearly in GSD between 0.5 and 0.6 m; above 1.0 m the 0.6-1 m margins grow
in proportion to the GSD (no tuning scenes there).

Re-calibrated in session 12 on a wider tuning set: the third renderer
(``benchmarks/scenes_third.py``, tuning base seeds 4201-4206, odd ones in the train half)
joined the simulator / test-renderer mix (4101-4112), because the intervals fitted to the
mix alone held the truth on only 80 % (<= 0.5 m) and 75 % (0.5-1 m) of the third
renderer's tuning scenes: the core misses far more cars in that style (recall ~0.7). At
0.3/0.5 m the upper factor is now set per evidence stratum as well (Mondrian): large
misses there are rare in clean scenes of either renderer and common in weak ones
(``benchmarks/calibrate.py``, ``factors_by_stratum``), so clean scenes get a NARROWER
upper margin than before (0.34 -> 0.26) and weak ones a much wider one (0.34 -> 1.22). At
0.6/1 m clean evidence does not predict fewer misses and the one upper factor rose from
0.41 to 2.24 (the weak lower factor fell from 0.67 to 0.51). Calibration half: coverage
0.98 / 0.98, mean width 1.78 (0.3/0.5 m; median 0.57 on clean scenes) and 2.94 (0.6/1 m),
against 1.29 / 1.57 fitted to the mix alone. ``--keep-weights``: weights re-picked on the
train half gave 1.99 / 3.05. Re-run after packed tracks' noise began to be narrowed by half
the bandwidth as well (``_segment.mode_vector``; caches recomputed): the weak upper factor
at 0.3/0.5 m 1.22 -> 1.19, the 0.6/1 m one 2.24 -> 2.00, the rest unchanged; calibration
half coverage 0.98 / 0.98, width 1.80 / 2.79.

Re-calibrated in session 11 after a packed track's noise began to be refined (fewer cars
missed in packed yards) and panchromatic 0.5 m registration got the lateral median (caches
of 4101-4112 recomputed, ``--keep-weights``): the upper factor at 0.6/1 m fell from 0.67
to 0.41 and the clean lower factor at 0.3/0.5 m from 0.13 to 0.12; mean width 1.29 (0.3/0.5
m) and 1.57 (0.6/1 m) on the calibration half, coverage 0.98 / 0.99.

Re-checked in session 10 after the body-fill test (caches of 4101-4112 recomputed,
``--keep-weights``): the same constants, width 1.27 / 1.75, coverage 0.98 / 0.99.

Re-checked in session 9 after the own-shadow lift (pale cars on pale ground found by the
shadow on their anti-sun strip) and again after the texture lift (loaded cars in a
neighbour's shadow; caches of 4101-4112 recomputed each time, ``--keep-weights``): the
same constants, mean width 1.27 (0.3/0.5 m) and 1.75 (0.6/1 m) on the calibration half,
coverage 0.98 / 0.99.

Re-calibrated in session 8 after the registration began to compare distinct lateral
placements (8 of the 240 tuning scenes changed count, 6 of them towards the truth: two
undercounts of 41 % and 44 % gone): with the weights kept (``--keep-weights``) the upper
factor at 0.3/0.5 m fell from 0.45 to 0.34 and the clean lower factor at 0.6/1 m rose from
0.14 to 0.47; mean width 1.27 (0.3/0.5 m) and 1.74 (0.6/1 m) on the calibration half,
coverage 0.98 / 0.99.

Re-calibrated in session 7 after the coupler evidence began to average colour over 0.3-3 m
(heaps inside gondolas no longer split them): mean width 1.35 (0.3/0.5 m) and 1.69 (0.6/1
m) on the calibration half, coverage 0.98 / 0.99. The weights picked on the train half
dropped the packing term of the 0.6-1 m upper scale (B_PACK 2 -> 0, factor 0.44 -> 0.67);
``--keep-weights`` gave a wider interval there (1.78). Re-run after the linear-feature
test moved from 40 to 45 m: the same constants (width 1.36 / 1.70, coverage 0.98 / 0.99).

Re-calibrated in session 6 after the car-length prior was widened to 21 m (long cars no
longer cut in two), and again after the tank-line lift: mean width 1.35 (0.3/0.5 m) and
1.67 (0.6/1 m) on the calibration half, coverage 0.98 / 0.99. In between, a first version
of the tank line that took rail stripes for tanks made the weights picked on the train
half flip (low side (0.5, 0) with a weak factor of 1.0, width 1.68); ``calibrate.py
--keep-weights`` refits the factors alone, and with the line fixed both ways agree.

Re-calibrated in session 5 after the fine-GSD registration median and the per-track
empty reference (fewer false cars in empty and near-empty yards), and again after the
small-shift registration prior (same constants), at q = 0.975: mean width 1.33 (0.3/0.5 m)
and 1.59 (0.6/1 m) on the calibration half, coverage 0.98 / 0.98. The
high-side constant A no longer goes up to 6 cars: picked on the train half, it was wider
on the calibration half (1.37) and put 3 cars of margin on a clean empty yard.

Re-calibrated in session 3 after the step-bounded and packed-yard lifts (fewer missed
cars in packed and shaded yards): the upper factor fell from ~0.5 to 0.23 (0.3/0.5 m) and
0.40 (0.6/1 m), the weak-evidence lower factor from 0.77 to 0.39 at 0.3/0.5 m.

Weaknesses: 20-40 % undercounts still happen on scenes whose evidence looks clean (dark
cars in deep shadow at 0.6 m, pale cars on snow), which sets the upper margin; empty or
near-empty scenes can carry 5-20 false cars (a track line registered onto grass or a shed
beside the yard), which sets the low side of weak-evidence scenes.

Per-track intervals (``TrackCount.low/high``) apply the same formula and constants to each
track's own evidence (:func:`track_signals`); they were not calibrated separately. On the
tracks of the tuning sets 7001-7003 (20 scenes per fine band each, never used for these
constants) they hold the truth on 97.7 % (<= 0.5 m) and 96.0 % (0.5-1 m) of the tracks,
where the older fixed shares held it on 92.5 % and 87.2 %; mean width (floored at 10 cars)
0.41 -> 0.74 and 0.45 -> 0.85 of the truth. Re-measured after the session-11 constants
(the same tuning tracks, 385 and 352 of them): 97.9 % and 95.5 %, width 0.74
and 0.75.
"""

from __future__ import annotations

import math

import numpy as np

# --- calibration constants (printed by benchmarks/calibrate.py) ----------------------------
# Scale weights per band: (A, B_PACK) on the high side, (A, B_WEAK) on the low.
W_HI = {"fine": (3.0, 0.0), "mid": (0.5, 0.0)}
W_LO = {"fine": (1.0, 1.0), "mid": (1.0, 1.0)}
# Conformal factors per band and evidence stratum ("clean" / "weak", see ``stratum``); the
# high side is one factor for both strata at 0.6-1 m (see benchmarks/calibrate.py: clean
# evidence did not make misses rarer there).
K_HI = {"fine": {"clean": 0.26, "weak": 1.19}, "mid": {"clean": 2.0, "weak": 2.0}}
K_LO = {"fine": {"clean": 0.12, "weak": 0.37}, "mid": {"clean": 0.47, "weak": 0.51}}
# -------------------------------------------------------------------------------------------

# A scene is "clean" when its detections are confident on average and few are weak (hidden
# track is left out: it adds no false cars, and ``hidden_high`` covers it); the low-side margin is calibrated separately for clean and
# weak-evidence scenes (Mondrian split conformal).
CLEAN_MIN_CONF = 0.88
CLEAN_MAX_WEAK_SHARE = 0.1


def stratum(s: dict) -> str:
    """``"clean"`` or ``"weak"``: the evidence class of one scene (from its signals)."""
    c = int(s["count"])
    if c == 0:
        return "weak"  # no detection to vouch for the scene: cars may all have been missed
    weak_share = int(s["weak"]) / c
    ok = float(s["mean_conf"]) >= CLEAN_MIN_CONF and weak_share <= CLEAN_MAX_WEAK_SHARE
    return "clean" if ok else "weak"


def scale_high(s: dict, w) -> float:
    """Upper-side uncertainty scale (cars) of one scene, before the conformal factor.

    ``A + count (1 + B_PACK packing)``: in packed yards (occupied share of the visible
    track) neighbouring cars merge and shade each other, and more of them are missed.
    """
    a, b_pack = w
    c = float(s["count"])
    packing = float(s["occupied_m"]) / max(float(s["visible_m"]), 1.0)
    return a + c * (1.0 + b_pack * packing)


def scale_low(s: dict, w) -> float:
    """Lower-side uncertainty scale (cars): ``A + sure + B_WEAK weak`` (weak detections are
    the likeliest false ones, and many of them mark a scene where false cars arise)."""
    a, b_weak = w
    sure = float(s["count"] - s["weak"])
    return a + sure + b_weak * float(s["weak"])


def _blend(table: dict, gsd: float, key: str | None = None):
    """Band constant at ``gsd``: the 0.3-0.5 m value up to 0.5 m, the 0.6-1 m value from 0.6 m."""
    f = float(np.clip((gsd - 0.5) / 0.1, 0.0, 1.0))
    a, b = table["fine"], table["mid"]
    if key is not None:
        a, b = a[key], b[key]
    return (1.0 - f) * np.asarray(a, float) + f * np.asarray(b, float)


def track_signals(tr: dict, gsd: float) -> dict:
    """The signals of :func:`individual_interval` for one track's result (``count``,
    ``weak``, ``amb``, ``hidden_high``, ``conf``, ``occupied_m``, ``length_m``,
    ``obscured_fraction``), so that a track's interval is built like the scene's."""
    n = int(tr["count"])
    return {"gsd": float(gsd), "count": n, "weak": int(tr["weak"]), "amb": int(tr["amb"]),
            "hidden_high": int(tr["hidden_high"]), "mean_conf": float(np.mean(tr["conf"])) if n else 1.0,
            "occupied_m": float(tr["occupied_m"]),
            "visible_m": float(tr["length_m"]) * (1.0 - float(tr["obscured_fraction"]))}


def individual_interval(s: dict, *, w_hi=None, w_lo=None, k_hi=None, k_lo=None) -> tuple[int, int]:
    """``(low, high)`` of the individual-path count from the scene signals ``s``.

    The keyword options override the calibrated constants (used by the calibration).
    """
    gsd = float(s["gsd"])
    st = stratum(s)
    k_hi = float(_blend(K_HI, gsd, st)) if k_hi is None else k_hi
    k_lo = float(_blend(K_LO, gsd, st)) if k_lo is None else k_lo
    w_hi = _blend(W_HI, gsd) if w_hi is None else w_hi
    w_lo = _blend(W_LO, gsd) if w_lo is None else w_lo
    # Above 1 m (no tuning scenes) a car is < 3 px wide: margins grow with the GSD.
    grow = max(1.0, gsd / 1.0)
    count = int(s["count"])
    sure = count - int(s["weak"])
    low = max(0, sure - int(math.ceil(k_lo * grow * scale_low(s, w_lo) - 1e-9)))
    high = (count + int(s["amb"]) + int(s["hidden_high"])
            + int(math.ceil(k_hi * grow * scale_high(s, w_hi) - 1e-9)))
    return min(low, count), max(high, count)
