"""Batch counting: every scene of every AOI as an independent task, with a resumable cache.

One work unit is (scene, AOI): read the AOI window (imagery layer), count railcars (image
core), turn the result into a count record and per-car GeoJSON features. Units run
in-process by default or on a dask.distributed cluster; results are written by the driver
as each unit finishes, atomically, so a run killed half-way keeps everything it finished
and a re-run skips it (the cache key covers the scene checksum, the AOI file, the
parameters and the package version).

Output layout (docs/CONTRACTS.md)::

    OUT/<aoi>/scenes/<scene_id>.json          one record per scene (the cache)
    OUT/<aoi>/detections/<scene_id>.geojson   per-car detections, EPSG:4326
    OUT/<aoi>/counts.json                     every record of the run, by datetime
    OUT/<aoi>/detections.parquet              GeoParquet of every detection
    OUT/<aoi>/manifest.json                   provenance
    OUT/.scene-checksums.json                 scene sha256 by file signature (a cache)

A scene's sha256 is computed on a background thread while scenes are counted, and is
remembered by the file's signature (device, inode, size, mtime, ctime) so that a re-run
does not read an unchanged multi-gigabyte tile again; ``use_cache=False`` (``--no-cache``)
hashes every scene afresh, and ``geoev verify`` always does.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from geo_evidence import __version__
from geo_evidence._io import ChecksumCache, atomic_write_json, atomic_write_with
from geo_evidence.aoi import AOI, list_aois, load_aoi
from geo_evidence.errors import GeoEvidenceError, NoCoverageError, SceneSourceError, SchedulerError

__all__ = [
    "DEFAULT_OUT",
    "RunResult",
    "count_scene",
    "ensure_counts",
    "load_counts",
    "resolve_aois",
    "run_count",
]

log = logging.getLogger(__name__)

DEFAULT_OUT = "geoev-out"
#: File in the output folder that remembers scene checksums between runs (ChecksumCache).
CHECKSUM_CACHE = ".scene-checksums.json"
FAILED = ("error", "no_coverage")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclasses.dataclass
class RunResult:
    """What one AOI's run produced."""

    aoi: str
    out_dir: Path
    records: list[dict]
    computed: int
    cached: int
    manifest: Path

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] in FAILED]


def resolve_aois(values: Iterable[str]) -> list[AOI]:
    """``--aoi`` values to AOIs; ``all`` means every bundled AOI."""
    names: list[str] = []
    for value in values:
        names.extend(list_aois() if value == "all" else [value])
    if not names:
        raise SceneSourceError("no AOI given; pass --aoi NAME (see `geoev aoi list`) or --aoi all.")
    seen, aois = set(), []
    for name in names:
        aoi = load_aoi(name)
        if aoi.id not in seen:
            seen.add(aoi.id)
            aois.append(aoi)
    return aois


def _params_dict(params: Any) -> dict:
    if params is None:
        from geo_evidence.core import CountParams

        params = CountParams()
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)


def _safe_id(scene_id: str) -> str:
    return _UNSAFE.sub("_", scene_id).strip("._") or "scene"


def count_scene(scene, aoi: AOI, *, params: Any = None, margin_m: float = 30.0) -> tuple[dict, list[dict]]:
    """Count one scene over one AOI; never raises for a bad scene.

    Returns the count record (docs/CONTRACTS.md) and the detections as GeoJSON features
    (EPSG:4326). A scene that cannot be read gets ``status`` ``error`` or ``no_coverage``
    and a ``message``; its counts are null.
    """
    from geo_evidence.core import count_railcars
    from geo_evidence.imagery import read_window

    record = _base_record(scene, aoi)
    t0 = time.perf_counter()
    try:
        window = read_window(scene, aoi, margin_m=margin_m)
        result = count_railcars(
            window.image,
            transform=window.transform,
            tracks=window.tracks,
            track_names=window.track_names,
            valid=window.valid,
            cloud=window.cloud,
            excludes=window.excludes,
            params=params,
        )
    except NoCoverageError as exc:
        record.update(status="no_coverage", message=str(exc))
        return record, []
    except GeoEvidenceError as exc:
        record.update(status="error", message=str(exc))
        return record, []
    except Exception as exc:  # a bug or an unforeseen file problem must not sink the batch
        log.debug("scene %s failed", scene.id, exc_info=True)
        record.update(status="error", message=f"unexpected {type(exc).__name__}: {exc}")
        return record, []

    res = result.to_dict()
    record.update(
        status=res["status"],
        gsd_m=round(float(window.gsd_m), 4),
        count=res["count"],
        count_low=res["low"],
        count_high=res["high"],
        method=res["method"],
        obscured_fraction=res["obscured_fraction"],
        by_type=res["by_type"],
        tracks=[
            {
                "name": t["name"],
                "count": t["count"],
                "count_low": t["low"],
                "count_high": t["high"],
                "length_m": t["length_m"],
                "obscured_fraction": t["obscured_fraction"],
            }
            for t in res["tracks"]
        ],
        seconds=round(time.perf_counter() - t0, 3),
    )
    return record, _detection_features(result.detections, window.crs, scene.id)


def _base_record(scene, aoi: AOI) -> dict:
    props = dict(scene.properties or {})
    return {
        "aoi": aoi.id,
        "scene_id": scene.id,
        "datetime": scene.datetime.isoformat() if scene.datetime else None,
        "datetime_source": scene.datetime_source,
        "gsd_m": props.get("gsd"),
        "status": "error",
        "message": None,
        "count": None,
        "count_low": None,
        "count_high": None,
        "method": None,
        "obscured_fraction": None,
        "by_type": {},
        "tracks": [],
        "scene_checksum": scene.checksum,
        "simulated": bool(props.get("simulated", False)),
        "source": scene.href,
        "detections_file": f"detections/{_safe_id(scene.id)}.geojson",
    }


def _detection_features(detections, crs, scene_id: str) -> list[dict]:
    import numpy as np
    from pyproj import CRS, Transformer

    if not detections:
        return []
    tr = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    features = []
    for i, det in enumerate(detections):
        ring = np.asarray(det.polygon_map, dtype=float)
        lon, lat = tr.transform(ring[:, 0], ring[:, 1])
        coords = np.column_stack([lon, lat]).round(8).tolist()
        if coords[0] != coords[-1]:
            coords.append(coords[0])
        features.append(
            {
                "type": "Feature",
                "id": f"{scene_id}:{i}",
                "properties": {
                    "scene_id": scene_id,
                    "detection_id": i,
                    "track": det.track,
                    "car_type": det.car_type,
                    "confidence": round(float(det.confidence), 3),
                    "length_m": round(float(det.length_m), 2),
                    "width_m": round(float(det.width_m), 2),
                },
                "geometry": {"type": "Polygon", "coordinates": [coords]},
            }
        )
    return features


@functools.lru_cache(maxsize=1)
def core_fingerprint() -> str:
    """sha256 over the image core's source files: a cached count is reused only when the
    code that counted it is the one running now (a fix to the core invalidates the cache
    even without a version bump)."""
    h = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parent / "core").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _cache_key(scene_checksum: str | None, aoi: AOI, params: dict, margin_m: float) -> str | None:
    if not scene_checksum:
        return None
    payload = {
        "scene": scene_checksum,
        "aoi": aoi.checksum or hashlib.sha256(aoi.yard.wkb + b"".join(t.line.wkb for t in aoi.tracks)).hexdigest(),
        "params": params,
        "margin_m": margin_m,
        "version": __version__,
        "core": core_fingerprint(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _scene_source(aoi: AOI, scenes: str | None) -> str:
    if scenes:
        return str(scenes)
    from geo_evidence.imagery import default_scene_source

    return str(default_scene_source(aoi.id))


def _task(scene, aoi: AOI, params: dict, margin_m: float) -> tuple[dict, list[dict]]:
    """The unit of work sent to a worker: plain data in, plain data out."""
    from geo_evidence.core import CountParams

    return count_scene(scene, aoi, params=CountParams(**params), margin_m=margin_m)


def run_count(
    aois: AOI | Sequence[AOI],
    *,
    scenes: str | None = None,
    collection: str | None = None,
    start: str | None = None,
    end: str | None = None,
    out_dir: str | Path = DEFAULT_OUT,
    params: Any = None,
    margin_m: float = 30.0,
    use_cache: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    on_result: Callable[[dict], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> list[RunResult]:
    """Count every scene of every AOI and write the outputs.

    Parameters
    ----------
    aois : AOI or sequence of AOI
    scenes : str, optional
        Scene source (folder, STAC catalog path/URL, ``stac-api+URL``); default: the AOI's
        bundled sample tiles.
    collection, start, end : str, optional
        STAC API collection and date range (ISO dates) to search.
    out_dir : path
        Results go to ``out_dir/<aoi>/``.
    use_cache : bool
        Skip scenes whose cached record matches (scene checksum, AOI, parameters, version).
    workers, scheduler :
        ``workers=N`` starts a local dask.distributed cluster of N processes;
        ``scheduler="tcp://host:port"`` uses an existing one. Neither: in-process.
    on_result : callable, optional
        Called with each record as it is finished (progress display).
    """
    from geo_evidence.imagery import list_scenes, scene_checksum

    if isinstance(aois, AOI):
        aois = [aois]
    out_dir = Path(out_dir)
    pdict = _params_dict(params)
    started = datetime.now(timezone.utc)

    # Plan: list every AOI's scenes first, so a bad source fails before any work starts.
    plans = []
    for aoi in aois:
        source = _scene_source(aoi, scenes)
        refs = list_scenes(source, aoi=aoi, collection=collection, start=start, end=end)
        if not refs:
            raise SceneSourceError(f"no scenes for AOI {aoi.id!r} in {source!r}; pass --scenes with a folder or STAC catalog that covers it.")
        plans.append((aoi, source, refs))

    # Scene checksums (sha256 of every byte; seconds for a large tile) are computed on a
    # background thread while the scenes are counted: hashlib and file reads release the
    # GIL. A scene's checksum is awaited only where it is needed: to check a cached record
    # before skipping the scene, and to key and write each finished record.
    # A local scene unchanged since an earlier run into the same output folder (same
    # device, inode, size, mtime and ctime) is not hashed again unless use_cache is off;
    # see ChecksumCache. `geoev verify` never uses this cache.
    sha_cache = ChecksumCache(out_dir / CHECKSUM_CACHE)
    hashed = functools.partial(scene_checksum, cache=sha_cache, trust_cache=use_cache)
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoev-sha256")
    try:
        sums: dict[tuple[str, str | None], Future] = {}
        for _, _, refs in plans:
            for ref in refs:
                if (ref.href, ref.checksum) in sums:
                    continue
                known = sha_cache.lookup(ref.href) if use_cache and not ref.checksum else None
                if known is not None:
                    sums[(ref.href, ref.checksum)] = done_future = Future()
                    done_future.set_result(dataclasses.replace(ref, checksum=known))
                else:
                    sums[(ref.href, ref.checksum)] = hasher.submit(_with_checksum, ref, hashed)

        def checksum_of(ref) -> str | None:
            return sums[(ref.href, ref.checksum)].result().checksum

        jobs, done = [], {}
        for aoi, source, refs in plans:
            adir = out_dir / aoi.id
            for ref in refs:
                if use_cache and _record_path(adir, ref.id).is_file():
                    key = _cache_key(checksum_of(ref), aoi, pdict, margin_m)
                    cached = _load_cached(adir, ref.id, key)
                    if cached is not None:
                        done[(aoi.id, ref.id)] = (cached, True)
                        continue
                jobs.append((aoi, ref))
        if on_start:
            on_start(len(jobs) + len(done))
        for rec, _ in done.values():
            if on_result:
                on_result(rec)

        def finish(aoi: AOI, ref, record: dict, features: list[dict]) -> None:
            checksum = checksum_of(ref)
            record["scene_checksum"] = checksum
            key = _cache_key(checksum, aoi, pdict, margin_m)
            record["cache_key"] = key if record["status"] not in ("error",) else None
            _write_scene(out_dir / aoi.id, ref.id, record, features)
            done[(aoi.id, ref.id)] = (record, False)
            if on_result:
                on_result(record)

        if jobs:
            if workers or scheduler:
                _run_dask(jobs, pdict, margin_m, workers=workers, scheduler=scheduler, finish=finish)
            else:
                for aoi, ref in jobs:
                    record, features = _task(ref, aoi, pdict, margin_m)
                    finish(aoi, ref, record, features)
        # The manifest records these checksums.
        plans = [(aoi, source, [sums[(r.href, r.checksum)].result() for r in refs]) for aoi, source, refs in plans]
    finally:
        hasher.shutdown(wait=False, cancel_futures=True)
        sha_cache.save()

    results = []
    for aoi, source, refs in plans:
        records = [done[(aoi.id, r.id)][0] for r in refs]
        records.sort(key=lambda r: (r["datetime"] is None, r["datetime"] or "", r["scene_id"]))
        computed = sum(1 for r in refs if not done[(aoi.id, r.id)][1])
        manifest = _write_outputs(out_dir / aoi.id, aoi, source, refs, records, pdict, margin_m, started)
        results.append(RunResult(aoi.id, out_dir / aoi.id, records, computed, len(refs) - computed, manifest))
    return results


def _with_checksum(ref, scene_checksum):
    try:
        checksum = scene_checksum(ref)
    except GeoEvidenceError:
        return ref  # unreadable: the task reports it as this scene's error
    return ref if checksum == ref.checksum else dataclasses.replace(ref, checksum=checksum)


def _run_dask(jobs, pdict, margin_m, *, workers, scheduler, finish) -> None:
    import dask

    # dask.distributed logs every worker start and stop at INFO; keep that for debug runs.
    quiet = logging.getLogger().getEffectiveLevel() > logging.DEBUG
    if quiet:
        for name in list(logging.root.manager.loggerDict):
            if name.startswith(("distributed", "tornado")):
                logging.getLogger(name).setLevel(logging.WARNING)
    with dask.config.set({"logging.distributed": "warning"} if quiet else {}):
        _run_on_cluster(jobs, pdict, margin_m, workers=workers, scheduler=scheduler, finish=finish)


def _run_on_cluster(jobs, pdict, margin_m, *, workers, scheduler, finish) -> None:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(
                f"dask scheduler {scheduler!r} does not answer ({exc}); check the address or run without --scheduler."
            ) from None
    else:
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {}
        for aoi, ref in jobs:
            fut = client.submit(_task, ref, aoi, pdict, margin_m, pure=False)
            futures[fut] = (aoi, ref)
        for fut in as_completed(futures):
            aoi, ref = futures[fut]
            try:
                record, features = fut.result()
            except Exception as exc:  # a worker died: report this scene, keep the others
                record, features = _base_record(ref, aoi), []
                record.update(status="error", message=f"worker failed: {type(exc).__name__}: {exc}")
            finish(aoi, ref, record, features)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _record_path(adir: Path, scene_id: str) -> Path:
    return adir / "scenes" / f"{_safe_id(scene_id)}.json"


def _load_cached(adir: Path, scene_id: str, key: str | None) -> dict | None:
    if key is None:
        return None
    path = _record_path(adir, scene_id)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("cache_key") != key:
        return None
    det = adir / record.get("detections_file", "")
    if record.get("count") is not None and not det.is_file():
        return None
    return record


def _write_scene(adir: Path, scene_id: str, record: dict, features: list[dict]) -> None:
    # Detections first, then the record: the record is the "finished" marker of the cache.
    sid = _safe_id(scene_id)
    atomic_write_json(adir / "detections" / f"{sid}.geojson", {"type": "FeatureCollection", "features": features})
    atomic_write_json(_record_path(adir, scene_id), record)


def _write_outputs(adir, aoi, source, refs, records, pdict, margin_m, started) -> Path:
    from geo_evidence.provenance import write_manifest

    simulated = bool(records) and all(r.get("simulated") for r in records)
    counts_path = atomic_write_json(adir / "counts.json", {"aoi": aoi.id, "simulated": simulated, "records": records})
    parquet_path = _write_parquet(adir, records)
    return write_manifest(
        adir / "manifest.json",
        aoi=aoi,
        source=source,
        scenes=refs,
        outputs=[counts_path, parquet_path, *[adir / r["detections_file"] for r in records if (adir / r["detections_file"]).is_file()]],
        parameters={"core": pdict, "margin_m": margin_m},
        started=started,
    )


#: Columns of detections.parquet before any extra detection property, in this order.
PARQUET_COLUMNS = ("scene_id", "detection_id", "track", "car_type", "confidence", "length_m", "width_m", "datetime", "aoi")


def _write_parquet(adir: Path, records: list[dict]) -> Path:
    """GeoParquet (1.1, WKB geometry, EPSG:4326) of every detection of ``records``.

    Written with pyarrow and shapely directly: pandas and geopandas cost more to import
    than a whole count of a scene, and a reader needs only the Parquet file and its
    ``geo`` metadata (geopandas.read_parquet, GDAL, DuckDB all read it).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from pyproj import CRS

    rows, geometries = [], []
    for rec in records:
        path = adir / rec["detections_file"]
        if rec.get("count") is None or not path.is_file():
            continue
        for feat in json.loads(path.read_text(encoding="utf-8"))["features"]:
            rows.append({**feat["properties"], "datetime": rec["datetime"], "aoi": rec["aoi"]})
            geometries.append(feat["geometry"])
    # Columns: the known ones, then any further property in the order first seen.
    names = list(PARQUET_COLUMNS) if not rows else list(dict.fromkeys(k for row in rows for k in row))
    columns = {name: _arrow_column([row.get(name) for row in rows]) for name in names}
    geoms = _shapes(geometries)
    crs = CRS.from_epsg(4326).to_json_dict()
    columns["geometry"] = _arrow_bytes(shapely.to_wkb(geoms).tolist() if len(geoms) else [], pa.binary())
    bbox = [float(v) for v in shapely.total_bounds(geoms)] if len(geoms) else []
    geo = {
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "crs": crs,
                                 "geometry_types": sorted({g["type"] for g in geometries}),
                                 **({"bbox": bbox} if bbox else {})}},
        "version": "1.1.0",
        "creator": {"library": "geo_evidence", "version": __version__},
    }
    fields = [pa.field(k, v.type) for k, v in columns.items() if k != "geometry"]
    fields.append(pa.field("geometry", pa.binary(), metadata={
        "ARROW:extension:name": "geoarrow.wkb", "ARROW:extension:metadata": json.dumps({"crs": crs})}))
    schema = pa.schema(fields, metadata={"geo": json.dumps(geo)})
    table = pa.Table.from_arrays(list(columns.values()), schema=schema)
    return atomic_write_with(adir / "detections.parquet", lambda tmp: pq.write_table(table, tmp))


def _arrow_column(values: list):
    """A list of JSON scalars -> Arrow array: int64, float64, large_string or null.

    Built from buffers because ``pyarrow.array`` imports pandas (a second or so) the first
    time it inspects a Python list; types are those pandas would give (strings as
    large_string), so readers see the same columns as from a GeoDataFrame.
    """
    import numpy as np
    import pyarrow as pa

    present = [v for v in values if v is not None]
    n = len(values)
    if not present:
        return pa.nulls(n)
    mask = np.array([v is not None for v in values], dtype=bool)
    validity = None if mask.all() else pa.py_buffer(np.packbits(mask, bitorder="little"))
    if all(isinstance(v, str) for v in present):
        return _arrow_bytes([v.encode("utf-8") if v is not None else None for v in values], pa.large_string())
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        data = np.array([v if v is not None else 0 for v in values], dtype=np.int64)
        return pa.Array.from_buffers(pa.int64(), n, [validity, pa.py_buffer(data)])
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        data = np.array([v if v is not None else 0.0 for v in values], dtype=np.float64)
        return pa.Array.from_buffers(pa.float64(), n, [validity, pa.py_buffer(data)])
    column = pa.array(values)  # anything else (booleans, lists): let pyarrow infer it
    return column.cast(pa.large_string()) if pa.types.is_string(column.type) else column


def _arrow_bytes(items: list, type_):
    """A list of bytes (or None) -> Arrow binary / large_string array, from buffers."""
    import numpy as np
    import pyarrow as pa

    n = len(items)
    offsets = np.zeros(n + 1, dtype=np.int64 if type_ == pa.large_string() else np.int32)
    np.cumsum([len(b) if b is not None else 0 for b in items], out=offsets[1:])
    mask = np.array([b is not None for b in items], dtype=bool)
    validity = None if mask.all() else pa.py_buffer(np.packbits(mask, bitorder="little"))
    data = b"".join(b for b in items if b is not None)
    return pa.Array.from_buffers(type_, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


def _shapes(geometries: list[dict]):
    """GeoJSON geometries -> shapely array; single-ring polygons (every detection) in one call."""
    import numpy as np
    import shapely

    if not geometries:
        return np.empty(0, dtype=object)
    if all(g["type"] == "Polygon" and len(g["coordinates"]) == 1 for g in geometries):
        rings = [g["coordinates"][0] for g in geometries]
        coords = np.array([xy[:2] for ring in rings for xy in ring], dtype=float)
        index = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
        return shapely.polygons(shapely.linearrings(coords, indices=index))
    from shapely.geometry import shape

    return np.array([shape(g) for g in geometries], dtype=object)


def load_counts(out_dir: str | Path, aoi_id: str, *, reviewed: bool = True) -> list[dict]:
    """The records of ``out_dir/<aoi>/counts.json``, with analyst reviews applied."""
    path = Path(out_dir) / aoi_id / "counts.json"
    try:
        records = json.loads(path.read_text(encoding="utf-8"))["records"]
    except FileNotFoundError:
        raise SceneSourceError(f"no results at {str(path)!r}; run `geoev count --aoi {aoi_id}` first.") from None
    except (ValueError, KeyError) as exc:
        raise SceneSourceError(f"results file {str(path)!r} is malformed ({exc}); re-run `geoev count --aoi {aoi_id} --no-cache`.") from None
    return _apply_reviews(Path(out_dir) / aoi_id, records) if reviewed else records


def _apply_reviews(adir: Path, records: list[dict]) -> list[dict]:
    review_path = adir / "review.json"
    if not review_path.is_file():
        return records
    from geo_evidence.review import apply_reviews, load_reviews

    return apply_reviews(records, load_reviews(review_path))


def ensure_counts(aoi: AOI | str, *, scenes: str | None = None, out_dir: str | Path = DEFAULT_OUT) -> list[dict]:
    """Records for ``aoi``: counted where needed (cached otherwise), reviews applied."""
    aoi = aoi if isinstance(aoi, AOI) else load_aoi(aoi)
    (result,) = run_count(aoi, scenes=scenes, out_dir=out_dir)
    return _apply_reviews(result.out_dir, result.records)
