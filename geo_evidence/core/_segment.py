"""Along-track car-ness, occupied runs and the split of runs into cars.

Everything here works on 1-D along-track arrays of one track (vectorised with numpy); the
only Python loops run over the few occupied runs and over coupler candidates inside a run.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_closing, binary_opening, gaussian_filter1d, label, maximum_filter1d, minimum_filter1d


def nan_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 that ignores NaNs (normalised convolution)."""
    if sigma < 0.3:
        return x
    ok = np.isfinite(x)
    v = np.where(ok, x, 0.0)
    if ok.ndim == 2 and ok.shape[1] > 1 and (ok == ok[:, :1]).all():
        # Every column has the same gaps (the channels of one profile, the offsets of a
        # ribbon away from cloud and image edges): their weights are one column's.
        w = gaussian_filter1d(ok[:, :1].astype(np.float64), sigma, axis=0, mode="nearest")
    else:
        w = gaussian_filter1d(ok.astype(np.float64), sigma, axis=0, mode="nearest")
    v = gaussian_filter1d(v.astype(np.float64), sigma, axis=0, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = v / w
    out[np.broadcast_to(w < 1e-3, out.shape)] = np.nan
    return out


def mode_vector(r: np.ndarray, *, bandwidth: float, max_n: int = 1000, refine: int = 0, floor: float = 0.02,
                first: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, float]:
    """The densest point of a cloud of feature vectors (N, C) and the cloud's spread there.

    Empty ballast is one tight cluster; cars scatter over many colours, so the mode is the
    empty-track appearance even when much of the track is occupied.

    The spread is measured within 2.5 bandwidths of the mode, so a bandwidth much wider than
    the cluster takes in whatever lies near it. On a packed track whose cars look close to
    its ballast (loaded gondolas in a shaded yard, four fifths of the track occupied), the
    first estimate was twice the spread of the empty samples, and every car's contrast half
    what it is. ``refine`` repeats the search that many times with the bandwidth narrowed to
    the spread found / 1.5 or half the bandwidth, whichever is narrower (never below
    ``floor``), which settles on the tight cluster. Until session 12 a spread over 1.5
    bandwidths was left as it was (narrowing then, applied to every track, had added false
    cars in sparse yards); on the tracks that get here (fewer than three quarters of their
    samples alike, see ``_api._individual``) that left the noise of the third renderer's
    packed yards at 2-3x that of their empty samples. Narrowing by half as well, tuning
    sets 7001-7006 and 7101-7103: <= 0.5 m F1 0.927 -> 0.930 and 0.956 -> 0.956 (mix),
    0.766 -> 0.807 (third); 0.6-1 m 0.806 -> 0.812 (mix), 0.661 -> 0.699 (third).

    ``first``, when the caller has it, is what this call returns with ``refine=0`` (same
    ``r``, ``bandwidth`` and ``max_n``): the refinement starts from it instead of
    searching the same cloud again.
    """
    r = r[np.isfinite(r).all(axis=1)]
    if len(r) == 0:
        return np.zeros(r.shape[1]), bandwidth
    sub = r[:: max(1, len(r) // max_n)]
    if first is not None:
        m, spread = first
    else:
        cand = sub[:: max(1, len(sub) // 60)]
        d = _pair_distances(cand, sub)
        # exp(-0.5 (d / bandwidth)^2), in place on the (candidates, samples) plane.
        d /= bandwidth
        np.square(d, out=d)
        d *= -0.5
        dens = np.exp(d, out=d).sum(axis=1)
        m = cand[int(np.argmax(dens))]
        for _ in range(3):  # mean-shift refinement
            dd = np.sqrt(((sub - m) ** 2).sum(-1))
            w = np.exp(-0.5 * (dd / bandwidth) ** 2)
            m = (sub * w[:, None]).sum(0) / max(w.sum(), 1e-9)
        dd = np.sqrt(((sub - m) ** 2).sum(-1))
        near = dd[dd < 2.5 * bandwidth]
        spread = float(np.median(near)) * 1.25 if len(near) > 10 else bandwidth
    if refine:
        narrower = max(min(spread / 1.5, 0.5 * bandwidth), floor)
        if narrower < bandwidth:
            return mode_vector(r, bandwidth=narrower, max_n=max_n, refine=refine - 1, floor=floor)
    return m, spread


def _pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) between the rows of ``a`` and ``b`` (N, C).

    Built channel by channel on contiguous (len(a), len(b)) planes: the broadcast
    ``a[:, None, :] - b[None, :, :]`` over rows of a few values and the reduction of its
    short last axis cost three times as much. Bit for bit the result of
    ``np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))``: numpy sums a short last
    axis from left to right, as the loop below does (tests/test_core_segment.py checks it).
    """
    d = np.subtract.outer(a[:, 0], b[:, 0])
    np.square(d, out=d)
    for k in range(1, a.shape[1]):
        dk = np.subtract.outer(a[:, k], b[:, k])
        np.square(dk, out=dk)
        d += dk
    return np.sqrt(d, out=d)


def track_lengths(q: dict, step: float) -> tuple[float, float]:
    """Analysed length of a track (m) and the share of it hidden by cloud, nodata or the edge.

    ``q`` holds the track's along-track masks ``excl`` (length not analysed: switches,
    excluded polygons) and ``usable`` (seen: inside the image, no cloud, no nodata).
    """
    n_an = int((~q["excl"]).sum())
    length = n_an * step
    obsc = 1.0 - q["usable"].sum() / n_an if n_an else 0.0
    return length, float(obsc)


def runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of True runs, stop exclusive."""
    if not mask.any():
        return []
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def hysteresis_1d(z: np.ndarray, lo: float, hi: float) -> np.ndarray:
    weak = z > lo
    lab, n = label(weak)
    if n == 0:
        return weak
    strong = np.zeros(n + 1, bool)
    strong[np.unique(lab[z > hi])] = True
    strong[0] = False
    return strong[lab]


def occupied_mask(z: np.ndarray, usable: np.ndarray, *, step: float, lo: float, hi: float,
                  close_m: float, min_run_m: float) -> np.ndarray:
    occ = hysteresis_1d(np.where(usable, z, 0.0), lo, hi)
    k = max(int(round(close_m / step)), 1)
    if k > 1:
        occ = binary_closing(np.pad(occ, k), structure=np.ones(k, bool))[k:-k]
    kk = max(int(round(0.6 / step)), 1)
    if kk > 1:
        occ = binary_opening(occ, structure=np.ones(kk, bool))
    out = np.zeros_like(occ)
    for a, b in runs_of(occ):
        if (b - a) * step >= min_run_m:
            out[a:b] = True
    return out


def length_penalty(ell: np.ndarray) -> np.ndarray:
    """Cost of a car of length ell (m): zero for ordinary freight cars, growing outside.

    Ordinary runs from 11 m (a short tank) to 21 m: container flats are 19.6 m and six-axle
    locomotives ~21 m, while no two coupled cars are shorter than ~24 m. With the upper
    knee at 17.5 m these long cars were cut in two at their middle (the gap between two
    containers, a locomotive's roof equipment): on tuning sets 7001-7006, moving the knee
    to 20.5 m raised precision by 1-2.5 points at <= 1 m at the same recall, and 22 m
    scored as 20.5 m did (within 0.3 points); 21 m sits between them.
    """
    ell = np.asarray(ell, float)
    pen = (np.maximum(11.0 - ell, 0.0) / 1.2) ** 2 + (np.maximum(ell - 21.0, 0.0) / 2.5) ** 2
    return np.where(ell > 38.0, 1e6, pen)


def split_run(gap: np.ndarray, step: float, *, cut_weight: float = 4.0, cut_threshold: float = 0.35,
              min_len: float = 6.0, max_len: float = 38.0) -> list[tuple[int, int]]:
    """Split one occupied run into cars by dynamic programming over coupler candidates.

    ``gap`` (n,) scores in [0, 1] how much each sample looks like a coupler gap (a dip in
    car-ness or a change of colour). The best split trades the gap evidence at each cut
    against how plausible each piece's length is as a car.
    """
    n = len(gap)
    L = n * step
    if L < 2 * min_len:
        return [(0, n)]
    # Candidate cuts: clear gap peaks, plus a coarse grid so a run with no visible coupler
    # can still be cut where the length prior demands it.
    w = max(int(round(1.0 / step)), 1)
    peak = (gap >= maximum_filter1d(gap, 2 * w + 1, mode="nearest") - 1e-12) & (gap > 0.2)
    grid = np.zeros(n, bool)
    grid[:: max(int(round(2.0 / step)), 1)] = True
    pos = np.flatnonzero(peak | grid)
    pos = pos[(pos > 0) & (pos < n)]
    xs = np.concatenate([[0], pos, [n]])
    gs = np.concatenate([[0.0], gap[pos], [0.0]])
    M = len(xs)
    best = np.full(M, -np.inf)
    back = np.zeros(M, int)
    best[0] = 0.0
    x_m = xs * step
    lo_idx = np.searchsorted(x_m, x_m - max_len, side="left")
    hi_idx = np.searchsorted(x_m, x_m - min_len, side="right")
    # The length penalty of every piece (j, i) the loop below weighs, in one call: cut i's
    # pieces are pen[first[i]:first[i + 1]], for j from lo_idx[i] up.
    cnt = np.maximum(hi_idx - lo_idx, 0)
    first = np.concatenate([[0], np.cumsum(cnt)])
    ii = np.repeat(np.arange(M), cnt)
    pen = length_penalty(x_m[ii] - x_m[np.arange(first[-1]) - first[ii] + lo_idx[ii]])
    for i in range(1, M):
        j0, j1 = lo_idx[i], hi_idx[i]
        if j1 <= j0:
            continue
        cand = best[j0:j1] - pen[first[i]:first[i + 1]]
        j = int(np.argmax(cand))
        if not np.isfinite(cand[j]):
            continue
        gain = cut_weight * (gs[i] - cut_threshold) if i < M - 1 else 0.0
        best[i] = cand[j] + gain
        back[i] = j0 + j
    if not np.isfinite(best[-1]):
        return [(0, n)]
    cuts = []
    i = M - 1
    while i > 0:
        j = back[i]
        cuts.append((int(xs[j]), int(xs[i])))
        i = j
    return cuts[::-1]


def gap_score(z: np.ndarray, colour: np.ndarray, *, step: float, sigma: float,
              change_m: tuple[float, float] = (0.3, 3.0)) -> np.ndarray:
    """Coupler-gap evidence in [0, 1]: a dip in car-ness or a change of colour.

    The colour change at a sample compares the mean colour from ``change_m[0]`` to
    ``change_m[1]`` metres before it with the same stretch after it. Over a few metres the
    texture inside a car (ore heaps, tarp folds, roof ribs) averages out, while a change
    from one car to the next does not. Compared point to point at +-1 m, every heap flank
    of a loaded gondola was as strong a "change" as a coupler in a clean image: cuts of
    gondolas and container flats were split off their couplers, between heaps, and some
    of their cars were counted twice. On tuning sets 7001-7006 (120 scenes at <= 0.5 m) the windowed
    change took the share of scenes counted within 5 % from 61 % to 65 %, precision +0.8
    points, recall -0.3, type accuracy +1.6; neutral at 0.6-1 m. ``(1.0, 1.0)`` gives the
    point-to-point change, which still sees that texture.
    """
    w = max(int(round(1.5 / step)), 1)
    # The dip must be flanked by car on both sides.
    zl = maximum_filter1d(z, w, origin=(w - 1) // 2, mode="nearest")
    zr = maximum_filter1d(z, w, origin=-((w - 1) // 2), mode="nearest")
    flank = np.minimum(zl, zr)
    dip = np.clip((flank - z) / np.maximum(flank, 1e-6), 0, 1)
    k = max(int(round(1.0 / step)), 1)
    k0 = max(int(round(change_m[0] / step)), 1)
    k2 = max(int(round(change_m[1] / step)), k0)
    cs = np.cumsum(np.pad(colour, ((k2 + 1, k2), (0, 0)), mode="edge"), axis=0)
    i = np.arange(len(colour)) + k2 + 1  # sample i's row in the padded array
    before = (cs[i - k0] - cs[i - k2 - 1]) / (k2 - k0 + 1)
    after = (cs[i + k2] - cs[i + k0 - 1]) / (k2 - k0 + 1)
    change = np.sqrt(((after - before) ** 2).sum(-1)) / max(sigma, 1e-6)
    # Colour change is broad (over +-k); keep only its local maxima so the cut lands on the edge.
    is_peak = change >= maximum_filter1d(change, 2 * k + 1, mode="nearest") - 1e-9
    change = np.clip(change / 8.0, 0, 1)
    change = np.where(is_peak, change, change * 0.5)
    # A coupler gap is a narrow line across the track (ballast or shadow between two car
    # ends), darker or brighter than both neighbours: a thin valley/ridge of ~1 m.
    kk = max(int(round(0.9 / step)), 1)
    lum = colour[:, 0]
    lp = np.pad(lum, kk, mode="edge")
    left_v, right_v = lp[: -2 * kk], lp[2 * kk :]
    valley = np.minimum(left_v - lum, right_v - lum)
    ridge = np.minimum(lum - left_v, lum - right_v)
    thin = np.clip(np.maximum(valley, ridge) / max(sigma, 1e-6) / 6.0, 0, 1)
    thin = np.where(thin >= maximum_filter1d(thin, 2 * kk + 1, mode="nearest") - 1e-9, thin, 0.0)
    return np.maximum(np.maximum(dip, 0.8 * change), thin)


def local_min(x: np.ndarray, size: int) -> np.ndarray:
    return minimum_filter1d(x, size, mode="nearest")


_UNSET = object()


def step_profile(c: np.ndarray, usable: np.ndarray, *, step: float, w_m: float = 2.0):
    """The along-track step strength of :func:`step_segments` and its typical level.

    Returns ``(d, med, mad, ok)``: per sample, how far the mean colour over ``w_m`` before
    it lies from the mean over ``w_m`` after it (0 where either window is not fully
    usable), the median and robust deviation of that strength over the samples where it
    is defined, and which samples are usable; ``None`` where the track is too short or
    too little of it is usable to tell.
    """
    n = len(c)
    w = max(int(round(w_m / step)), 2)
    if n < 4 * w:
        return None
    ok = usable & np.isfinite(c).all(axis=1)
    v = np.where(ok[:, None], c, 0.0)
    cs = np.vstack([np.zeros((1, c.shape[1])), np.cumsum(v, axis=0)])
    cn = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(w, n - w + 1)
    nl = cn[i] - cn[i - w]
    nr = cn[i + w] - cn[i]
    full = (nl == w) & (nr == w)
    ml = (cs[i] - cs[i - w]) / w
    mr = (cs[i + w] - cs[i]) / w
    d = np.zeros(n)
    d[i] = np.where(full, np.sqrt(((ml - mr) ** 2).sum(axis=1)), 0.0)
    dv = d[i][full[: len(i)]]
    if dv.size < 40:
        return None
    med = float(np.median(dv))
    mad = float(np.median(np.abs(dv - med))) * 1.4826
    return d, med, mad, ok


def step_segments(c: np.ndarray, usable: np.ndarray, *, step: float, w_m: float = 2.0,
                  min_len_m: float = 10.5, max_len_m: float = 22.5, k: float = 8.0,
                  profile=_UNSET) -> list[tuple[int, int]]:
    """Stretches bounded by sharp along-track steps at both ends, one car long.

    A car's ends are abrupt changes of tone or colour along the track, even when its body
    is close to the ballast in tone (a pale flat car, a car standing in a neighbour's
    shadow): the mean colour over ``w_m`` before a sample differs from the mean over
    ``w_m`` after it. Step strength is compared with its own typical level on this track
    (median plus ``k`` robust deviations), so the test adapts to the image's noise and
    texture. Returns (start, stop) sample pairs between consecutive steps whose length
    fits one freight car; whether they hold a car is left to the caller.

    ``profile``: what :func:`step_profile` returns for these ``c``, ``usable``, ``step``
    and ``w_m``, when the caller has it already (a track is searched with two ``k``).
    """
    if profile is _UNSET:
        profile = step_profile(c, usable, step=step, w_m=w_m)
    if profile is None:
        return []
    d, med, mad, ok = profile
    thr = med + k * max(mad, 1e-6)
    m = max(int(round(1.5 / step)), 1)
    peaks = np.flatnonzero((d >= thr) & (d >= maximum_filter1d(d, 2 * m + 1, mode="nearest") - 1e-12))
    if len(peaks) < 2:
        return []
    ell = np.diff(peaks) * step
    sel = np.flatnonzero((ell >= min_len_m) & (ell <= max_len_m))
    # Every sample of the stretch must be usable: a cloud edge is a step too.
    seg = [(int(peaks[j]), int(peaks[j + 1])) for j in sel]
    return [(s0, s1) for s0, s1 in seg if ok[s0:s1].all()]
