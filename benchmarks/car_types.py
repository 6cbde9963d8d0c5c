"""Car-type accuracy of the image core: confusion matrices per fine GSD band.

    python benchmarks/car_types.py [--n N] [--seed S | --tuning] [--baseline-rev REV]
                                   [--save CACHE] [--load CACHE ...]

Scenes come from ``benchmarks/accuracy.py``'s generators (the project simulator two times
in three, the independent test renderer otherwise) with the same scene seeds as
``accuracy.py`` for the same base seed and ``--n`` (bands <= 0.5 m and 0.5-1 m only: no
type is guessed at coarser GSD). A detection matches a true car when its centre lies in the
car's polygon (as in ``accuracy.py``); the type guess of every matched detection is tallied
against the true type.

``--save`` also keeps, for every matched car, its slice of the core's across-track feature
array (with 3 m of margin), the detected length and the GSD, so ``--load`` can re-run the
current ``car_features``/``classify`` on those cars in seconds without running the core.
The counts are untouched: the recorder only watches the calls the core makes.
``--baseline-rev`` tallies an older ``_classify.py`` (from git) on the very same cars, so
a before/after comparison needs one run of the core.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import accuracy as A  # noqa: E402
import shapely  # noqa: E402

from geo_evidence.core import _classify  # noqa: E402
from geo_evidence.core import count_railcars  # noqa: E402

TYPES = list(_classify.CAR_TYPES)
FINE_BANDS = A.BANDS[:2]
MARGIN_M = 3.0


class _Recorder:
    """Watches ``car_features``/``classify`` calls; keeps each car's feature slice."""

    def __init__(self):
        self.cars: list[dict] = []
        self._last = None
        self._cf = _classify.car_features
        self._cl = _classify.classify

    def car_features(self, sums, i0, i1, bg, sigma, *args, **kw):
        feats = self._cf(sums, i0, i1, bg, sigma, *args, **kw)
        F, offsets = sums.get("F"), sums.get("offsets")
        rec = {"i0": i0, "i1": i1, "bg": np.asarray(bg, float), "sigma": float(sigma), "kw": kw}
        if F is not None:
            n = max(i1 - i0, 1)
            m = int(round(MARGIN_M / 30.0 * n)) + 12  # ~3 m at any step (a car is ~60 samples)
            j0, j1 = max(i0 - m, 0), min(i1 + m, len(F))
            rec.update(F=np.asarray(F[j0:j1], np.float32), offsets=np.asarray(offsets), k0=i0 - j0, k1=i1 - j0)
        self._last = rec
        return feats

    def classify(self, length_m, feats, *, gsd, **kw):
        label = self._cl(length_m, feats, gsd=gsd, **kw)
        rec = dict(self._last or {}, ell=float(length_m), gsd=float(gsd), label=label)
        self.cars.append(rec)
        return f"#{len(self.cars) - 1}"

    def __enter__(self):
        _classify.car_features = self.car_features
        _classify.classify = self.classify
        return self

    def __exit__(self, *exc):
        _classify.car_features = self._cf
        _classify.classify = self._cl


def collect(n: int, base_seed: int, *, verbose: bool = False, renderer: str = "mix") -> list[dict]:
    """Matched cars of the fine-GSD scenes of ``accuracy.py`` at ``base_seed``.

    Returns one dict per matched detection: true type, the live label, renderer, band,
    scene seed and (when ``track_feature_sums`` exposes ``F``) the feature slice.
    """
    out = []
    for band, seed, scene in A.draw_scenes(n, base_seed, bands=[b for b, _ in FINE_BANDS], renderer=renderer):
        t0 = time.perf_counter()
        with _Recorder() as rec:
            res = count_railcars(scene["image"], transform=scene["transform"], tracks=scene["tracks"],
                                 track_names=scene["names"], valid=scene["valid"], cloud=scene["cloud"],
                                 excludes=scene["excludes"])
        vis = [t for t in scene["truth"] if t["visible"]]
        polys = shapely.polygons([shapely.linearrings(t["polygon_map"]) for t in vis]) if vis else []
        used: set = set()
        got = 0
        for d in res.detections:
            if not d.car_type.startswith("#"):
                continue
            c = np.asarray(d.polygon_map)[:-1].mean(axis=0)
            if not len(polys):
                continue
            hit = [h for h in np.flatnonzero(shapely.contains_xy(polys, c[0], c[1])) if h not in used]
            if hit:
                used.add(hit[0])
                car = rec.cars[int(d.car_type[1:])]
                ring = np.asarray(vis[hit[0]]["polygon_map"])
                # A strip along the track: perimeter 2(L + W), area L W.
                pg = shapely.Polygon(ring)
                q = pg.length / 4.0
                true_len = float(q + np.sqrt(max(q * q - pg.area, 0.0)))
                car.update(true=vis[hit[0]]["type"], true_len=true_len, band=band, seed=seed, renderer=scene["renderer"])
                out.append(car)
                got += 1
        if verbose:
            print(f"  [{band}] {scene['desc']}: {got} matched cars, {time.perf_counter() - t0:.1f}s", flush=True)
    return out


def relabel(cars: list[dict], module=None) -> list[str]:
    """Labels of cached cars from ``module`` (default: the CURRENT ``_classify`` code).

    Exact for any version whose features depend only on the car's samples (the
    cumulative sums of a slice differ from the whole track's only by a constant).
    """
    mod = module or _classify
    labels = []
    for c in cars:
        if "F" not in c:
            labels.append(c["label"])
            continue
        sums = mod.track_feature_sums(c["F"], c["offsets"])
        feats = mod.car_features(sums, c["k0"], c["k1"], c["bg"], c["sigma"], **c.get("kw", {}))
        labels.append(mod.classify(c["ell"], feats, gsd=c["gsd"]))
    return labels


def module_at(rev: str):
    """``geo_evidence/core/_classify.py`` as of git revision ``rev``, imported on its own."""
    import importlib.util
    import subprocess
    import tempfile

    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:geo_evidence/core/_classify.py"],
                         check=True, capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp()) / "_classify_baseline.py"
    tmp.write_text(src)
    spec = importlib.util.spec_from_file_location("_classify_baseline", tmp)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def confusion(cars: list[dict], labels: list[str], *, title: str = "") -> None:
    """Print one confusion matrix (rows: true type, columns: guess) per band and renderer mix."""
    for band, _ in FINE_BANDS:
        idx = [k for k, c in enumerate(cars) if c["band"] == band]
        if not idx:
            continue
        M = np.zeros((len(TYPES), len(TYPES)), int)
        for k in idx:
            M[TYPES.index(cars[k]["true"]), TYPES.index(labels[k])] += 1
        acc = np.trace(M) / max(M.sum(), 1)
        per_r = {r: np.mean([cars[k]["true"] == labels[k] for k in idx if cars[k]["renderer"] == r])
                 for r in ("sim", "synth") if any(cars[k]["renderer"] == r for k in idx)}
        print(f"{title}[{band}] type accuracy {acc:.3f} on {M.sum()} matched cars  "
              + "  ".join(f"{r} {v:.3f}" for r, v in per_r.items()))
        print("  true \\ guess " + " ".join(f"{t[:5]:>6}" for t in TYPES) + "  recall")
        for r, t in enumerate(TYPES):
            if M[r].sum() == 0:
                continue
            print(f"  {t:12} " + " ".join(f"{v:6d}" for v in M[r]) + f"  {M[r, r] / M[r].sum():6.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8, help="scenes per fine GSD band (default 8)")
    A.add_seed_arguments(ap)
    ap.add_argument("--save", type=Path, default=None, help="pickle the matched cars' feature slices here")
    ap.add_argument("--load", type=Path, nargs="*", default=None, help="re-classify cached cars instead of running the core")
    ap.add_argument("--baseline-rev", default=None,
                    help="also tally the type guesses of _classify.py at this git revision on the same cars (A/B)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.load:
        cars = []
        for p in args.load:
            with open(p, "rb") as fh:
                cars += pickle.load(fh)
        print(f"types: {len(cars)} cached cars from {', '.join(map(str, args.load))}")
        confusion(cars, [c["label"] for c in cars], title="as recorded ")
        confusion(cars, relabel(cars), title="current code ")
        if args.baseline_rev:
            confusion(cars, relabel(cars, module_at(args.baseline_rev)), title=f"{args.baseline_rev} ")
        return 0
    base = A.base_seed(args)
    print(f"types: base seed {base}, {args.n} scenes per fine band", flush=True)
    t0 = time.time()
    cars = collect(args.n, base, verbose=args.verbose, renderer=args.renderer)
    if args.baseline_rev:
        confusion(cars, relabel(cars, module_at(args.baseline_rev)), title=f"baseline {args.baseline_rev} ")
    confusion(cars, [c["label"] for c in cars], title="current ")
    if args.save:
        with open(args.save, "wb") as fh:
            pickle.dump(cars, fh)
    print(f"total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
