"""Write a simulated scene: a COG, its truth GeoJSON and a STAC item beside them."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from geo_evidence._io import atomic_write_with, sha256_file
from geo_evidence.errors import SimulationError

__all__ = ["truth_geojson", "write_scene", "FILE_EXT", "VIEW_EXT", "EO_EXT"]

FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
VIEW_EXT = "https://stac-extensions.github.io/view/v1.0.0/schema.json"
EO_EXT = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"

_PROPS = ("car_id", "type", "track", "visible", "length_m", "width_m", "cut_id")


def truth_geojson(truth_lonlat: list[dict], *, scene_id: str, params: dict | None = None) -> str:
    """The truth as GeoJSON text (EPSG:4326), one feature per line, byte-stable.

    ``truth_lonlat`` records need ``polygon_lonlat`` ((K, 2) lon/lat), as returned by
    :func:`geo_evidence.simulate.simulate_truth` or ``SimulatedScene.truth_lonlat``.
    """
    head = {
        "type": "FeatureCollection",
        "scene_id": scene_id,
        "simulated": True,
        "n_cars": len(truth_lonlat),
        "n_visible": sum(1 for t in truth_lonlat if t["visible"]),
    }
    if params is not None:
        head["when"] = params.get("when")
    lines = []
    for t in truth_lonlat:
        ring = np.round(np.asarray(t["polygon_lonlat"], dtype=np.float64), 8)
        ring = np.vstack([ring, ring[:1]])
        feat = {
            "type": "Feature",
            "id": t["car_id"],
            "properties": {k: t[k] for k in _PROPS},
            "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]},
        }
        lines.append(json.dumps(feat, separators=(",", ":")))
    text = json.dumps(head, separators=(",", ":"))[:-1] + ',"features":[\n' + ",\n".join(lines) + "\n]}\n"
    return text


def _write_cog(path: Path, image, valid, transform, crs, when: _dt.datetime, *, gsd_m: float, description: str) -> None:
    import rasterio
    from rasterio.transform import Affine

    bands = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    rows, cols = valid.shape
    # JPEG (YCbCr for RGB) keeps sub-metre scenes small; coarse scenes are tiny, keep them lossless.
    lossy = gsd_m <= 1.5
    profile = {
        "driver": "COG",
        "width": cols,
        "height": rows,
        "count": bands.shape[0],
        "dtype": "uint8",
        "crs": crs.to_wkt() if hasattr(crs, "to_wkt") else crs,
        "transform": Affine(*transform),
        "blocksize": 256,
        "compress": "JPEG" if lossy else "DEFLATE",
        "overview_resampling": "average",
    }
    if lossy:
        profile["quality"] = 80
    else:
        profile["predictor"] = 2
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(bands)
            dst.write_mask(valid.astype(np.uint8) * 255)
            dst.update_tags(
                TIFFTAG_DATETIME=when.strftime("%Y:%m:%d %H:%M:%S"),
                TIFFTAG_IMAGEDESCRIPTION=description,
                TIFFTAG_SOFTWARE="geo_evidence simulator",
                SIMULATED="yes",
            )


def _write_mask_tif(path: Path, mask, transform, crs) -> None:
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(
        path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1, dtype="uint8",
        crs=crs.to_wkt(), transform=Affine(*transform), compress="DEFLATE", tiled=True, blockxsize=256, blockysize=256,
    ) as dst:
        dst.write(mask.astype(np.uint8), 1)
        dst.update_tags(1, meaning="1 = cloud hides the ground, 0 = clear")


def write_scene(scene, out_dir, *, scene_id: str, overwrite: bool = True) -> dict[str, Path]:
    """Write ``<scene_id>.tif`` (COG), ``<scene_id>.truth.geojson`` and ``<scene_id>.json`` (STAC).

    Parameters
    ----------
    scene : SimulatedScene
    out_dir : path
        Folder to write into (created if missing).
    scene_id : str
        File stem and STAC item id (letters, digits, ``_``, ``-`` and ``.``).
    overwrite : bool
        Refuse to replace existing files when False.

    Returns
    -------
    dict
        Paths ``cog``, ``truth``, ``item`` and, for a cloudy scene, ``cloud``.
    """
    import pystac
    import shapely
    from pyproj import CRS, Transformer
    from shapely.geometry import mapping

    if not scene_id or any(not (ch.isalnum() or ch in "_-.") for ch in scene_id):
        raise SimulationError(f"scene_id {scene_id!r} must be letters, digits, '_', '-' or '.'; pick a file-safe id.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"cog": out / f"{scene_id}.tif", "truth": out / f"{scene_id}.truth.geojson", "item": out / f"{scene_id}.json"}
    if scene.cloud is not None and scene.cloud.any():
        paths["cloud"] = out / f"{scene_id}.cloud.tif"
    if not overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise SimulationError(f"{existing[0]} exists; pass overwrite=True or choose another out_dir.")
    p = scene.params
    when = _dt.datetime.fromisoformat(p["when"])
    desc = f"SIMULATED scene {scene_id} of AOI {p.get('aoi')} by geo_evidence (not a real acquisition)"
    atomic_write_with(
        paths["cog"],
        lambda tmp: _write_cog(tmp, scene.image, scene.valid, scene.transform, scene.crs, when, gsd_m=p["gsd_m"], description=desc),
    )
    paths["truth"].write_text(truth_geojson(scene.truth_lonlat, scene_id=scene_id, params=p), encoding="utf-8")
    if "cloud" in paths:
        _write_mask_tif(paths["cloud"], scene.cloud, scene.transform, scene.crs)

    # Footprint of valid data, in lon/lat, for the item geometry.
    layout = scene.layout
    fp = layout.footprint if layout is not None else None
    tr = Transformer.from_crs(layout.crs if layout is not None else scene.crs, CRS.from_epsg(4326), always_xy=True)
    fp_ll = shapely.transform(fp, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    fp_ll = shapely.set_precision(fp_ll, 1e-7)
    by_type: dict[str, int] = {}
    for t in scene.truth:
        by_type[t["type"]] = by_type.get(t["type"], 0) + 1
    props = {
        "simulated": True,
        "gsd": p["gsd_m"],
        "platform": "simulated",
        "constellation": "geo_evidence-simulator",
        "view:sun_azimuth": p["sun_azimuth"],
        "view:sun_elevation": p["sun_elevation"],
        "sim:season": p["season"],
        "sim:seed": p["seed"],
        "sim:haze": p.get("haze", 0.0),
        "sim:misregistration_m": p["misregistration_m"],
        "sim:misregistration_deg": p["misregistration_deg"],
        "sim:n_cars": len(scene.truth),
        "sim:n_visible": sum(1 for t in scene.truth if t["visible"]),
        "sim:by_type": dict(sorted(by_type.items())),
        "sim:aoi": p.get("aoi"),
        "eo:cloud_cover": round(100.0 * float(scene.cloud.mean()) if scene.cloud is not None else 0.0, 2),
        "description": desc,
    }
    item = pystac.Item(
        id=scene_id,
        geometry=mapping(fp_ll),
        bbox=list(fp_ll.bounds),
        datetime=when,
        properties=props,
        stac_extensions=[FILE_EXT, VIEW_EXT, EO_EXT],
    )
    cog_bytes = paths["cog"].stat().st_size
    item.add_asset(
        "image",
        pystac.Asset(
            href=f"./{paths['cog'].name}",
            media_type=pystac.MediaType.COG,
            roles=["data"],
            title="Simulated image (COG)",
            extra_fields={"file:checksum": "1220" + sha256_file(paths["cog"]), "file:size": cog_bytes},
        ),
    )
    item.add_asset(
        "truth",
        pystac.Asset(
            href=f"./{paths['truth'].name}",
            media_type=pystac.MediaType.GEOJSON,
            roles=["metadata", "truth"],
            title="Where every simulated railcar is (EPSG:4326)",
            extra_fields={"file:checksum": "1220" + sha256_file(paths["truth"])},
        ),
    )
    if "cloud" in paths:
        item.add_asset(
            "cloud_mask",
            pystac.Asset(
                href=f"./{paths['cloud'].name}",
                media_type=pystac.MediaType.GEOTIFF,
                roles=["cloud"],
                title="Cloud mask (1 = cloud)",
                extra_fields={"file:checksum": "1220" + sha256_file(paths["cloud"])},
            ),
        )
    item.set_self_href(str(paths["item"].resolve()))
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    paths["item"].write_text(json.dumps(d, indent=1) + "\n", encoding="utf-8")
    return paths
