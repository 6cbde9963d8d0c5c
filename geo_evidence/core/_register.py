"""Global registration of the track lines to the image.

Track centre lines from OpenStreetMap-like sources are often misregistered by several metres,
about one yard track spacing (~5 m), and slightly rotated. Aligning each track on its own
would snap it onto its neighbour, so we estimate ONE shift (dx, dy) and rotation for the
whole AOI, scoring all tracks at once: the yard's edge tracks and curved ladders break the
periodicity that a single straight track cannot. Only then is a small per-track lateral
refinement allowed.

The evidence is a per-sample "track-ness" profile across each track: a pair of opposite
lateral edges ~3.2 m apart (a car body, also a ballast bed), plus a uniform-body term that tells
a car from the gap between two neighbouring cars. (A rail-pair term was tried and
dropped: it pulled the fit towards rotations.) Profiles are summed over ~20 m chunks; a candidate transform moves each
chunk laterally by ``normal . (d + theta * J(p - c))``, so scoring thousands of candidates is
one gather over a (candidates, chunks) array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from geo_evidence.core._geometry import resample_line
from geo_evidence.core._ribbon import band_scale, sample_grid, to_features


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


def _pair_score(F: np.ndarray, h: float, centres_idx: np.ndarray, half: float, span: float, mode: str) -> np.ndarray:
    """Score of a symmetric feature pair at +-half around each centre offset index."""
    k = max(int(round(span / h)), 1)
    m = int(round(half / h))
    if mode == "edge":
        D = F[:, 2 * k :, :] - F[:, : -2 * k, :]  # derivative centred at index i + k
        Dpad = np.full_like(F, np.nan)
        Dpad[:, k:-k, :] = D
    else:  # ridge / valley: second difference
        Dpad = np.full_like(F, np.nan)
        Dpad[:, k:-k, :] = 2 * F[:, k:-k, :] - F[:, 2 * k :, :] - F[:, : -2 * k, :]
    left = Dpad[:, centres_idx - m, :]
    right = Dpad[:, centres_idx + m, :]
    prod = np.nansum(left * right, axis=-1)
    if mode == "edge":
        prod = -prod  # a body has opposite edges: up then down, or down then up
    return np.sqrt(np.clip(prod, 0.0, None))


def _body_score(F: np.ndarray, h: float, centres_idx: np.ndarray) -> np.ndarray:
    """Uniform ~2 m body centred at each offset, contrasting with the strips at +-2.2 m.

    Unlike the edge pair, this tells a 3.2 m car (uniform inside) from the 1.8 m gap
    between two neighbouring cars (a car edge, ground, another car edge inside).
    """
    F = np.nan_to_num(F)
    cs = np.concatenate([np.zeros_like(F[:, :1]), np.cumsum(F, axis=1)], axis=1)
    cs2 = np.concatenate([np.zeros_like(F[:, :1]), np.cumsum(F * F, axis=1)], axis=1)
    n = cs.shape[1] - 1

    def box(c, centre, half):
        k = max(int(round(half / h)), 0)
        lo = np.clip(centre - k, 0, n)
        hi = np.clip(centre + k + 1, 0, n)
        return (c[:, hi, :] - c[:, lo, :]) / np.maximum(hi - lo, 1)[None, :, None]

    m_in = box(cs, centres_idx, 1.0)
    v_in = np.clip(box(cs2, centres_idx, 1.0) - m_in**2, 0, None)
    d = int(round(2.2 / h))
    m_out = 0.5 * (box(cs, centres_idx - d, 0.3) + box(cs, centres_idx + d, 0.3))
    diff = np.sqrt(((m_in - m_out) ** 2).sum(-1))
    return np.clip(diff - 1.5 * np.sqrt(v_in.sum(-1)), 0, None)


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
    centres_idx = np.arange(len(o_centres)) + n_pad

    chunk_S, chunk_p, chunk_n, chunk_t = [], [], [], []
    samples = []
    for t, line in enumerate(lines):
        s, xy, nrm = resample_line(line, step_along)
        samples.append((s, xy, nrm))
    # One scale for all tracks.
    raw_all = []
    for t, (s, xy, nrm) in enumerate(samples):
        grid = xy[:, None, :] + nrm[:, None, :] * o_full[None, :, None]
        raw = sample_grid(bands, transform, grid)
        if valid_fn is not None:
            bad = ~valid_fn(grid)
            raw[bad] = np.nan
        raw_all.append(raw)
    lo, hi = band_scale(np.concatenate([r.reshape(-1, r.shape[-1]) for r in raw_all]))
    for t, (s, xy, nrm) in enumerate(samples):
        F = to_features(raw_all[t], lo, hi)
        sc = _pair_score(F, h, centres_idx, half_car, max(0.5, h, 0.75 * gsd), "edge")
        if body_weight:
            sc = sc + body_weight * _body_score(F, h, centres_idx)
        sc = np.nan_to_num(sc)
        chunk = (s // 20.0).astype(int)
        nch = chunk.max() + 1
        # Per-chunk sums via a cumulative sum over the sorted chunk ids.
        starts = np.searchsorted(chunk, np.arange(nch))
        S = np.add.reduceat(sc, starts, axis=0)
        cnt = np.bincount(chunk, minlength=nch)
        P = np.add.reduceat(xy, starts, axis=0)
        Nn = np.add.reduceat(nrm, starts, axis=0)
        P /= cnt[:, None]
        Nn /= np.maximum(np.hypot(Nn[:, 0], Nn[:, 1]), 1e-9)[:, None]
        ok = S.sum(axis=1) > 0
        chunk_S.append(S[ok])
        chunk_p.append(P[ok])
        chunk_n.append(Nn[ok])
        chunk_t.append(np.full(ok.sum(), t))
    S = np.vstack(chunk_S)
    if len(S) == 0 or S.sum() <= 0:
        return identity(T, centre)
    # Each chunk votes with at most one unit (Hough-like): the many chunks that agree
    # outvote a few high-contrast distractors (a road with trucks, a shed roof), and
    # chunks with only noise are scaled down against the typical chunk.
    peak = S.max(axis=1)
    S = S / np.maximum(peak, np.percentile(peak, 75))[:, None]
    P = np.vstack(chunk_p) - centre
    N = np.vstack(chunk_n)
    tk = np.concatenate(chunk_t)
    a = N[:, 0] * (-P[:, 1]) + N[:, 1] * P[:, 0]
    o0 = o_centres[0]
    nO = len(o_centres)

    def score(cands, Sx, extra=None):
        off = cands[:, 0:1] * N[:, 0] + cands[:, 1:2] * N[:, 1] + cands[:, 2:3] * a
        if extra is not None:
            off = off + extra
        fi = (off - o0) / h
        i0 = np.floor(fi).astype(np.int64)
        w = fi - i0
        ok = (i0 >= 0) & (i0 < nO - 1)
        # One flat gather per neighbour (cheaper than 2-D fancy indexing).
        flat = np.clip(i0, 0, nO - 2) + (np.arange(len(N)) * nO)[None, :]
        Sr = Sx.ravel()
        v = Sr[flat] * (1 - w) + Sr[flat + 1] * w
        return np.where(ok, v, 0.0)

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

    tot = np.concatenate([score(g[i : i + 2000], Sc).sum(axis=1) for i in range(0, len(g), 2000)])
    tot = tot * prior(g)
    # Keep the best few distinct coarse cells: the coarse grid can rank the true cell
    # below a wrong one when the true optimum falls between grid points.
    order = np.argsort(tot)[::-1]
    best = []
    for i in order:
        c = g[i]
        if all(np.hypot(*(c[:2] - b[:2])) > 1.5 or abs(c[2] - b[2]) > 1e-9 for b in best):
            best.append(c)
        if len(best) >= 5:
            break
    dth = (th1[1] - th1[0]) if nth > 1 else 0.0
    fine = []
    for b in best:
        dd = np.arange(-1.0, 1.0 + 1e-9, 0.25)
        tt = b[2] + np.linspace(-dth, dth, 9) if dth else np.zeros(1)
        fine.append(np.stack(np.meshgrid(b[0] + dd, b[1] + dd, tt, indexing="ij"), -1).reshape(-1, 3))
    fine = np.vstack(fine)
    Sf = gaussian_filter1d(S, 0.25 / h, axis=1)
    ftot = score(fine, Sf).sum(axis=1) * prior(fine)
    bi = int(np.argmax(ftot))
    bc = fine[bi]
    base0 = score(np.zeros((1, 3)), Sf).sum()
    # Per-track lateral refinement, small and penalised so a lone track does not wander.
    per = np.zeros(T)
    deltas = np.arange(-per_track_m, per_track_m + 1e-9, h)
    # All tracks and all deltas in one gather: (deltas, chunks), summed per track.
    extra = np.repeat(deltas[:, None], len(N), axis=1)
    vals_dk = np.vstack([score(bc[None, :], Sf, extra=extra[i : i + 1])[0] for i in range(len(deltas))])
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
