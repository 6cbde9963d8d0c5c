"""Type guess for one detected car from its length, colour and across/along-track texture."""

from __future__ import annotations

import numpy as np

CAR_TYPES = ("box", "tank", "gondola", "flat", "hopper", "locomotive", "unknown")


def track_feature_sums(F: np.ndarray, offsets: np.ndarray) -> dict:
    """Per-sample across-track features of a whole track, as cumulative sums.

    A car's features are then differences of cumulative sums over its sample range, so
    describing every car costs O(1) each, not a pass over its pixels.
    """
    import warnings

    lum = F[..., 0]
    ao = np.abs(offsets)

    def band(sel):
        if not sel.any():
            return np.zeros(len(F))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nan_to_num(np.nanmean(lum[:, sel], axis=1))

    h = float(np.min(np.diff(offsets))) if len(offsets) > 1 else 1.0
    mid = band(ao <= max(0.35, h / 2 + 1e-6))
    flank = band((ao > 0.5) & (ao <= 1.2))
    rim = band((ao > 1.1) & (ao <= 1.6))
    inner = band(ao <= 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        body = np.nan_to_num(np.nanmean(F[:, ao <= 1.2, :], axis=1))
    along = band(ao <= 1.1)
    cols = np.column_stack([mid - flank, rim - inner, along, along**2, body])
    return {"cum": np.vstack([np.zeros((1, cols.shape[1])), np.cumsum(cols, axis=0)]), "F": F, "offsets": offsets}


def car_features(sums: dict, i0: int, i1: int, bg: np.ndarray, sigma: float) -> dict:
    """Features of the car spanning samples [i0, i1) of a track.

    Tone features come from the cumulative sums; when ``sums`` carries the track's feature
    array (``F``, ``offsets``, as :func:`track_feature_sums` returns), shape features of
    the car's own ribbon are added (:func:`_shape_features`): they compare parts of the
    car with each other, so they do not depend on the paint or the ground.
    """
    n = max(i1 - i0, 1)
    m = (sums["cum"][i1] - sums["cum"][i0]) / n
    stripe, rim, al, al2 = m[0], m[1], m[2], m[3]
    body = m[4:]
    sig = max(sigma, 1e-6)
    along_tex = float(np.sqrt(max(al2 - al * al, 0.0))) / sig
    chroma = float(np.sqrt(np.sum(body[1:] ** 2))) if body.size > 1 else 0.0
    out = {"stripe": float(stripe) / sig, "rim": float(rim) / sig, "lum": float(body[0] - bg[0]) / sig,
           "chroma": chroma, "along_tex": along_tex}
    if sums.get("F") is not None and i1 - i0 >= 8:
        out.update(_shape_features(sums["F"][i0:i1, :, 0], sums["offsets"], float(bg[0]), sig))
    return out


def _shape_features(L: np.ndarray, offsets: np.ndarray, bg: float, sig: float) -> dict:
    """Cross-section and along-track shape of one car from its luminance ribbon.

    ``L`` is (samples, offsets) log-luminance of the car's samples, ``bg`` the empty-track
    reference, ``sig`` the yard's noise. The car's median cross-section is first centred
    (registration leaves the car up to ~0.75 m off the track line: the centre is where
    the two body edges 3.2 m apart are strongest) and oriented (sun side first: the side
    whose outer strip is not in the car's own shadow). Returned, in units of ``sig``
    (``*_r``: relative to the car's own contrast, so paint and ground do not matter):

    - ``peak``: a narrow bright line inside the body above the body's median (the
      specular line along a tank's barrel, wherever the sun puts it across the barrel);
    - ``dip``: a dark line along the middle, darker than both sides (a hopper's hatch);
    - ``asym``: the sun-side half of the body minus the anti-sun half (a cylinder or a
      pitched roof is lit on one flank; a flat roof or an open top is not);
    - ``wall``: the body's edge band brighter than its inside (an open top's walls
      around a darker load; negative for eaves or a bare deck beside a load);
    - ``ends``: how far the first and last sixth of the car differ from its middle;
    - ``step``: the largest along-track step between neighbouring 2 m stretches inside
      the car (container ends, a gap between two containers);
    - ``tex``: along-track texture of the body (ore heaps, containers, hatches);
    - ``xtex``: texture inside the body left after the mean cross-section (a patchy
      load; a painted roof is smooth).
    """
    n, k = L.shape
    e = max(n // 6, 1)
    h = float(np.min(np.diff(offsets))) if k > 1 else 1.0
    ok = np.isfinite(L)
    if not ok.all():
        # Cloud or nodata inside the ribbon: fill with the column's mean (or the
        # reference) once, so every statistic below is a plain one.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            colm = np.nanmean(L, axis=0)
        colm = np.where(np.isfinite(colm), colm, bg)
        L = np.where(ok, L, colm[None, :])

    def mean(x: np.ndarray, default: float = np.nan) -> float:
        # NaN where a band holds no offset at this GSD: the feature then reads 0 below.
        return float(x.mean()) if x.size else default

    core = L[e:n - e] if n - 2 * e >= 4 else L
    P = np.median(core, axis=0) - bg
    # Centre: the offset whose two body edges (+-1.6 m) carry the largest gradient.
    G = np.abs(np.gradient(P, h)) if k > 2 else np.zeros(k)
    cands = offsets[np.abs(offsets) <= 0.75]
    if len(cands) == 0:
        cands = np.array([0.0])
    score = np.interp(cands - 1.6, offsets, G) + np.interp(cands + 1.6, offsets, G)
    c = float(cands[int(np.argmax(score))])
    rel = offsets - c
    # Orient: negative relative offsets on the sun side (its outer strip is lit; the
    # other one holds the car's own shadow).
    if mean(P[rel <= -2.0]) < mean(P[rel >= 2.0]):
        rel = -rel
    # Body width: the strongest edge on either side, refined to a fraction of a step
    # (a container on a flat is 2.4 m wide, a tank's barrel ~3.0 m, a box car 3.2 m).
    width = _edge(G, rel, 0.9, 2.3) + _edge(G, -rel, 0.9, 2.3)
    ar = np.abs(rel)
    body = ar <= 1.2
    inner = ar <= 0.9
    if not inner.any():
        inner = ar <= ar.min()
    med = float(np.median(P[body])) if body.any() else 0.0
    peak = float(P[ar <= 1.1].max()) - med if (ar <= 1.1).any() else 0.0
    centre = mean(P[ar <= max(0.3, h / 2 + 1e-6)])
    # Darker than BOTH sides: a hatch line between two lit slopes (a barrel's shaded
    # flank is dark on one side only).
    dip = float(np.minimum(mean(P[(rel <= -0.55) & (rel >= -0.95)]), mean(P[(rel >= 0.55) & (rel <= 0.95)]))) - centre
    wall = mean(P[(ar >= 1.1) & (ar <= 1.5)]) - float(np.median(P[inner]))
    asym = mean(P[(rel < -0.3) & (rel >= -1.2)]) - mean(P[(rel > 0.3) & (rel <= 1.2)])
    ground = mean(P[rel <= -2.0], 0.0)
    A = L[:, inner].mean(axis=1) - bg
    mid = A[e:n - e] if n - 2 * e >= 4 else A
    mmid = float(mid.mean())
    ends = max(abs(float(A[:e].mean()) - mmid), abs(float(A[n - e:].mean()) - mmid))
    # Steps along the car: means of neighbouring windows (~2 m: a seventh of a car),
    # ignoring a window at either end where the car meets its coupler gap.
    w = max(n // 7, 2)
    cs = np.concatenate([[0.0], np.cumsum(A)])
    pos = np.arange(w + w // 2, n - w - w // 2 + 1)
    step = float(np.max(np.abs((cs[pos] - cs[pos - w]) - (cs[pos + w] - cs[pos])) / w)) if len(pos) else 0.0
    tex = float(mid.std())
    # Heaps of a bulk load: 2-4 humps along the car (the loading points), as a share of
    # the along-track variance left after a linear trend, and as an amplitude.
    m = max(n // 12, 1)
    B = A[m:n - m] if n - 2 * m >= 8 else np.zeros(8)
    x = np.arange(len(B)) - (len(B) - 1) / 2.0
    B = B - B.mean()
    B = B - x * (float(x @ B) / float(x @ x))
    pw = np.abs(np.fft.rfft(B * np.hanning(len(B)))) ** 2
    heaps = float(pw[2:5].sum() / (pw[1:].sum() + 1e-12))
    heaps_amp = float(np.sqrt(pw[2:5].sum() / len(B)))
    # Texture inside the body beyond its mean cross-section and mean along profile.
    R = core[:, inner]
    xtex = float((R - R.mean(axis=0) - R.mean(axis=1, keepdims=True) + R.mean()).std())
    contrast = max(abs(med - ground), abs(med), float(P[body].std()) if body.any() else 0.0, sig)
    vals = {"peak": peak, "dip": dip, "asym": asym, "wall": wall, "ends": ends, "step": step, "tex": tex,
            "xtex": xtex, "med": med}
    vals = {key: (v if np.isfinite(v) else 0.0) for key, v in vals.items()}
    out = {key: v / sig for key, v in vals.items()}
    out.update({key + "_r": v / contrast for key, v in vals.items() if key != "med"})
    out["heaps"] = heaps
    out["heaps_amp"] = heaps_amp / sig
    out["centre_m"] = c
    out["width_m"] = float(width)
    return out


def _edge(G: np.ndarray, r: np.ndarray, lo: float, hi: float) -> float:
    """Distance from the car's centre to its strongest edge at ``lo <= r <= hi``.

    ``G`` is the gradient magnitude of the cross-section at relative offsets ``r``; the
    maximum is refined by a parabola through it and its neighbours.
    """
    idx = np.flatnonzero((r >= lo) & (r <= hi))
    if len(idx) == 0:
        return 1.6
    j = int(idx[np.argmax(G[idx])])
    if 0 < j < len(G) - 1:
        a, b, c = G[j - 1], G[j], G[j + 1]
        den = a - 2 * b + c
        d = 0.5 * (a - c) / den if den < 0 else 0.0
        step = r[j + 1] - r[j] if r[j + 1] != r[j] else 1.0
        return float(r[j] + np.clip(d, -0.5, 0.5) * step)
    return float(r[j])


def classify(length_m: float, feats: dict, *, gsd: float) -> str:
    """Rule-based type guess; ``unknown`` when the evidence does not single one out.

    See :func:`decide` for the cues, in the order they are tried.
    """
    return decide(length_m, feats, gsd=gsd)[0]


def decide(length_m: float, feats: dict, *, gsd: float) -> tuple[str, str]:
    """The type guess and the name of the cue that decided it.

    Physical cues first (an open top's walls, a tank's specular line, a hopper's hatch
    line, blocks of load along a flat), length next, paint never. Thresholds are in units
    of the yard's noise; they were set on the tuning scenes (benchmarks/car_types.py).
    """
    if gsd > 1.2:
        return "unknown", "coarse"
    g = lambda k, d=0.0: float(feats.get(k, d))  # noqa: E731
    ell = length_m
    peak, stripe, rim, dip, asym = g("peak"), g("stripe"), g("rim"), g("dip"), g("asym")
    tex, step, step_r, tex_r = g("tex"), g("step"), g("step_r"), g("tex_r")
    lum, xtex_r = g("lum"), g("xtex_r")
    if rim >= 6.0:
        return "gondola", "walls"  # an open top: walls much brighter than the load inside
    # Blocks of load change the body's tone along the car (tex); a single strong step
    # with a smooth body either side is more often a coupler or a neighbour's end inside a
    # detection that straddles two cars (tuning sets 7001-7006: tank, hopper and box cars
    # so straddled made more than half of this cue's guesses).
    if step >= 12.0 and step_r >= 0.9 and (peak < 3.0 or step >= 15.0) and tex >= 4.0:
        return "flat", "blocks"  # a step along the car as strong as the car itself: container ends
    # A faint line (under 4 noise units) on a car longer than tank cars usually are is
    # more often a box car's roof ridge than a barrel's specular line.
    if peak >= 3.0 and rim < 3.0 and (peak >= 4.0 or ell < 15.0):
        return "tank", "specular"  # a narrow bright line along a barrel
    if dip >= 1.0:
        return "hopper", "hatch"  # a dark hatch line along the middle, lit slopes either side
    if g("heaps") >= 0.7 and g("heaps_amp") >= 1.5:
        return "gondola", "heaps"  # two to four humps along the car: a heaped bulk load
    if asym <= -1.5 or (rim >= 3.0 and asym <= -1.0):
        # The sun-side half of the body darker than the other: the sun-side wall of an
        # open top shades the load inside (a roof or a barrel is lit on that side).
        if rim <= -3.4 and stripe <= 0.4 and xtex_r <= 0.03:
            return "box", "smooth-roof"  # dark eaves around a smooth roof
        if rim <= -5.0 and dip <= -2.0:
            # Brightest along the middle and much darker towards the body's edges: a
            # container (2.4 m wide) on a wider, dark deck. An open top is the other way
            # round: its walls are its brightest part.
            return "flat", "container-on-deck"
        return "gondola", "shaded-inside"
    if ell < 11.0:
        # Shorter than any freight car: a piece of a longer car (a locomotive split at its
        # cab) or a partial view, so its length says nothing. A load's texture still
        # says open top; a smooth piece is left untyped.
        if tex > 0.5:
            return "gondola", "short-piece-load"
        return "unknown", "short-piece"
    if ell > 19.0:
        # Longer than any freight car but a long flat: a flat shows its load in blocks.
        if step_r >= 0.25 or tex_r >= 0.12:
            return "flat", "long-blocks"
        if abs(lum) < 5.0 and rim < 1.5:
            return "flat", "long-faint"  # a bare deck barely stands out from the ballast
        return "locomotive", "long-uniform"
    # At coarser pixels the sun-side half of the body blends with the lit ground beside
    # it, so only a flank much brighter than the other counts.
    if ell >= 14.0 and (asym >= 1.2 if gsd <= 0.55 else (asym >= 2.0 and g("asym_r") >= 0.5)):
        return "box", "lit-roof"  # a pitched roof lit on the sun side
    width = g("width_m", 3.2)
    if tex <= 0.5:
        # Smooth along the whole car: a roof, a single load, or a bare body.
        if ell > 15.5:
            return "box", "long-roof"  # box cars are the long smooth ones
        if g("wall") > 0.75:
            return "gondola", "walls-faint"
        if width > 3.45 and rim <= -0.3:
            return "hopper", "wide-smooth"  # a wide body with sloped, shaded sides
        if ell < 12.5:
            return "tank", "short-smooth"  # tank cars are the short ones
        return "gondola", "smooth"
    # Textured along the car: a load.
    if rim <= -1.7 and step_r > 0.11 and stripe <= 1.4:
        return "flat", "load-on-deck"  # blocks of load inside the dark edge of a deck
    if step >= 2.5 and step_r >= 0.2:
        # A clear step between stretches of the car, a fifth of its contrast or more:
        # blocks of load on a deck (containers, stacks of timber); a bulk load without
        # heaps varies gradually along the car.
        return "flat", "steps-on-deck"
    return "gondola", "textured-load"
