"""Calibrate the 3 m scene interval's upper bound on TUNING scenes of both scene styles.

    python benchmarks/calibrate_coarse.py [--n N]

The 3 m (``length`` method) interval is ``[0, min(HI_A n + HI_C, full)]``, where ``n`` is
the count and ``full`` what the visible track can physically hold; once ``n`` reaches
``PACKED_SHARE`` of the usual capacity the upper bound is ``full`` itself (see
``geo_evidence/core/_coarse.py``). Until session 13 these constants were fitted to the
simulator / test-renderer mix alone, and held the truth on only 88-91 % of the third
renderer's 3 m scenes (whose counts run low: median signed error -0.43).

Scenes: ``benchmarks/accuracy.py``'s generators at the 3 m tuning base seeds 5000-5011
(mix) and the third renderer at 7101-7103 and 4301-4308 (``--n`` scenes each; recorded in
benchmarks/heldout/README.md). Each scene is counted once and its count, visible and
hidden track length and truth are cached in ``benchmarks/results/calib_coarse_<n>.json``;
the bound is then re-evaluated for every candidate on a small grid. Split: the even base
seeds choose the constants (the narrowest mean width, taken as the wider of the two
styles, among candidates holding the truth on >= 97.5 % of each style's scenes), the odd
base seeds check them. Prints the chosen constants and both halves' coverage and width,
next to those of the constants in ``_coarse.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy as A  # noqa: E402

from geo_evidence.core import _coarse  # noqa: E402

MIX_SEEDS = tuple(range(5000, 5012))
THIRD_SEEDS = (7101, 7102, 7103) + tuple(range(4301, 4309))
GRID = {"hi_a": (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0), "hi_c": (10.0, 15.0, 20.0, 25.0, 30.0, 40.0),
        "packed_share": (0.08, 0.10, 0.11, 0.12, 0.13, 0.15, 0.20)}
TARGET = 0.975


def collect(n: int) -> list[dict]:
    cache = A.ROOT / "benchmarks" / "results" / f"calib_coarse_{n}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    rows = []
    for renderer, seeds in (("mix", MIX_SEEDS), ("third", THIRD_SEEDS)):
        for base in seeds:
            for _, seed, scene in A.draw_scenes(n, base, bands=["3 m"], renderer=renderer):
                ev = A.evaluate(scene)
                r = ev["res"]
                rows.append({"base": base, "seed": seed, "renderer": renderer, "truth": ev["n_vis"], "n": r.count,
                             "high": r.high,
                             "visible_m": sum(t.length_m * (1 - t.obscured_fraction) for t in r.tracks),
                             "hidden_m": sum(t.length_m * t.obscured_fraction for t in r.tracks),
                             "occupied_m": sum(t.occupied_m for t in r.tracks),
                             "tracks": [(t.count, t.length_m * (1 - t.obscured_fraction), t.length_m * t.obscured_fraction)
                                        for t in r.tracks]})
            print(f"  {renderer} base seed {base}: {len(rows)} scenes so far", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows))
    return rows


def upper(row: dict, hi_a: float, hi_c: float, packed_share: float) -> int:
    """The scene's upper bound with these constants (as ``_coarse.coarse_tracks`` makes it:
    the scene's formula, capped by the sum of the tracks' own bounds)."""
    saved = _coarse.HI_A, _coarse.HI_C, _coarse.PACKED_SHARE
    try:
        _coarse.HI_A, _coarse.HI_C, _coarse.PACKED_SHARE = hi_a, hi_c, packed_share
        occ, vis = row["occupied_m"], row["visible_m"]
        scene = _coarse._interval(row["n"], vis, row["hidden_m"], occ, vis, "length")[1]
        tracks = sum(_coarse._interval(n, v, h, occ, vis, "length")[1] for n, v, h in row["tracks"])
        return max(min(scene, tracks), row["n"])
    finally:
        _coarse.HI_A, _coarse.HI_C, _coarse.PACKED_SHARE = saved


def score(rows: list[dict], consts: tuple) -> tuple[float, float]:
    """Coverage (truth <= upper bound) and mean width (upper / max(truth, 10))."""
    highs = [upper(r, *consts) for r in rows]
    return (float(np.mean([r["truth"] <= h for r, h in zip(rows, highs)])),
            float(np.mean([h / max(r["truth"], 10) for r, h in zip(rows, highs)])))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="3 m scenes per base seed (default 20)")
    args = ap.parse_args(argv)
    rows = collect(args.n)
    current = (_coarse.HI_A, _coarse.HI_C, _coarse.PACKED_SHARE)
    mismatch = sum(upper(r, *current) != r["high"] for r in rows)
    if mismatch:
        print(f"warning: {mismatch} cached bounds differ from today's formula; delete the cache and re-run")
    half = {"fit": [r for r in rows if r["base"] % 2 == 0], "check": [r for r in rows if r["base"] % 2 == 1]}
    by = {(h, s): [r for r in half[h] if r["renderer"] == s] for h in half for s in ("mix", "third")}
    best = None
    for consts in itertools.product(GRID["hi_a"], GRID["hi_c"], GRID["packed_share"]):
        (cm, wm), (ct, wt) = score(by["fit", "mix"], consts), score(by["fit", "third"], consts)
        if min(cm, ct) >= TARGET and (best is None or max(wm, wt) < best[0]):
            best = (max(wm, wt), consts)
    if best is None:
        print(f"no candidate holds {TARGET:.3f} of both styles' fit scenes; widen the grid")
        return 1
    print(f"{len(rows)} scenes ({len(half['fit'])} fit, {len(half['check'])} check)")
    for name, consts in (("in _coarse.py", current), ("chosen", best[1])):
        print(f"{name:14s} HI_A {consts[0]:.1f}  HI_C {consts[1]:.0f}  PACKED_SHARE {consts[2]:.2f}")
        for h in ("fit", "check"):
            (cm, wm), (ct, wt) = score(by[h, "mix"], consts), score(by[h, "third"], consts)
            print(f"    {h:5s}: coverage mix {cm:.3f} third {ct:.3f}   mean width mix {wm:.2f} third {wt:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
