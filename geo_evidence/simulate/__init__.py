"""Simulated overhead scenes of rail yards, with the truth of every railcar.

:func:`simulate_scene` renders a scene of an AOI (RGB or panchromatic, any GSD from
0.3 m to 10 m) with railcars of real types and sizes on the AOI's track lines, shadows,
catenary, distractors (trucks, containers, sheds), clouds, haze, blur, noise and nodata
edges, and a misregistration between the AOI's lines and where the tracks really are.
:func:`simulate_truth` lays the same scene out without rendering it (fast, same truth).
:func:`write_scene` writes a COG, the truth GeoJSON and a STAC item.

Everything here is SIMULATED; written files say so (``simulated: true``).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS, Transformer

from geo_evidence.errors import SimulationError
from geo_evidence.simulate._layout import CAR_TYPES, SEASONS, SceneLayout, plan_scene
from geo_evidence.simulate._write import truth_geojson, write_scene

__all__ = [
    "CAR_TYPES",
    "SEASONS",
    "SimulatedScene",
    "simulate_scene",
    "simulate_truth",
    "truth_geojson",
    "write_scene",
]


@dataclass
class SimulatedScene:
    """A rendered scene and its truth.

    Attributes
    ----------
    image : (rows, cols, 3) or (rows, cols) uint8 ndarray
        RGB (or panchromatic) pixels; 0 outside the valid footprint.
    valid : (rows, cols) bool ndarray
        True where the pixel holds data.
    cloud : (rows, cols) bool ndarray or None
        True where cloud hides the ground (None for a cloud-free scene).
    transform : tuple
        Affine 6-tuple of the image in ``crs``.
    crs : pyproj.CRS
        CRS of the image and of the truth ``polygon_map`` coordinates.
    truth : list of dict
        One record per car: ``car_id``, ``type``, ``track``, ``visible``, ``length_m``,
        ``width_m``, ``cut_id``, ``polygon_map`` ((K, 2) ndarray in ``crs``).
    params : dict
        Everything needed to reproduce the scene (``when``, ``gsd_m``, ``seed``, ...).
    """

    image: np.ndarray
    valid: np.ndarray
    cloud: np.ndarray | None
    transform: tuple
    crs: CRS
    truth: list[dict]
    params: dict
    layout: SceneLayout | None = field(default=None, repr=False)
    truth_lonlat: list[dict] = field(default_factory=list, repr=False)


def _when(when) -> _dt.datetime:
    if isinstance(when, str):
        try:
            when = _dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            raise SimulationError(f"when={when!r} is not an ISO 8601 datetime; use e.g. '2023-10-05T02:10:00Z'.") from None
    elif isinstance(when, _dt.date) and not isinstance(when, _dt.datetime):
        when = _dt.datetime(when.year, when.month, when.day, 2, 0)
    if not isinstance(when, _dt.datetime):
        raise SimulationError(f"when must be a datetime or ISO string, got {type(when).__name__}.")
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc)


def _plan(aoi, when, kwargs) -> tuple[SceneLayout, dict]:
    layout = plan_scene(aoi, **kwargs)
    params = dict(layout.params)
    params["when"] = _when(when).isoformat()
    params["aoi"] = aoi.id
    return layout, params


def simulate_truth(
    aoi,
    *,
    when,
    gsd_m: float = 0.5,
    n_cars: int | None = None,
    cars: dict[str, int] | None = None,
    season: str = "summer",
    sun_azimuth: float = 135.0,
    sun_elevation: float = 35.0,
    cloud_cover: float = 0.0,
    cloud_bank=None,
    nodata_edge: float = 0.0,
    extent=None,
    margin_m: float = 120.0,
    misregistration_m: tuple[float, float] = (0.0, 0.0),
    misregistration_deg: float = 0.0,
    seed: int = 0,
) -> list[dict]:
    """The truth :func:`simulate_scene` would give, without rendering (milliseconds).

    Records carry ``polygon_map`` in the AOI's CRS and ``polygon_lonlat`` in EPSG:4326.
    """
    kwargs = {k: v for k, v in locals().items() if k not in ("aoi", "when")}
    layout, _ = _plan(aoi, when, kwargs)
    return _with_lonlat(layout.truth, layout.crs)


def simulate_scene(
    aoi,
    *,
    when,
    gsd_m: float = 0.5,
    n_cars: int | None = None,
    cars: dict[str, int] | None = None,
    season: str = "summer",
    sun_azimuth: float = 135.0,
    sun_elevation: float = 35.0,
    cloud_cover: float = 0.0,
    haze: float = 0.0,
    misregistration_m: tuple[float, float] = (0.0, 0.0),
    misregistration_deg: float = 0.0,
    cloud_bank=None,
    nodata_edge: float = 0.0,
    extent=None,
    margin_m: float = 120.0,
    blur: float = 0.7,
    noise: float = 2.5,
    panchromatic: bool = False,
    crs=None,
    seed: int = 0,
) -> SimulatedScene:
    """Render a simulated overhead scene of a yard.

    Parameters
    ----------
    aoi : geo_evidence.aoi.AOI
        Yard and track lines (from :func:`geo_evidence.aoi.load_aoi`).
    when : datetime or str
        Acquisition time (UTC if naive).
    gsd_m : float
        Ground sample distance, 0.3 m to 10 m (works from 0.05 to 30).
    n_cars : int, optional
        Total railcars in a default type mix (20 if neither this nor ``cars`` is given).
    cars : dict, optional
        Exact count per type, e.g. ``{"gondola": 175, "tank": 66, "locomotive": 6}``.
    season : {"summer", "autumn", "snow"}
        Ground texture; ``snow`` also puts snow on roofs and loads.
    sun_azimuth, sun_elevation : float
        Degrees (azimuth clockwise from north); shadows fall opposite the sun.
    cloud_cover : float
        Fraction of the scene under opaque cloud (soft-edged cumulus).
    haze : float
        0..1 blend towards a bluish-grey veil.
    misregistration_m, misregistration_deg : (dx, dy), float
        Shift (m) and rotation (degrees, about the yard centroid) of the real tracks
        against the AOI lines; cars sit on the real tracks.
    cloud_bank : shapely Polygon, optional
        A fully opaque cloud region (AOI CRS).
    nodata_edge : float
        Fraction of the extent outside the image footprint (a slanted strip edge).
    extent : (xmin, ymin, xmax, ymax), optional
        Rendered extent in the AOI CRS; default the yard bounds plus ``margin_m``.
    blur, noise : float
        Gaussian blur sigma (output pixels) and sensor noise (DN).
    panchromatic : bool
        One band instead of RGB.
    crs : CRS-like, optional
        Output CRS (default the AOI's UTM); the image is warped and the truth reprojected.
    seed : int
        Every random choice derives from it; same seed, same bytes.

    Returns
    -------
    SimulatedScene
    """
    kwargs = dict(
        gsd_m=gsd_m, n_cars=n_cars, cars=cars, season=season, sun_azimuth=sun_azimuth,
        sun_elevation=sun_elevation, cloud_cover=cloud_cover, cloud_bank=cloud_bank,
        nodata_edge=nodata_edge, extent=extent, margin_m=margin_m,
        misregistration_m=misregistration_m, misregistration_deg=misregistration_deg, seed=seed,
    )
    if not 0 <= haze <= 1:
        raise SimulationError(f"haze must be in [0, 1], got {haze}.")
    layout, params = _plan(aoi, when, kwargs)
    params.update({"haze": float(haze), "blur": float(blur), "noise": float(noise), "panchromatic": bool(panchromatic)})
    from geo_evidence.simulate._render import render_layout

    out = render_layout(layout, haze=haze, blur=blur, noise=noise, panchromatic=panchromatic, seed=seed)
    truth_ll = _with_lonlat(layout.truth, layout.crs)
    image, valid, cloud, transform, out_crs = out["image"], out["valid"], out["cloud"], tuple(out["transform"])[:6], layout.crs
    truth = [dict(t) for t in layout.truth]
    if crs is not None and CRS.from_user_input(crs) != layout.crs:
        image, valid, cloud, transform, out_crs = _warp(image, valid, cloud, transform, layout.crs, CRS.from_user_input(crs), gsd_m)
        tr = Transformer.from_crs(layout.crs, out_crs, always_xy=True)
        for t in truth:
            x, y = tr.transform(t["polygon_map"][:, 0], t["polygon_map"][:, 1])
            t["polygon_map"] = np.column_stack([x, y])
    params["crs"] = out_crs.to_string()
    return SimulatedScene(image=image, valid=valid, cloud=cloud, transform=transform, crs=out_crs, truth=truth, params=params, layout=layout, truth_lonlat=truth_ll)


def _with_lonlat(truth: list[dict], crs) -> list[dict]:
    tr = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    out = []
    for t in truth:
        rec = dict(t)
        lon, lat = tr.transform(t["polygon_map"][:, 0], t["polygon_map"][:, 1])
        rec["polygon_lonlat"] = np.column_stack([lon, lat])
        out.append(rec)
    return out


def _warp(image, valid, cloud, transform, src_crs, dst_crs, gsd_m):
    """Reproject the rendered arrays to ``dst_crs`` (bilinear pixels, nearest masks)."""
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    import warnings

    rows, cols = valid.shape
    src_tf = Affine(*transform)
    with warnings.catch_warnings():
        # rasterio 1.4 still multiplies Affine with `*`; affine 3.x flags it. Not ours to fix.
        warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
        dst_tf, w, h = calculate_default_transform(src_crs, dst_crs, cols, rows, *_bounds(src_tf, cols, rows))
    bands = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    out = np.zeros((bands.shape[0], h, w), np.uint8)
    src_valid = valid.astype(np.uint8)
    reproject(bands, out, src_transform=src_tf, src_crs=src_crs, dst_transform=dst_tf, dst_crs=dst_crs, resampling=Resampling.bilinear)
    v = np.zeros((h, w), np.uint8)
    reproject(src_valid, v, src_transform=src_tf, src_crs=src_crs, dst_transform=dst_tf, dst_crs=dst_crs, resampling=Resampling.nearest)
    c = None
    if cloud is not None:
        c = np.zeros((h, w), np.uint8)
        reproject(cloud.astype(np.uint8), c, src_transform=src_tf, src_crs=src_crs, dst_transform=dst_tf, dst_crs=dst_crs, resampling=Resampling.nearest)
        c = c.astype(bool)
    valid_out = v.astype(bool)
    img = out[0] if image.ndim == 2 else np.moveaxis(out, 0, -1)
    img[~valid_out] = 0
    return img, valid_out, c, tuple(dst_tf)[:6], dst_crs


def _bounds(tf, cols, rows):
    from rasterio.transform import array_bounds

    west, south, east, north = array_bounds(rows, cols, tf)
    return west, south, east, north
