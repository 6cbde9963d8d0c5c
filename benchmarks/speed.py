"""Speed and memory of `geoev count`, measured in one run against the floor and a baseline.

    python benchmarks/speed.py [--big 20000] [--repeat 3] [--skip-baseline]

Figures (ratios are what matter; this machine is noisy):

1. Sample tiles: per scene, the floor (reading the AOI window alone, `read_window`) against
   a whole count of that scene (`count_scene`: read + core + record). Target ratio <= 1.5.
   Each count is also split, within the same call, into read (`read_window`), core
   (`count_railcars`) and rest (everything else: record, detections to lon/lat GeoJSON),
   in wall time and in process CPU time (the CPU figures hold up better on a shared
   machine).
2. A large tile (default 20,000 x 20,000 px RGB at 0.5 m, the 1 km Tumangang yard in its
   middle): `geoev count` against the script an analyst would write (read the whole tile,
   threshold, label, regionprops). Target: >= 20x faster.
3. Peak RSS of `geoev count` on that tile in a fresh process. Target <= 500 MB.
4. Cost follows track length, not tile area: count time for two AOI sizes (all tracks /
   a third of them) on two tile sizes.

Large tiles are generated once into benchmarks/.cache/ (not committed).

To compare two versions of the package in one run, point PYTHONPATH at the other checkout
(``PYTHONPATH=/path/to/other python benchmarks/speed.py``): this script and the processes
it starts import geo_evidence from there. ``--skip-scaling`` leaves out figure 4.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"


def _best(fn, repeat: int) -> float:
    return _best2(fn, repeat)[0]


def _best2(fn, repeat: int) -> tuple[float, float]:
    """Best wall time and best process CPU time of ``repeat`` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def _instrumented_count(scene, aoi, repeat: int) -> dict:
    """Best of ``repeat`` whole counts, split into read / core / rest within each count.

    ``read_window`` and ``count_railcars`` are wrapped with timers where ``count_scene``
    looks them up, so the three parts come from the same call (wall and CPU time).
    """
    import geo_evidence.core as core_pkg
    import geo_evidence.imagery as imagery_pkg
    from geo_evidence.pipeline import count_scene

    orig_read, orig_core = imagery_pkg.read_window, core_pkg.count_railcars
    best = None
    for _ in range(repeat):
        parts = {"read_s": 0.0, "core_s": 0.0, "read_cpu_s": 0.0, "core_cpu_s": 0.0}

        def timed(fn, key):
            def wrapper(*args, **kwargs):
                c0, t0 = time.process_time(), time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    parts[key + "_s"] += time.perf_counter() - t0
                    parts[key + "_cpu_s"] += time.process_time() - c0
            return wrapper

        imagery_pkg.read_window, core_pkg.count_railcars = timed(orig_read, "read"), timed(orig_core, "core")
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            count_scene(scene, aoi)
            parts["count_s"], parts["count_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        finally:
            imagery_pkg.read_window, core_pkg.count_railcars = orig_read, orig_core
        parts["rest_s"] = parts["count_s"] - parts["read_s"] - parts["core_s"]
        parts["rest_cpu_s"] = parts["count_cpu_s"] - parts["read_cpu_s"] - parts["core_cpu_s"]
        if best is None or parts["count_s"] < best["count_s"]:
            best = parts
    return best


def sample_tiles(repeat: int) -> dict:
    from geo_evidence.aoi import load_aoi
    from geo_evidence.imagery import default_scene_source, list_scenes, read_window

    aoi = load_aoi("tumangang")
    scenes = list_scenes(default_scene_source("tumangang"), aoi=aoi)
    rows = []
    for s in scenes:
        floor, floor_cpu = _best2(lambda: read_window(s, aoi), repeat)
        parts = _instrumented_count(s, aoi, repeat)
        rows.append({"scene": s.id, "gsd": s.properties.get("gsd"), "floor_s": floor, "floor_cpu_s": floor_cpu, **parts,
                     "ratio": parts["count_s"] / floor, "ratio_cpu": parts["count_cpu_s"] / max(floor_cpu, 1e-9)})
    ratios = [r["ratio"] for r in rows]
    fine = [r for r in rows if (r["gsd"] or 1) <= 0.6] or rows

    def med(key, sel=rows):
        return statistics.median(r[key] for r in sel)

    return {
        "scenes": rows,
        "median_ratio": statistics.median(ratios),
        "max_ratio": max(ratios),
        "median_ratio_cpu": med("ratio_cpu"),
        "total_floor_s": sum(r["floor_s"] for r in rows),
        "total_count_s": sum(r["count_s"] for r in rows),
        # Per 0.5 m scene, the median of each part (wall and CPU).
        "median_0.5m": {k: med(k, fine) for k in ("floor_s", "read_s", "core_s", "rest_s", "count_s", "ratio", "floor_cpu_s",
                                                   "read_cpu_s", "core_cpu_s", "rest_cpu_s", "count_cpu_s", "ratio_cpu")},
    }


def make_big_tile(size: int) -> Path:
    """A size x size RGB GeoTIFF at 0.5 m with a simulated Tumangang yard in the middle."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    from scipy import ndimage

    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_scene

    path = CACHE / f"big_{size}.tif"
    if path.is_file():
        return path
    CACHE.mkdir(exist_ok=True)
    aoi = load_aoi("tumangang")
    import datetime as dt

    scene = simulate_scene(aoi, when=dt.datetime(2023, 10, 5, 2, 0, tzinfo=dt.timezone.utc), gsd_m=0.5, n_cars=73, seed=5)
    yard = scene.image if scene.image.ndim == 3 else np.repeat(scene.image[..., None], 3, axis=2)
    t = tuple(scene.transform)[:6]
    # Centre the tile on the yard image.
    cx, cy = t[2] + t[0] * yard.shape[1] / 2, t[5] + t[4] * yard.shape[0] / 2
    left, top = cx - size * 0.25, cy + size * 0.25
    transform = from_origin(left, top, 0.5, 0.5)
    col0 = int(round((t[2] - left) / 0.5))
    row0 = int(round((top - t[5]) / 0.5))
    rng = np.random.default_rng(0)
    base = ndimage.zoom(rng.normal(0, 1, (size // 256 + 2, size // 256 + 2)), 256, order=1)[:size, :size]
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=scene.crs,
                   transform=transform, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                   predictor=2, BIGTIFF="YES")
    tmp = path.with_suffix(".tmp.tif")
    strip = 512
    with rasterio.open(tmp, "w", **profile) as dst:
        for r in range(0, size, strip):
            h = min(strip, size - r)
            ground = 110 + 18 * base[r:r + h] + rng.normal(0, 4, (h, size))
            block = np.clip(np.stack([ground * 1.02, ground, ground * 0.9]), 0, 255).astype(np.uint8)
            # paste the yard where it overlaps this strip
            y0, y1 = max(r, row0), min(r + h, row0 + yard.shape[0])
            if y0 < y1:
                block[:, y0 - r:y1 - r, col0:col0 + yard.shape[1]] = np.moveaxis(yard[y0 - row0:y1 - row0], 2, 0)
            dst.write(block, window=Window(0, r, size, h))
        dst.update_tags(TIFFTAG_DATETIME="2023:10:05 02:00:00")
    tmp.rename(path)
    return path


ANALYST_SCRIPT = r'''
import sys, time, resource
import numpy as np, rasterio
from skimage import filters, measure, morphology
t0 = time.perf_counter()
with rasterio.open(sys.argv[1]) as src:
    img = src.read()                      # the whole tile
gray = img.mean(axis=0)
t = filters.threshold_otsu(gray[::4, ::4])
mask = morphology.remove_small_objects(gray > t, 40)
labels = measure.label(mask)
props = measure.regionprops_table(labels, properties=("area", "major_axis_length", "minor_axis_length"))
ratio = props["major_axis_length"] / np.maximum(props["minor_axis_length"], 1)
cars = int(((props["area"] > 100) & (props["area"] < 400) & (ratio > 2.5)).sum())
print(cars, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
'''


def _run_timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall time and peak RSS (MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0,):
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-2000:]}")
    # ru_maxrss of children is the max over all children so far; run the small one first.
    return wall, max(peak, before) / 1024, proc.stdout


def _neutral_dir() -> str:
    """An empty working directory for child processes (``python -c`` puts it first on sys.path)."""
    global _NEUTRAL
    if _NEUTRAL is None:
        _NEUTRAL = tempfile.mkdtemp(prefix="geoev-bench-cwd-")
    return _NEUTRAL


_NEUTRAL = None


def _geoev_run(code: str, args: list[str], env: dict | None) -> dict:
    """One `geoev count` in a fresh process: wall, CPU, peak RSS and its record."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=_neutral_dir())
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if "RSS_MB" not in proc.stderr:
        raise RuntimeError(f"geoev count failed: {proc.stderr[-2000:]}")
    rss = float(proc.stderr.rsplit("RSS_MB", 1)[1].split()[0])
    package = proc.stderr.rsplit("PACKAGE", 1)[1].split()[0]
    return {"wall": wall, "cpu": cpu, "rss": rss, "package": package, "record": json.loads(proc.stdout)["records"][0]}


def big_tile(size: int, *, skip_baseline: bool, repeat: int = 1, compare: str | None = None) -> dict:
    """`geoev count` on the large tile (best of ``repeat``), and the analyst's script once.

    With ``compare`` (a checkout's root), the same count runs from that checkout too,
    alternating run by run so that both see the same machine load.
    """
    import os

    path = make_big_tile(size)
    folder = Path(tempfile.mkdtemp(prefix="geoev-bench-"))
    (folder / path.name).symlink_to(path)
    out = folder / "out"
    geoev = [sys.executable, "-m", "geo_evidence.cli", "count", "--aoi", "tumangang", "--scenes", str(folder),
             "--out", str(out), "--no-progress", "--no-cache", "--format", "json"]
    # geoev first (a child's ru_maxrss is a running max, so measure the small process first).
    code = ("import resource,sys,time;from geo_evidence.cli import main;t=time.perf_counter();"
            "sys.argv=['geoev']+sys.argv[1:];\ntry:\n main()\nexcept SystemExit:\n pass\n"
            "print('RSS_MB',resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,file=sys.stderr)\n"
            "import geo_evidence;print('PACKAGE',geo_evidence.__path__[0],file=sys.stderr)")
    # The import of what `geoev count` needs, on its own: start-up cost in every run.
    imports = ("import time;t=time.perf_counter();import geo_evidence.cli, geo_evidence.pipeline, geo_evidence.imagery, "
               "geo_evidence.core, geo_evidence.provenance, pyarrow.parquet;print(time.perf_counter()-t)")
    import_s = min(float(subprocess.run([sys.executable, "-c", imports], capture_output=True, text=True, check=True,
                                        cwd=_neutral_dir()).stdout)
                   for _ in range(3))
    other_env = None
    if compare:
        other_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(compare), *filter(None, [os.environ.get("PYTHONPATH")])]))
    runs, other_runs = [], []
    for _ in range(max(1, repeat)):
        runs.append(_geoev_run(code, geoev[3:], None))
        if compare:
            other_runs.append(_geoev_run(code, geoev[3:], other_env))
    best = min(runs, key=lambda r: r["wall"])
    record = best["record"]
    result = {"tile_px": size, "tile_mb": path.stat().st_size / 2**20, "package": best["package"], "geoev_s": best["wall"],
              "geoev_cpu_s": min(r["cpu"] for r in runs), "geoev_runs_s": [r["wall"] for r in runs],
              "geoev_import_s": import_s, "geoev_scene_s": record.get("seconds"),
              "geoev_peak_rss_mb": max(r["rss"] for r in runs), "geoev_count": record["count"]}
    if compare:
        ob = min(other_runs, key=lambda r: r["wall"])
        result["compare"] = {"path": ob["package"], "geoev_s": ob["wall"], "geoev_cpu_s": min(r["cpu"] for r in other_runs),
                             "geoev_runs_s": [r["wall"] for r in other_runs], "geoev_peak_rss_mb": max(r["rss"] for r in other_runs),
                             "geoev_count": ob["record"]["count"]}
    if not skip_baseline:
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", ANALYST_SCRIPT, str(path)], capture_output=True, text=True,
                           cwd=_neutral_dir())
        wall = time.perf_counter() - t0
        cars, inner, peak = p.stdout.split()
        result.update(baseline_s=wall, baseline_cpu_s=_children_cpu() - cpu0, baseline_peak_rss_mb=float(peak),
                      baseline_count=int(cars), speedup=wall / result["geoev_s"])
        if compare:
            result["compare"]["speedup"] = wall / result["compare"]["geoev_s"]
    return result


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def scaling(sizes: list[int], repeat: int) -> list[dict]:
    import json as _json

    from geo_evidence.aoi import load_aoi
    from geo_evidence.imagery import list_scenes
    from geo_evidence.pipeline import count_scene

    full = load_aoi("tumangang")
    data = _json.loads(full.path.read_text())
    tracks = [f for f in data["features"] if f["properties"]["kind"] == "track"]
    small = dict(data, id="tumangang-third", features=[f for f in data["features"] if f["properties"]["kind"] != "track"] + tracks[:: 3])
    small_aoi = load_aoi(small)
    rows = []
    for size in sizes:
        path = make_big_tile(size)
        folder = Path(tempfile.mkdtemp(prefix="geoev-scale-"))
        (folder / path.name).symlink_to(path)
        (scene,) = list_scenes(str(folder))
        for aoi in (full, small_aoi):
            secs = _best(lambda: count_scene(scene, aoi), repeat)
            rows.append({"tile_px": size, "aoi": aoi.id, "track_km": aoi.track_length_m / 1000, "count_scene_s": secs})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--big", type=int, default=20000, help="side of the large tile in pixels (0: leave figures 2-4 out)")
    ap.add_argument("--small", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-samples", action="store_true", help="leave out figure 1")
    ap.add_argument("--big-repeat", type=int, default=1, help="best of N runs of geoev count on the large tile")
    ap.add_argument("--compare", metavar="CHECKOUT", default=None,
                    help="also run geoev count on the large tile from this checkout, alternating with this one")
    ap.add_argument("--out", default=str(HERE / "results" / "speed.json"))
    args = ap.parse_args()

    import geo_evidence

    report = {"package": str(Path(geo_evidence.__file__).parent)}
    print(f"package: {report['package']}")
    if not args.skip_samples:
        _report_samples(report, args.repeat)
    if args.big > 0:
        big = big_tile(args.big, skip_baseline=args.skip_baseline, repeat=args.big_repeat, compare=args.compare)
        report["big_tile"] = big
        print(f"[2] {args.big}x{args.big} tile ({big['tile_mb']:.0f} MB), {big['package']}: geoev count {big['geoev_s']:.2f} s wall "
              f"(best of {len(big['geoev_runs_s'])}), {big['geoev_cpu_s']:.2f} s CPU (imports alone {big['geoev_import_s']:.2f} s, "
              f"the scene {big['geoev_scene_s']} s; count {big['geoev_count']})", flush=True)
        if "compare" in big:
            c = big["compare"]
            print(f"    from {c['path']}: {c['geoev_s']:.2f} s wall (best of {len(c['geoev_runs_s'])}), {c['geoev_cpu_s']:.2f} s CPU, "
                  f"peak {c['geoev_peak_rss_mb']:.0f} MB (count {c['geoev_count']})", flush=True)
        if "speedup" in big:
            print(f"    analyst script {big['baseline_s']:.1f} s wall, {big['baseline_cpu_s']:.1f} s CPU, peak "
                  f"{big['baseline_peak_rss_mb']:.0f} MB: geoev is {big['speedup']:.1f}x faster "
                  f"({big['baseline_cpu_s'] / big['geoev_cpu_s']:.1f}x in CPU time) (target >= 20x)")
            if "compare" in big:
                print(f"    ({big['compare']['speedup']:.1f}x for {big['compare']['path']}, "
                      f"{big['baseline_cpu_s'] / big['compare']['geoev_cpu_s']:.1f}x in CPU time)")
        print(f"[3] geoev peak RSS {big['geoev_peak_rss_mb']:.0f} MB (target <= 500 MB)", flush=True)
        if not args.skip_scaling:
            report["scaling"] = scaling([args.small, args.big], args.repeat)
            print("[4] count_scene time by AOI size and tile size:")
            for r in report["scaling"]:
                print(f"    tile {r['tile_px']:>6} px  AOI {r['aoi']:<16} tracks {r['track_km']:.1f} km  {r['count_scene_s']:.3f} s")
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written {out}")


def _report_samples(report: dict, repeat: int) -> None:
    report["sample_tiles"] = st = sample_tiles(repeat)
    print(f"[1] sample tiles: count/floor median {st['median_ratio']:.2f}x, max {st['max_ratio']:.2f}x "
          f"(floor total {st['total_floor_s']:.2f} s, count total {st['total_count_s']:.2f} s) target <= 1.5x", flush=True)
    m = st["median_0.5m"]
    print(f"    per 0.5 m scene (medians): floor {m['floor_s']:.3f} s; count = read {m['read_s']:.3f} + core {m['core_s']:.3f} "
          f"+ rest {m['rest_s']:.3f} = {m['count_s']:.3f} s ({m['ratio']:.1f}x floor)", flush=True)
    print(f"    in CPU time: floor {m['floor_cpu_s']:.3f} s; count = read {m['read_cpu_s']:.3f} + core {m['core_cpu_s']:.3f} "
          f"+ rest {m['rest_cpu_s']:.3f} = {m['count_cpu_s']:.3f} s ({m['ratio_cpu']:.1f}x floor)", flush=True)


if __name__ == "__main__":
    main()
