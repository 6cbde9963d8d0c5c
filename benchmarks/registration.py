"""How often the track lines are registered onto the wrong place (fine GSD bands).

    python benchmarks/registration.py [--n N] [--seed S | --tuning] [--bands "<=0.5 m|0.5-1 m"]

Same scene generators and seeds as ``benchmarks/accuracy.py`` (a run with the same
``--seed`` and ``--n`` draws the same scenes), but only the registration step of the core
runs on each scene (``geo_evidence.core._api._registration`` with the core's default
parameters: the very call ``count_railcars`` makes), so a run costs little more than rendering.

For every scene with visible cars the registered line of each car's track is compared
with the car's true centre: the scene's error is the median distance. A registration
"slips" when that error exceeds 1.2 m (in practice the errors are bimodal: a few tenths of
a metre, or a sizeable part of the ~5 m track spacing, when the lines land on a
neighbouring track, between two tracks, on a platform or on the cars' shadows). A slipped
registration loses most of the scene's cars whatever the detector does next.
Without ``--seed`` the base seed comes from the clock (six digits: never a tuning seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy as A  # noqa: E402
import shapely  # noqa: E402

from geo_evidence.core._api import CountParams, _registration, _usable_fn  # noqa: E402
from geo_evidence.core._geometry import gsd_of, resample_line  # noqa: E402
from geo_evidence.core._ribbon import band_views  # noqa: E402
from geo_evidence.core._validate import validate_inputs  # noqa: E402

SLIP_M = 1.2


def registration_error(scene: dict) -> tuple[float, int]:
    """Median distance (m) from each visible true car's centre to its registered track
    line, and the number of cars it is taken over (NaN, 0 for an empty scene)."""
    image, transform, lines, names, valid, cloud, _ = validate_inputs(
        scene["image"], scene["transform"], scene["tracks"], scene["names"], scene["valid"], scene["cloud"],
        scene["excludes"])
    # Exactly the registration that count_railcars computes for this scene.
    usable_at = _usable_fn(image.shape, transform, valid, cloud)
    reg = _registration(band_views(image), transform, lines, gsd_of(transform), CountParams(), usable_at)
    names = names or [f"T{i + 1}" for i in range(len(lines))]
    placed = {}
    for t, line in enumerate(lines):
        _, xy, nrm = resample_line(line, 1.0)
        placed[names[t]] = shapely.LineString(reg.apply(xy, nrm, t))
    errs = [placed[c["track"]].distance(shapely.Point(np.asarray(c["polygon_map"])[:-1].mean(axis=0)))
            for c in scene["truth"] if c["visible"]]
    return (float(np.median(errs)) if errs else float("nan")), len(errs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="scenes per GSD band (default 20)")
    A.add_seed_arguments(ap)
    ap.add_argument("--bands", default="<=0.5 m|0.5-1 m", help='bands, "|"-separated (default "<=0.5 m|0.5-1 m")')
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    bands = [b.strip() for b in args.bands.split("|") if b.strip()]
    unknown = [b for b in bands if b not in dict(A.BANDS)]
    if unknown:
        ap.error(f"unknown band(s) {unknown}; use some of {[b for b, _ in A.BANDS[:2]]}")
    base = A.base_seed(args)
    print(f"registration: base seed {base}, {args.n} scenes per band", flush=True)
    rows = {b: [] for b in bands}
    for band, seed, scene in A.draw_scenes(args.n, base, bands=bands, renderer=args.renderer):
        err, n_cars = registration_error(scene)
        if n_cars:
            rows[band].append((seed, scene["renderer"], err))
        if not args.quiet:
            flag = "SLIP" if err > SLIP_M else ""
            print(f"  {seed} [{band}] {scene['desc'][:60]}  cars {n_cars}  error {err:.2f} m {flag}", flush=True)
    for band, r in rows.items():
        if not r:
            print(f"[{band}] no scene with visible cars")
            continue
        errs = np.array([e for _, _, e in r])
        slips = [(s, rr) for s, rr, e in r if e > SLIP_M]
        ok = errs[errs <= SLIP_M]
        print(f"[{band}] slipped {len(slips)} of {len(r)} scenes ({len(slips) / len(r):.1%}); "
              f"median error of the others {float(np.median(ok)) if ok.size else float('nan'):.2f} m; "
              f"slipped: {', '.join(f'{s} ({rr})' for s, rr in slips) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
