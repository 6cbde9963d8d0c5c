"""Global registration of the track lines to the image.

Track centre lines from OpenStreetMap-like sources are often misregistered by several metres,
about one yard track spacing (~5 m), and slightly rotated. Aligning each track on its own
would snap it onto its neighbour, so we estimate ONE shift (dx, dy) and rotation for the
whole AOI, scoring all tracks at once: the yard's edge tracks and curved ladders break the
periodicity that a single straight track cannot. Only then is a small per-track lateral
refinement allowed.

The evidence is a per-sample "track-ness" profile across each track: a pair of opposite
lateral edges ~3.2 m apart (a car body, also a ballast bed), plus a uniform-body term that tells
a car from the gap between two neighbouring cars. (A rail-pair term was tried twice and
dropped: at <= 0.5 m the 7 cm rail heads are blurred into the ballast, and even a chunk-mean
ridge pair on a 0.25 m sub-ribbon did not change a single registration.) Profiles are
summed over ~20 m chunks; a candidate transform moves each chunk laterally by
``normal . (d + theta * J(p - c))``, so scoring thousands of candidates is one gather over a
(candidates, chunks) array.

Each chunk then casts a VOTE, not its raw score: its profile measured against its own
background and noise, saturating at one unit for a clearly significant peak (see
:func:`_votes`). A flat, bright, 4 m platform beside the yard has a much stronger edge pair
than an empty track (faint ballast and sleepers), so with raw or peak-scaled scores the map
slips one track spacing onto the platform; with votes, an empty track that stands out
clearly from its own chunk's background counts as much as the platform, and the small-shift
prior breaks the tie. (Known gap: an empty bed with well under 1/4 of the platform's contrast
stays below saturation and can still lose; a width or texture term would be needed, and it
must not trip on dark cars with their shadows, which look as wide and flat as a platform.)

The search is coarse to fine: the full coarse grid ranked on chunk groups of ~60 m (profiles
upsampled to h/8, read by nearest index), the best coarse cells re-scored exactly on the 20 m
chunks, then the fine grid around the best few. All tracks' ribbons are sampled in one call;
features are computed channel-first, in float32, on blocks of samples. The result is the same
registration as the exhaustive coarse grid at about a third of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

from geo_evidence.core._geometry import resample_line
from geo_evidence.core._ribbon import band_scale, ribbon_pixels, sample_pixels, to_features

#: Upsampling of the chunk-group profiles for the nearest-index coarse ranking (<= h / 16).
_UP = 8
#: Chunks per group in the coarse pass, and how many coarse cells are re-scored exactly.
_GROUP = 3
_RESCORE = 256
#: A chunk's vote reaches one unit at this many noise units above its background; a
#: chunk's noise is at least this share of the scene's typical chunk noise.
_VOTE_SAT = 4.0
_FLOOR = 0.25
#: Prior against large shifts when choosing between distinct registration hypotheses.
_SMALL_SHIFT_PRIOR = 0.08
#: Ribbon samples per block when computing the track-ness profiles.
_ROWS = 512


@dataclass
class Registration:
    shift: np.ndarray  # (2,) metres
    theta: float  # radians, about ``centre``
    centre: np.ndarray
    per_track: np.ndarray  # (T,) lateral offsets, metres
    score_gain: float

    def apply(self, xy: np.ndarray, normal: np.ndarray, track: int) -> np.ndarray:
        rel = xy - self.centre
        rot = np.stack([-rel[:, 1], rel[:, 0]], axis=-1) * self.theta
        return xy + self.shift + rot + normal * self.per_track[track]


def identity(n_tracks: int, centre: np.ndarray) -> Registration:
    return Registration(np.zeros(2), 0.0, centre, np.zeros(n_tracks), 0.0)


def _edge_pair_score(F: np.ndarray, h: float, c0: int, nc: int, half: float, span: float) -> np.ndarray:
    """Opposite lateral edges at +-half around each centre offset (a body ``2 * half`` wide).

    ``F`` is channel-first (channels, samples, offsets); the centres are offsets
    ``c0 .. c0 + nc - 1``. Returns (samples, nc).
    """
    k = max(int(round(span / h)), 1)
    m = int(round(half / h))
    # Derivative centred at offset i: F[i + k] - F[i - k]; read at centre -+ m.
    left = F[:, :, c0 - m + k : c0 - m + k + nc] - F[:, :, c0 - m - k : c0 - m - k + nc]
    right = F[:, :, c0 + m + k : c0 + m + k + nc] - F[:, :, c0 + m - k : c0 + m - k + nc]
    # A body has opposite edges: up then down, or down then up. Off-image or masked samples
    # (NaN in every channel) count as no evidence.
    prod = -np.einsum("cij,cij->ij", left, right)
    np.nan_to_num(prod, copy=False)
    np.clip(prod, 0.0, None, out=prod)
    return np.sqrt(prod, out=prod)


def _body_score(F: np.ndarray, h: float, c0: int, nc: int) -> np.ndarray:
    """Uniform ~2 m body centred at each offset, contrasting with the strips at +-2.2 m.

    Unlike the edge pair, this tells a 3.2 m car (uniform inside) from the 1.8 m gap
    between two neighbouring cars (a car edge, ground, another car edge inside).
    ``F`` and the centres as in :func:`_edge_pair_score`.
    """
    F = np.nan_to_num(F)

    def box_mean(x, half):
        # Mean over offsets [i - k, i + k] around every offset i. The ribbon's padding keeps
        # every box read below inside the ribbon, so the filter's edge mode never matters.
        return uniform_filter1d(x, 2 * max(int(round(half / h)), 0) + 1, axis=2)

    at = slice(c0, c0 + nc)
    m_in = box_mean(F, 1.0)[:, :, at]
    v_in = np.clip(box_mean(F * F, 1.0)[:, :, at] - m_in**2, 0, None)
    d = int(round(2.2 / h))
    strip = box_mean(F, 0.3)
    m_out = 0.5 * (strip[:, :, c0 - d : c0 - d + nc] + strip[:, :, c0 + d : c0 + d + nc])
    diff = np.sqrt(((m_in - m_out) ** 2).sum(0))
    return np.clip(diff - 1.5 * np.sqrt(v_in.sum(0)), 0, None)


def _votes(S: np.ndarray) -> np.ndarray:
    """Per-chunk track-ness profiles (chunks, offsets) -> votes in [0, 1].

    Each chunk is measured against its own background (the median over its offsets: most of
    a ribbon is ground, ballast or the gap between tracks) in units of its own noise (the
    median absolute deviation), and its vote saturates at one unit for a clearly significant
    peak. Why: the registration must find where the TRACKS are, and every track is a
    line-shaped feature of about car width whatever its contrast. A brighter or sharper
    feature (a concrete platform, a road, a shed roof) is not more of a track than a faint
    empty one, so strength beyond clear significance must not buy votes; what decides is how
    many chunks agree. (The earlier scaling by the chunk's own peak gave an empty track's
    faint bed a fraction of a vote whenever a platform lay in the same ribbon.)
    """
    base = np.median(S, axis=1, keepdims=True)
    spread = np.median(np.abs(S - base), axis=1, keepdims=True)
    # A chunk that is mostly masked (cloud, nodata) has almost no spread: its noise is
    # judged against the scene's typical chunk instead, not blown up into full votes.
    # (Typical among the chunks with any spread at all: in a cloudy scene most chunks may
    # be half masked, with a median spread of zero.)
    some = spread[spread > 0]
    typical = float(np.median(some)) if some.size else 1.0
    spread = np.maximum(spread, _FLOOR * typical)
    z = (S - base) / np.maximum(spread, 1e-9)
    return np.clip(z / _VOTE_SAT, 0.0, 1.0)


class _Scorer:
    """Sums of chunk votes under candidate transforms ``(dx, dy, theta)``.

    A chunk moves laterally by ``off = dx * n_x + dy * n_y + theta * a``; its vote is read
    from its profile by linear interpolation (offsets outside the ribbon score nothing).
    With ``up``, the profiles are upsampled ``up`` times once (the same linear
    interpolation) and read by nearest index instead: one gather and no weights per
    (candidate, chunk), for the large coarse grid, whose ranking only picks cells to re-score.
    """

    def __init__(self, S: np.ndarray, N: np.ndarray, a: np.ndarray, o0: float, h: float, up: int = 0):
        K, nO = S.shape
        self.h, self.up, self.o0, self.nO = h, up, o0, nO
        step = h / up if up else h
        if up:
            pos = np.arange((nO - 1) * up + 1) / up
            i0 = np.minimum(pos.astype(np.int64), nO - 2)
            w = (pos - i0).astype(np.float32)
            S = S[:, i0] * (1 - w) + S[:, i0 + 1] * w
        # A zero column at both ends: clipped out-of-ribbon indices read nothing.
        self.n = S.shape[1] + 2
        table = np.zeros((K, self.n), np.float32)
        table[:, 1:-1] = S
        self.table = table.ravel()
        self.nx = (N[:, 0] / step).astype(np.float32)
        self.ny = (N[:, 1] / step).astype(np.float32)
        self.a = (a / step).astype(np.float32)
        self.step = step
        # Table index 1 is offset o0 (and +0.5 rounds in the nearest-index mode).
        self.base = np.float32(1.0 - o0 / step + (0.5 if up else 0.0))
        self.row = (np.arange(K) * self.n).astype(np.int64)

    def per_chunk(self, cands: np.ndarray, extra: float = 0.0) -> np.ndarray:
        """Votes of every chunk under each candidate: (C, K) float32.

        ``extra`` moves every chunk that many metres more along its own normal.
        """
        c = cands.astype(np.float32)
        # fi = dx n_x + dy n_y + theta a + base, on one (candidates, chunks) plane and a
        # second for the terms.
        fi = np.multiply(c[:, 0:1], self.nx)
        term = np.multiply(c[:, 1:2], self.ny)
        fi += term
        fi += np.multiply(c[:, 2:3], self.a, out=term)
        fi += self.base + np.float32(extra / self.step)
        i0 = np.floor(fi)
        idx = i0.astype(np.int64)
        if self.up:
            np.clip(idx, 0, self.n - 1, out=idx)
            idx += self.row
            return np.take(self.table, idx)
        # Outside the ribbon (the first real entry to the last one, exclusive, as before
        # the padding) nothing is read.
        out = (idx < 1) | (idx >= self.n - 2)
        np.clip(idx, 0, self.n - 2, out=idx)
        idx += self.row
        # v = table[idx] (1 - w) + table[idx + 1] w with w = fi - i0, in place: the
        # (candidates, chunks) temporaries are what this costs.
        w = np.subtract(fi, i0, out=fi)
        v = np.take(self.table, idx)
        v *= np.subtract(1, w, out=i0)
        idx += 1
        v1 = np.take(self.table, idx)
        v1 *= w
        v += v1
        v[out] = 0.0
        return v

    def total(self, cands: np.ndarray, batch: int = 256) -> np.ndarray:
        # Batches of a few hundred candidates keep the (candidates, chunks) temporaries
        # small enough to be reused from batch to batch (each candidate's sum is its own).
        if not len(cands):
            return np.zeros(0)
        return np.concatenate([self.per_chunk(cands[i : i + batch]).sum(axis=1, dtype=np.float64)
                               for i in range(0, len(cands), batch)])


def _groups(track_of_chunk: np.ndarray, size: int) -> np.ndarray:
    """Group ids joining ``size`` consecutive chunks of the same track."""
    starts = np.flatnonzero(np.r_[True, track_of_chunk[1:] != track_of_chunk[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(track_of_chunk)]))
    key = (np.arange(len(track_of_chunk)) - first) // size
    new = np.r_[True, (key[1:] != key[:-1]) | (track_of_chunk[1:] != track_of_chunk[:-1])]
    return np.cumsum(new) - 1


def register(bands, transform, lines, *, gsd: float, search_m: float = 7.0, max_rotation_deg: float = 1.5,
             per_track_m: float = 1.5, body_weight: float = 0.0, valid_fn=None) -> Registration:
    """Estimate the global shift/rotation (and per-track lateral offsets) of the track lines."""
    allxy = np.vstack(lines)
    centre = allxy.mean(axis=0)
    T = len(lines)
    step_along = max(2.0, gsd)
    h = 0.25 if gsd < 0.45 else 0.5
    half_car = 1.6
    # Lateral reach from rotation: grows with the distance from the AOI centre.
    rmax = float(np.max(np.hypot(*(allxy - centre).T)))
    reach = min(search_m + rmax * np.deg2rad(max_rotation_deg), 16.0)
    R = reach + per_track_m
    o_centres = np.arange(-R, R + h / 2, h)
    pad = half_car + 1.5
    o_full = np.arange(-R - pad, R + pad + h / 2, h)
    n_pad = int(round(pad / h))

    samples = [resample_line(line, step_along) for line in lines]
    # All tracks' ribbons in one sampling call, one scale for all tracks.
    px = [ribbon_pixels(transform, xy, nrm, o_full) for _, xy, nrm in samples]
    col, row = np.concatenate([c for c, _ in px]), np.concatenate([r for _, r in px])
    raw = sample_pixels(bands, col, row)
    if valid_fn is not None:
        # The counter's own mask reads the ribbon's pixel coordinates (``pixels``); any
        # other callable gets the map points.
        if hasattr(valid_fn, "pixels"):
            ok = valid_fn.pixels(col, row)
        else:
            grid = [xy[:, None, :] + nrm[:, None, :] * o_full[None, :, None] for _, xy, nrm in samples]
            ok = valid_fn(np.concatenate(grid))
        raw[~ok] = np.nan
    lo, hi = band_scale(raw.reshape(-1, raw.shape[-1]))
    # Track-ness per sample, one block of samples at a time: every term works within a
    # sample's own row of offsets, and per block the feature planes stay small enough to
    # be reused rather than mapped afresh (the whole ribbon's are tens of megabytes).
    def trackness(block):
        # Channel-first: every term below works along the offsets of contiguous rows.
        F = np.ascontiguousarray(np.moveaxis(to_features(block, lo, hi), -1, 0))
        if h < 0.45 or (F.shape[0] == 1 and gsd <= 0.55):
            # Below ~0.45 m the rails of an empty track are resolved: thin lateral lines inside
            # the bed, not edges of a car-wide feature, yet they fill the edge-pair profile with
            # responses and break the body term's uniformity, so the bed scores no better than
            # its own edge beside bare ground (empty test-renderer yards at 0.3 m slipped ~3.5 m
            # in 12 of 17). A lateral median over ~1.2 m removes them and keeps the edges of
            # anything wider. (Tried at 0.5 m as well: it fixed 3 of 14 empty 0.5 m yards but
            # made the 0.5 m sample scenes worse, e.g. 2024-06-17 254 -> 248 of 261 cars.)
            # Panchromatic imagery gets it up to 0.55 m: there brightness is all there is, and
            # the rails, still resolved at 0.5 m, pull the lines ~3 m sideways into the gap
            # between two beds (test-renderer 4-track yards: 4 of 8 slipped, none with it);
            # in colour the chroma channels show the bed without its rails.
            F = median_filter(F, size=(1, 1, 2 * int(round(0.6 / h)) + 1), mode="nearest")
        sc = _edge_pair_score(F, h, n_pad, len(o_centres), half_car, max(0.5, h, 0.75 * gsd))
        if body_weight:
            sc = sc + body_weight * _body_score(F, h, n_pad, len(o_centres))
        return np.nan_to_num(sc)

    sc = np.concatenate([trackness(raw[i:i + _ROWS]) for i in range(0, len(raw), _ROWS)])

    # Per-chunk sums (20 m chunks, numbered per track).
    bounds = np.cumsum([0] + [len(s) for s, _, _ in samples])
    chunk_ids = np.concatenate([(s // 20.0).astype(np.int64) + 0 for s, _, _ in samples])
    track_of = np.repeat(np.arange(T), np.diff(bounds))
    offs = np.cumsum([0] + [int(chunk_ids[bounds[t]:bounds[t + 1]].max()) + 1 for t in range(T)])
    gid = chunk_ids + offs[track_of]
    starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]])
    S = np.add.reduceat(sc, starts, axis=0)
    xy_all = np.concatenate([xy for _, xy, _ in samples])
    nrm_all = np.concatenate([nrm for _, _, nrm in samples])
    cnt = np.diff(np.r_[starts, len(gid)])
    P = np.add.reduceat(xy_all, starts, axis=0) / cnt[:, None]
    Nn = np.add.reduceat(nrm_all, starts, axis=0)
    Nn /= np.maximum(np.hypot(Nn[:, 0], Nn[:, 1]), 1e-9)[:, None]
    tk = track_of[starts]
    ok = S.sum(axis=1) > 0
    S, P, Nn, tk = S[ok], P[ok], Nn[ok], tk[ok]
    if len(S) == 0 or S.sum() <= 0:
        return identity(T, centre)
    S = _votes(S)
    P = P - centre
    N = Nn
    a = N[:, 0] * (-P[:, 1]) + N[:, 1] * P[:, 0]
    o0 = o_centres[0]

    theta_max = np.deg2rad(max_rotation_deg)
    amax = max(float(np.abs(a).max()), 1.0)
    # Coarse pass on smoothed profiles.
    Sc = gaussian_filter1d(S, 0.6 / h, axis=1)
    d1 = np.arange(-search_m, search_m + 1e-9, 1.0)
    nth = int(min(2 * np.ceil(theta_max * amax / 1.0) + 1, 41))
    th1 = np.linspace(-theta_max, theta_max, nth) if nth > 1 else np.zeros(1)
    g = np.stack(np.meshgrid(d1, d1, th1, indexing="ij"), -1).reshape(-1, 3)

    def prior(c):
        # The search is a disc of radius ``search_m``: the square grid's corners (up to
        # 1.4x farther) are allowed only on much stronger evidence.
        dn = np.hypot(c[:, 0], c[:, 1])
        return (1.0 - 0.01 * dn / search_m - 0.03 * np.abs(c[:, 2]) / max(theta_max, 1e-9)
                - 0.08 * np.clip(dn - search_m, 0.0, None))

    coarse = _Scorer(Sc, N, a, o0, h)
    # The full coarse grid first on ~60 m chunk groups (a 20 m chunk's offset differs from
    # its group's by at most theta * 20 m, well inside the coarse smoothing), then the best
    # cells again on the 20 m chunks themselves: the same ranking at a third of the cost.
    grp = _groups(tk, _GROUP)
    gs = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]])
    gcnt = np.diff(np.r_[gs, len(grp)])
    if len(gs) < len(grp) and len(g) > _RESCORE:
        Pg = np.add.reduceat(P, gs, axis=0) / gcnt[:, None]
        Ng = np.add.reduceat(N, gs, axis=0)
        Ng /= np.maximum(np.hypot(Ng[:, 0], Ng[:, 1]), 1e-9)[:, None]
        ag = Ng[:, 0] * (-Pg[:, 1]) + Ng[:, 1] * Pg[:, 0]
        approx = _Scorer(np.add.reduceat(Sc, gs, axis=0), Ng, ag, o0, h, up=_UP).total(g) * prior(g)
        keep = np.argpartition(approx, -_RESCORE)[-_RESCORE:]
        g = g[keep]
    tot = coarse.total(g) * prior(g)
    # Keep the best few distinct coarse cells: the coarse grid can rank the true cell
    # below a wrong one when the true optimum falls between grid points.
    order = np.argsort(tot, kind="stable")[::-1]
    best = []
    for i in order:
        c = g[i]
        if all(np.hypot(*(c[:2] - b[:2])) > 1.5 or abs(c[2] - b[2]) > 1e-9 for b in best):
            best.append(c)
        if len(best) >= 5:
            break

    def lateral(c):
        # How far each chunk moves across its track under the transform ``c``.
        return c[0] * N[:, 0] + c[1] * N[:, 1] + c[2] * a

    # Those five may all be one placement of the tracks: along a straight yard a shift
    # along the tracks changes no chunk's lateral position and a rotation step moves them
    # little, so cells far apart in (dx, dy, theta) can lie on the same lattice position.
    # The best cells of up to five DISTINCT lateral placements (some chunk moved more
    # than 1.5 m) are compared as well, so the choice between lattice positions below
    # always sees the alternatives (tuning scene 7001016 at 0.5 m: all five on the slip
    # one spacing onto a platform, the true placement never refined).
    placed = []
    for i in order:
        c = g[i]
        lat = lateral(c)
        if all(np.max(np.abs(lat - other)) > 1.5 for other in placed):
            placed.append(lat)
            if not any(np.array_equal(c, b) for b in best):
                best.append(c)
        if len(placed) >= 5:
            break
    dth = (th1[1] - th1[0]) if nth > 1 else 0.0
    dd = np.arange(-1.0, 1.0 + 1e-9, 0.25)
    tt = np.linspace(-dth, dth, 9) if dth else np.zeros(1)
    local = np.stack(np.meshgrid(dd, dd, tt, indexing="ij"), -1).reshape(-1, 3)
    fine = np.vstack([b[None, :] + local for b in best])
    Sf = gaussian_filter1d(S, 0.25 / h, axis=1)
    fscorer = _Scorer(Sf, N, a, o0, h)
    ftot = fscorer.total(fine) * prior(fine)
    bi = int(np.argmax(ftot))
    # Tracks repeat every ~5 m, so a misregistration of about one spacing leaves all but
    # the outer tracks on beds again, and at 0.6-1 m, where an empty bed barely stands out,
    # the evidence for two such lattice positions can be tied within a few per cent. Real
    # track lines are more often a little off than far off: between DISTINCT hypotheses
    # (chunks moved more than 1.5 m apart; within one hypothesis the fine position is left
    # to the evidence alone) the choice is weighed by a prior that falls by 8 % at the
    # edge of the search disc. On tuning scenes this fixed 3 slipped registrations and
    # broke 1 true 4.5 m shift, of about 320.
    blk = ftot.reshape(len(best), len(local))
    loc = blk.argmax(axis=1)
    cand = fine.reshape(len(best), len(local), 3)[np.arange(len(best)), loc]
    weighed = blk.max(axis=1) * (1.0 - _SMALL_SHIFT_PRIOR * (np.hypot(cand[:, 0], cand[:, 1]) / search_m) ** 2)
    k = int(np.argmax(weighed))

    if np.max(np.abs(lateral(cand[k]) - lateral(fine[bi]))) > 1.5:
        bi = k * len(local) + int(loc[k])
    bc = fine[bi]
    base0 = fscorer.total(np.zeros((1, 3)))[0]
    # Per-track lateral refinement, small and penalised so a lone track does not wander.
    per = np.zeros(T)
    deltas = np.arange(-per_track_m, per_track_m + 1e-9, h)
    # All deltas at once: a lateral delta is a shift along each chunk's own normal.
    vals_dk = np.vstack([fscorer.per_chunk(bc[None, :], extra=float(dl))[0] for dl in deltas])
    for t in range(T):
        sel = tk == t
        if sel.sum() < 2:
            continue
        vals = vals_dk[:, sel].sum(axis=1) * (1 - 0.08 * np.abs(deltas) / per_track_m)
        k = int(np.argmax(vals))
        at0 = vals[int(np.argmin(np.abs(deltas)))]
        # Only move a track on clear evidence of its own (a car under it), never because a
        # neighbour's car edge sits just beside it.
        if vals[k] > 1.15 * at0:
            per[t] = deltas[k]
    gain = float(ftot[bi] / max(base0, 1e-9))
    return Registration(np.array(bc[:2], float), float(bc[2]), centre, per, gain)
