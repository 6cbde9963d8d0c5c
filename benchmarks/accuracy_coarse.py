"""Accuracy of the coarse-GSD path (3 m ``length``, 10 m ``occupancy``) on held-out scenes.

    python benchmarks/accuracy_coarse.py [--n N] [--seed S] [--tuning] [--bands 3m,10m]

Same scene generators, seeds and metrics as ``benchmarks/accuracy.py`` (a run with the same
``--seed`` and ``--n`` draws exactly the 3 m and 10 m scenes that accuracy.py draws), but
only the coarse bands are rendered, so a run takes a fraction of the time. Without
``--seed`` the base seed comes from the clock (six digits: never a tuning seed).
Also prints the signed count error (median, 10th/90th percentile of (count - truth) /
max(truth, 10)) so a bias is visible.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy as A  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="scenes per GSD band (default 20)")
    A.add_seed_arguments(ap)
    ap.add_argument("--bands", default="3m,10m", help="comma list of 3m, 10m (default both)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    bands = [{"3m": "3 m", "10m": "10 m"}[b.strip()] for b in args.bands.split(",") if b.strip()]
    base = A.base_seed(args)
    print(f"accuracy_coarse: base seed {base} ({'tuning' if args.tuning else 'held-out'}), {args.n} scenes per band",
          flush=True)
    t0 = time.time()
    rows = A.run(args.n, base, bands=bands, verbose=not args.quiet, renderer=args.renderer)
    A.report(rows)
    for band, evs in rows.items():
        e = np.array([v["err"] for v in evs])
        print(f"{band:9} signed error median {np.median(e):+.2f}  p10 {np.percentile(e, 10):+.2f}  "
              f"p90 {np.percentile(e, 90):+.2f}")
    print(f"total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
