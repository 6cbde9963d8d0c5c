"""Coarse-GSD counting (coarser than ~1.2 m): the ``length`` and ``occupancy`` methods.

At 3 m a car is about one pixel wide and five long; at 10 m tracks 5 m apart share pixels,
so cars are not separated one by one. Each track's centre line is resampled here (one
sample per half pixel) together with two samples half way to the neighbouring tracks, and
compared with the empty-track colour:

* **Reference.** The ground beside the bundle never holds a car, so its colour anchors the
  search for the empty ballast among the centre-line samples (mean shift started there);
  each track then takes the nearby mode of its own samples (ballast tone differs from
  track to track). The commonest track colour, the older reference, is only the fallback:
  in a packed yard it is a car.
* **Contrast unit.** The typical change between samples two pixels apart along a track
  (noise and ballast texture); features are first rescaled by the spread of the tracks'
  own samples so that cloud or snow elsewhere in the scene does not squeeze them.
* **Length method (<= 5 m).** Where the ground beside the bundle is unlike its usual
  colour at the same along-bundle position (a building or cloud shadow may cross), a car
  must be a lateral peak: its centre differs from the ballast by more than the mixed
  pixel half way to the next track (shadows are flat across the bundle). Elsewhere the
  test is skipped: side-by-side cars in a packed yard leave no ballast between them and
  are flat across too. A sample must also beat a neighbouring track's car bleeding over.
  Occupied runs of at least 10 m give occupied length / car pitch.
* **Occupancy method (10 m).** The same contrast without the peak test (tracks are not
  resolved); the count is weak evidence.

The scene interval is calibrated on tuning scenes (benchmarks/accuracy_coarse.py, base
seeds 5000-5007 with even seeds to fit and odd ones to check, 5008-5011 and the fixed set
of base seed 1000 as further checks; see benchmarks/heldout/README.md): a multiple of the
count plus a few cars, capped by a capacity bound (and equal to it once the count
suggests a packed yard), plus what hidden length may hold, and never above what the
tracks' own bounds allow together. Its upper side was re-fitted in session 13 on the third
renderer's 3 m scenes as well (``benchmarks/calibrate_coarse.py``). At 10 m the count carries no
information on the yard's packing beyond its size (tuning scenes: correlation of estimated
and true packing ~0), so the interval runs from zero to what the visible track can
physically hold.

No bundle registration is done here: a search of the whole bundle's lateral shift and
rotation against car contrast (lines drawn up to +-5 m off) was tried and made the
3 m counts no better on the tuning scenes (roads, container rows and shadows beside a
yard lure it), at ten times the cost.
"""

from __future__ import annotations

import math

import numpy as np

from geo_evidence.core import _segment
from geo_evidence.core._coarse_frame import bundle_frame
from geo_evidence.core._ribbon import band_scale, sample_grid, to_features

__all__ = ["coarse_tracks"]

#: Half the usual track spacing: where the "between tracks" samples sit (m).
HALF_SPACING_M = 2.5
#: Hysteresis on contrast (in contrast units) and the shortest occupied run (m) at 3-5 m.
Z_LOW, Z_HIGH, MIN_RUN_M = 3.0, 6.0, 10.0
#: Where the ground beside is odd (a shadow may cross), by how much (contrast units) a
#: car's centre must beat the pixels half way to the next track.
PEAK_MARGIN = 1.0
#: The usual packing of the tuning renderers' yards, cars per visible metre (a car of ~15 m
#: pitch on ~65 % of the track; they reach 0.64): the reference of ``PACKED_SHARE``. Until
#: session 12 it was also the 3 m upper bound, which the third renderer's yards, filled to
#: 61-79 %, overran (3 m coverage 0.85 on two of its three tuning sets).
CAP_PER_M = 0.65 / 15.0
#: 3 m scene interval [LO_A * n - LO_C, HI_A * n + HI_C] (calibrated, see module doc:
#: a lower bound above zero lost more coverage than it saved width on the tuning scenes).
#: The upper side (with ``PACKED_SHARE``) was re-fitted in session 13 on both scene styles
#: (``benchmarks/calibrate_coarse.py``): 1.5 n + 15 at a packed share of 0.15, fitted to
#: the mix alone, held the truth on 88 % of the third renderer's check scenes (its 3 m
#: counts run low); 2.5 n + 10 at 0.08 holds 92.5 % of them and 99 % of the mix's (97.5 %
#: before), for a mean width 2 % (third) and 15 % (mix) larger there. An empty-looking
#: yard gets a narrower bound (10 cars, not 15).
LO_A, LO_C, HI_A, HI_C = 0.0, 0.0, 2.5, 10.0
#: Upper bound at 3 m and 10 m: what the visible track can physically hold, cars end to
#: end on 85 % of it at a 15 m pitch. (Until session 12 the 10 m bound was 0.8 of
#: ``CAP_PER_M``'s, fitted to the two tuning renderers, whose yards are never filled
#: beyond ~60 % of their track; the third renderer's yards, filled to 61-79 %, fell
#: outside it on 15-25 % of the 10 m scenes.)
FULL_PER_M = 0.85 / 15.0
#: Above this share of the capacity the 3 m upper bound is the capacity (packed yards:
#: the tuning scenes hold packed yards counted at 15-20 % of their capacity, and the third
#: renderer's at a tenth or less; re-fitted with ``HI_A``, ``HI_C`` in session 13).
PACKED_SHARE = 0.08


def coarse_tracks(per, names, a, gsd, p, method, *, ctx=None):
    """Per-track counts with a scene interval by the ``length`` or ``occupancy`` method.

    Parameters
    ----------
    per : list of dict
        One entry per track, as sampled by :func:`~geo_evidence.core.count_railcars`:
        ``xy`` (S, 2) and ``nrm`` (S, 2) centre-line samples and normals, ``F`` (S, 1, C)
        features there, ``usable`` (S,) bool, ``excl`` (S,) bool (excluded length).
    names : list of str
        Track names.
    a : float
        Along-track sample step (m).
    gsd : float
        Ground sample distance (m).
    p : CountParams
        Counter settings (``car_pitch_m``).
    method : {"length", "occupancy"}
    ctx : dict, optional
        The raw inputs (``bands``, ``transform``, ``lines``, ``usable_at``); without them
        only the centre samples in ``per`` are used (no between-track test, no ground
        beside the bundle).

    Returns
    -------
    (track_results, detections, scene_interval)
        ``track_results``: list of dicts (``name``, ``count``, ``low``, ``high``,
        ``length_m``, ``obscured_fraction``, ``occupied_m``, ``hidden_high``);
        ``detections``: always empty (cars are not resolved one by one);
        ``scene_interval``: ``(low, high)`` for the whole scene.
    """
    if ctx is not None:
        per = _resample(per, ctx)
    else:
        per = [dict(q) for q in per]
    refs, unit, shade = _references(per, ctx, a, gsd)
    pitch = p.car_pitch_m
    for t, q in enumerate(per):
        c = q["F"][:, 0, :]
        use = q["usable"] & np.isfinite(c).all(1)
        d = np.sqrt(((np.where(use[:, None], c, refs[t]) - refs[t]) ** 2).sum(1))
        if method == "length" and q["F"].shape[1] > 1 and shade is not None:
            # A car is a lateral peak: its centre differs from the ballast at least as
            # much as the mixed pixel half way to the nearer-looking neighbour. Shadows of
            # buildings and clouds, platforms and ground cover are flat across the
            # bundle; a car between two occupied tracks still beats the one of its two
            # sides that is least like a car.
            dm = np.sqrt(((q["F"][:, 1:, :] - refs[t]) ** 2).sum(-1))
            dm = np.where(np.isfinite(dm), dm, 0.0).min(1)
            d = np.where((d >= dm + PEAK_MARGIN * unit) | ~_beside_odd(q["xy"], shade), d, 0.0)
        z = np.where(use, d / unit, 0.0)
        if method == "length":
            occ = _segment.occupied_mask(z, use, step=a, lo=Z_LOW, hi=Z_HIGH, close_m=1.5 * gsd, min_run_m=MIN_RUN_M)
        else:
            occ = _segment.occupied_mask(z, use, step=a, lo=Z_LOW, hi=Z_HIGH, close_m=gsd, min_run_m=gsd)
        q["z"], q["occ"] = z, occ
    if method == "length":
        _suppress_neighbours(per)

    raw_n, track_results = [], []
    hidden_total = visible_total = occ_total = 0.0
    for t, q in enumerate(per):
        length, obsc = _segment.track_lengths(q, a)
        occ_m = float(q["occ"].sum() * a)
        # A run is blurred by about half a pixel at each end.
        n = sum(max((s1 - s0) * a - 0.5 * gsd, 0.0) for s0, s1 in _segment.runs_of(q["occ"])) / pitch
        visible, hidden = length * (1 - obsc), length * obsc
        raw_n.append(n)
        visible_total += visible
        hidden_total += hidden
        occ_total += occ_m
        track_results.append({"name": names[t], "length_m": length, "obscured_fraction": obsc, "occupied_m": occ_m,
                              "visible_m": visible, "hidden_m": hidden})
    counts = _round_preserving_sum(np.array(raw_n))
    for tr, n in zip(track_results, counts):
        lo_t, hi_t = _interval(int(n), tr.pop("visible_m"), tr.pop("hidden_m"), occ_total, visible_total, method)
        tr.update(count=int(n), low=lo_t, high=hi_t, hidden_high=0)
    scene = _interval(int(counts.sum()), visible_total, hidden_total, occ_total, visible_total, method)
    # The yard holds no more than its tracks together can: where a few tracks carry the
    # count, the scene's bound (a multiple of the whole count) could exceed the sum of the
    # tracks' own bounds, each capped at what that track can hold.
    scene = (scene[0], max(min(scene[1], sum(tr["high"] for tr in track_results)), int(counts.sum())))
    return track_results, [], scene


def _interval(n: int, visible_m: float, hidden_m: float, occ_m: float, yard_visible_m: float, method: str):
    """``(low, high)`` for ``n`` cars counted on ``visible_m`` of track with ``hidden_m`` hidden.

    At 3 m the count misses or adds up to about half of the cars, and in packed or
    shadowed yards much more (tuning scenes, base seeds 5000-5011: signed error
    (count - truth) / max(truth, 10) from -0.68 to +1.07 between the 10th and 90th
    percentile). The band runs from ``LO_A`` times the count to ``HI_A`` times it plus
    ``HI_C`` cars, never above what the visible track can hold (``FULL_PER_M``), and is
    that itself once the count reaches ``PACKED_SHARE`` of the usual capacity
    (``CAP_PER_M``). At 10 m the band runs from zero to what
    the visible track can hold (``FULL_PER_M``). Under cloud or nodata may stand as
    many cars per metre as were seen in the clear part (plus a margin), so hidden length
    widens the upper bound.
    """
    cap = CAP_PER_M * visible_m
    full = FULL_PER_M * visible_m
    if method == "length":
        low = max(0, int(math.floor(LO_A * n - LO_C)))
        high = int(math.ceil(min(HI_A * n + HI_C, full)))
        if n >= PACKED_SHARE * cap:
            # A yard counted at a sixth of its usual capacity or more may be packed: side-
            # by-side cuts of mixed colours make the contrast unit itself large, and cars
            # coloured like ballast (flat cars) vanish, so only what the track can hold
            # bounds it.
            high = int(math.ceil(full))
    else:
        low = 0
        high = int(math.ceil(FULL_PER_M * visible_m))
    if hidden_m > 1.0:
        occ_frac = occ_m / yard_visible_m if yard_visible_m > 0 else 0.0
        high += int(math.ceil(hidden_m * min(1.0, occ_frac + 0.35) / 13.0))
    return min(low, n), max(high, n)


def _beside_odd(xy: np.ndarray, shade, *, bin_m: float = 6.0) -> np.ndarray:
    """Whether the ground beside the bundle, at the same along-bundle position (+-1 bin),
    looks unlike its usual colour; only there may a flat dark patch be a shadow."""
    odd, centre, u = shade
    if len(odd) == 0:
        return np.zeros(len(xy), bool)
    b_odd = np.floor((odd - centre) @ u / bin_m).astype(np.int64)
    b = np.floor((xy - centre) @ u / bin_m).astype(np.int64)
    flagged = np.unique(np.concatenate([b_odd - 1, b_odd, b_odd + 1]))
    return np.isin(b, flagged)


def _round_preserving_sum(x: np.ndarray) -> np.ndarray:
    """Integers per track whose sum is the rounded sum of ``x`` (largest remainders)."""
    total = int(round(float(x.sum())))
    base = np.floor(x).astype(int)
    rest = total - int(base.sum())
    if rest > 0:
        base[np.argsort(-(x - base))[:rest]] += 1
    return base


def _resample(per, ctx):
    """Centre-line samples plus two half way to the neighbouring tracks, as features."""
    offs = np.array([0.0, -HALF_SPACING_M, HALF_SPACING_M])
    out, raws = [], []
    for q in per:
        grid = q["xy"][:, None, :] + q["nrm"][:, None, :] * offs[None, :, None]
        raw = sample_grid(ctx["bands"], ctx["transform"], grid)
        raw[~ctx["usable_at"](grid)] = np.nan
        raw[~q["usable"]] = np.nan
        out.append(dict(q))
        raws.append(raw)
    pooled = np.concatenate([r[q["usable"], 0] for r, q in zip(raws, out)])
    lo, hi = band_scale(pooled) if len(pooled) else (np.zeros(raws[0].shape[-1]), np.ones(raws[0].shape[-1]))
    for q, raw in zip(out, raws):
        q["F"] = to_features(raw, lo, hi, log=False)
    ctx["_scale"] = (lo, hi)
    return out


def _mean_shift(x: np.ndarray, start: np.ndarray, bw: float, iters: int = 8) -> tuple[np.ndarray, float]:
    """Mean shift of ``start`` over the points ``x`` (N, C); returns the mode reached and
    the share of points within two bandwidths of it."""
    m = np.asarray(start, float)
    if len(x) == 0:
        return m, 0.0
    x = x[:: max(1, len(x) // 2000)]
    for _ in range(iters):
        w = np.exp(-0.5 * ((x - m) ** 2).sum(1) / bw**2)
        if w.sum() < 1e-6:
            break
        m = (x * w[:, None]).sum(0) / w.sum()
    return m, float((((x - m) ** 2).sum(1) < (2 * bw) ** 2).mean())


def _references(per, ctx, a, gsd, *, beside_m=(7.0, 9.0, 11.0)):
    """Empty-track colour of every track and the contrast unit; rescales ``F`` in place.

    See the module docstring. Where the ground-anchored mode would call most of the yard
    occupied (ground and ballast unlike, a platform beside the tracks), or nothing on the
    tracks resembles the ground, the commonest track colour is taken instead.
    """
    nch = per[0]["F"].shape[-1]
    pooled = np.vstack([q["F"][:, 0, :][q["usable"]] for q in per])
    pooled = pooled[np.isfinite(pooled).all(1)]
    if len(pooled) < 20:
        return [np.zeros(nch)] * len(per), 1.0, None
    scale = 1.0 / max(float(np.percentile(pooled[:, 0], 95) - np.percentile(pooled[:, 0], 5)), 1e-3)
    for q in per:
        q["F"] = q["F"] * scale
    pooled = pooled * scale
    lag = max(int(round(2 * gsd / a)), 1)
    diffs = []
    for q in per:
        c = q["F"][:, 0, :]
        dd = np.sqrt(((c[lag:] - c[:-lag]) ** 2).sum(1))
        diffs.append(dd[np.isfinite(dd)])
    dd = np.concatenate(diffs)
    unit = max(float(np.median(dd)) / math.sqrt(2.0) if dd.size > 10 else 0.05, 0.02)
    bw = 1.5 * unit
    mode_c, _ = _segment.mode_vector(pooled, bandwidth=bw)
    cands = []
    shade = None
    if ctx is not None:
        # The ground colour needs no fine sampling: a sample every 4 m or so.
        fr = bundle_frame(ctx["lines"], max(2 * a, 4.0))
        pts = []
        for d in beside_m:
            pts.append(fr["xy"][~fr["left"]] + fr["nv"][~fr["left"]] * d)
            pts.append(fr["xy"][~fr["right"]] - fr["nv"][~fr["right"]] * d)
        g = np.vstack(pts)
        g = g[ctx["usable_at"](g)]
        if len(g) >= 10:
            lo, hi = ctx["_scale"]
            fg = to_features(sample_grid(ctx["bands"], ctx["transform"], g), lo, hi, log=False) * scale
            fin = np.isfinite(fg).all(1)
            g, fg = g[fin], fg[fin]
            if len(fg) >= 10:
                start, _ = _segment.mode_vector(fg, bandwidth=bw)
                m, share = _mean_shift(pooled, start, bw)
                if share >= 0.1:
                    cands.append(m)
                # Ground beside the bundle that is far from its own usual colour: a
                # shadow, cloud shadow, building or road there.
                odd = np.sqrt(((fg - start) ** 2).sum(1)) > Z_HIGH * unit
                shade = (g[odd], fr["centre"], fr["u"])
    cands.append(mode_c)
    yard = mode_c
    for m in cands:
        if float((np.sqrt(((pooled - m) ** 2).sum(1)) > Z_LOW * unit).mean()) <= 0.7:
            yard = m
            break
    refs = []
    for q in per:
        c = q["F"][:, 0, :][q["usable"]]
        c = c[np.isfinite(c).all(1)]
        m, sh = _mean_shift(c, yard, bw)
        # Ballast tone differs by up to ~15 % between tracks (about a fifth of the
        # scaled range): a track's own mode within that reach replaces the yard's.
        refs.append(m if sh >= 0.15 and np.sqrt(((m - yard) ** 2).sum()) < max(2 * bw, 0.25) else yard)
    return refs, unit, shade


def _suppress_neighbours(per, *, reach_m=7.5, ratio=0.6):
    """Drop occupied samples whose contrast is a neighbouring track's car bleeding over.

    At 3 m a car's blur reaches the next track's centre line (5 m, under two pixels away)
    with a fraction of its contrast; a sample is kept only where its own contrast is at
    least ``ratio`` of the strongest contrast on another track beside it.
    """
    xy = np.vstack([q["xy"] for q in per])
    z = np.concatenate([q["z"] for q in per])
    tid = np.concatenate([np.full(len(q["xy"]), k) for k, q in enumerate(per)])
    from scipy.spatial import cKDTree  # lazy: scipy.spatial costs ~0.2 s at CLI start-up

    pairs = cKDTree(xy).query_pairs(reach_m, output_type="ndarray")
    if not len(pairs):
        return
    i, j = pairs[:, 0], pairs[:, 1]
    other = tid[i] != tid[j]
    i, j = i[other], j[other]
    zmax = np.zeros(len(z))
    np.maximum.at(zmax, i, z[j])
    np.maximum.at(zmax, j, z[i])
    keep = z >= ratio * zmax
    k0 = 0
    for q in per:
        n = len(q["xy"])
        q["occ"] = q["occ"] & keep[k0:k0 + n]
        k0 += n
