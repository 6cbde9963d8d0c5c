"""Windowed reads: only the pixels an AOI needs, in a metric CRS, with masks.

:func:`read_window` opens a scene with the GTiff driver only, checks its declared size
before reading anything, and reads the window around the AOI (yard and tracks plus a
margin). A scene in a projected CRS in metres is read as is; a scene in a geographic or
non-metric CRS is warped (through a :class:`~rasterio.vrt.WarpedVRT`, which reads only the
source blocks it needs) to the AOI's UTM CRS at the scene's native resolution in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from geo_evidence.errors import AOIError, CRSError, NoCoverageError, SceneReadError
from geo_evidence.imagery._gdal import DEFAULT_MAX_DATASET_PIXELS, gdal_env, open_scene
from geo_evidence.imagery.sources import SceneRef

if TYPE_CHECKING:  # pragma: no cover
    from pyproj import CRS

    from geo_evidence.aoi import AOI

__all__ = ["DEFAULT_MAX_DATASET_PIXELS", "DEFAULT_MAX_PIXELS", "SceneWindow", "open_scene", "read_window", "scene_info"]

#: Most values (rows x cols x bands) one window may hold: what is actually read into
#: memory (256 MiB at 8 bits, 512 MiB at 16). An RGB window of 9,400 x 9,400 pixels (a
#: 4.7 km square AOI at 0.5 m) fits; the bundled yards need a few million values.
DEFAULT_MAX_PIXELS = 256 * 1024**2


@dataclass(frozen=True)
class SceneWindow:
    """The AOI window of one scene, ready for the image core.

    Attributes
    ----------
    image : (rows, cols) or (rows, cols, bands) ndarray
        Pixel values in the file's dtype, channel-last; alpha bands are moved to ``valid``.
    valid : (rows, cols) bool ndarray
        True where the pixel holds data (not nodata, not masked, not outside the scene).
    cloud : (rows, cols) bool ndarray or None
        True where the scene's cloud mask marks cloud; None when the scene has no mask.
    transform : tuple of 6 float
        Affine (a, b, c, d, e, f) from pixel (col, row) to map (x, y) in metres.
    crs : pyproj.CRS
        The window's metric CRS: the scene's own, or the AOI's UTM after reprojection.
    gsd_m : float
        Pixel size in metres.
    tracks : list of (N, 2) float ndarray
        Track centre lines in ``crs``, map (x, y).
    track_names : list of str
    excludes : list of (K, 2) float ndarray
        Exterior rings of the AOI's exclude polygons in ``crs``.
    scene : SceneRef
    reprojected : bool
        True when the window was warped from the scene's CRS.
    """

    image: np.ndarray
    valid: np.ndarray
    cloud: np.ndarray | None
    transform: tuple[float, float, float, float, float, float]
    crs: CRS
    gsd_m: float
    tracks: list[np.ndarray]
    track_names: list[str]
    excludes: list[np.ndarray]
    scene: SceneRef
    reprojected: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.valid.shape


def _href(scene: SceneRef | str) -> str:
    return scene.href if isinstance(scene, SceneRef) else str(scene)


def scene_info(scene: SceneRef | str, *, max_dataset_pixels: int = DEFAULT_MAX_DATASET_PIXELS) -> dict[str, Any]:
    """What a scene's header says, without reading pixels.

    Returns
    -------
    dict
        ``crs`` (authority string or WKT, None without a CRS), ``gsd_m`` (None unless the
        CRS is projected in metres), ``width``, ``height``, ``bands``, ``dtype``,
        ``nodata``.

    Raises
    ------
    SceneReadError
        As :func:`open_scene`.
    """
    href = _href(scene)
    with gdal_env(href), open_scene(href, max_dataset_pixels=max_dataset_pixels) as src:
        crs = src.crs
        gsd = None
        if crs is not None and _is_metric_north_up(src):
            gsd = float((abs(src.transform.a) + abs(src.transform.e)) / 2.0)
        text = None
        if crs is not None:
            epsg = crs.to_epsg()
            text = f"EPSG:{epsg}" if epsg else crs.to_wkt()
        return {"crs": text, "gsd_m": gsd, "width": src.width, "height": src.height, "bands": len(_data_bands(src)),
                "dtype": src.dtypes[0], "nodata": src.nodata}


def read_window(
    scene: SceneRef | str,
    aoi: AOI,
    *,
    margin_m: float = 30.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_dataset_pixels: int = DEFAULT_MAX_DATASET_PIXELS,
) -> SceneWindow:
    """Read the AOI window of a scene (yard and tracks bounds plus ``margin_m``).

    Parameters
    ----------
    scene : SceneRef or str
        The scene (a plain path or URL is accepted too).
    aoi : AOI
        The area of interest; its yard, tracks and excludes are transformed to the
        window's CRS.
    margin_m : float
        Metres added around the yard and tracks bounds.
    max_pixels : int
        Most values (rows x cols x bands) the window may hold; checked before reading.
    max_dataset_pixels : int
        Most values the scene itself may declare; checked on open.

    Returns
    -------
    SceneWindow

    Raises
    ------
    SceneReadError
        The file is not a GeoTIFF, is corrupt or truncated, or is too large.
    CRSError
        The scene has no CRS.
    NoCoverageError
        The scene does not cover the AOI window, or holds only nodata there.
    """
    from rasterio.errors import RasterioError

    if not (isinstance(margin_m, (int, float)) and math.isfinite(margin_m) and margin_m >= 0):
        # The margin belongs to the AOI window, hence an AOIError (a ValueError).
        raise AOIError(f"`margin_m` must be a finite number of metres >= 0, got {margin_m!r}")
    if not isinstance(scene, SceneRef):
        scene = SceneRef(id=str(scene).rsplit("/", 1)[-1].rsplit(".", 1)[0], href=str(scene))
    href = scene.href
    with gdal_env(href):
        with open_scene(href, max_dataset_pixels=max_dataset_pixels) as src:
            if src.crs is None:
                raise CRSError(
                    f"scene {href!r} has no CRS, so the AOI cannot be placed on it; georeference it "
                    "(e.g. gdal_edit.py -a_srs EPSG:32652) and try again."
                )
            native = _is_metric_north_up(src)
            # The AOI is reprojected once, into the window's CRS, and serves both the
            # window bounds and the geometry handed to the core.
            window_crs = _pyproj(src.crs) if native else aoi.crs
            geoms = aoi.geometries_in(window_crs)
            try:
                if native:
                    out = _read_native(src, scene, aoi, geoms, window_crs, margin_m=margin_m, max_pixels=max_pixels)
                else:
                    out = _read_warped(src, scene, aoi, geoms, margin_m=margin_m, max_pixels=max_pixels)
            except RasterioError as exc:
                # Truncated or corrupt blocks surface here, at read time, not at open.
                raise SceneReadError(
                    f"scene {href!r} could not be read ({exc}); the file is corrupt or truncated: download it again."
                ) from None
        image, valid, transform, crs, gsd, reprojected = out
    if not valid.any():
        raise NoCoverageError(
            f"scene {scene.id!r} ({href}) holds only nodata over AOI {aoi.id!r}; choose a scene that covers it."
        )
    cloud = None
    if scene.cloud_mask_href:
        cloud = _read_cloud(scene.cloud_mask_href, transform=transform, crs=crs, shape=valid.shape,
                            max_dataset_pixels=max_dataset_pixels)
    yard, lines, excludes = geoms
    tracks = [np.asarray(line.coords, dtype=float)[:, :2] for line in lines]
    rings = []
    for geom in excludes:
        for poly in getattr(geom, "geoms", [geom]):
            rings.append(np.asarray(poly.exterior.coords, dtype=float)[:, :2])
    return SceneWindow(
        image=image,
        valid=valid,
        cloud=cloud,
        transform=transform,
        crs=crs,
        gsd_m=gsd,
        tracks=tracks,
        track_names=[t.name for t in aoi.tracks],
        excludes=rings,
        scene=scene,
        reprojected=reprojected,
    )


# --------------------------------------------------------------------------------------


def _is_metric_north_up(src) -> bool:
    t = src.transform
    return bool(src.crs.is_projected and src.crs.linear_units_factor[1] == 1.0 and t.b == 0 and t.d == 0
                and t.a > 0 and t.e < 0)


def _aoi_bounds(geoms, margin_m: float) -> tuple[float, float, float, float]:
    import shapely

    yard, lines, _ = geoms
    xmin, ymin, xmax, ymax = shapely.total_bounds(np.array([yard, *lines], dtype=object)).tolist()
    return xmin - margin_m, ymin - margin_m, xmax + margin_m, ymax + margin_m


# The AOI reaches us through lon/lat and back, so a bound meant to sit on a pixel edge may
# be off by a few nanometres; such noise must not add a row or column.
_EDGE_TOL = 1e-6


def _floor(v: float) -> int:
    return math.floor(v + _EDGE_TOL)


def _ceil(v: float) -> int:
    return math.ceil(v - _EDGE_TOL)


def _check_window_size(rows: int, cols: int, bands: int, *, href: str, max_pixels: int) -> None:
    n = rows * cols * bands
    if n > max_pixels:
        raise SceneReadError(
            f"the AOI window of scene {href!r} is {cols} x {rows} x {bands} = {n:,} values, more than "
            f"max_pixels={max_pixels:,}; use a smaller AOI or margin, or raise max_pixels."
        )


def _data_bands(src) -> list[int]:
    from rasterio.enums import ColorInterp

    return [i for i, ci in zip(src.indexes, src.colorinterp) if ci != ColorInterp.alpha] or list(src.indexes)


def _pyproj(crs):
    from pyproj import CRS

    return CRS.from_wkt(crs.to_wkt())


def _read_channel_last(src, bands: list[int], **kwargs) -> np.ndarray:
    """``src.read(bands, **kwargs)`` as a contiguous (rows, cols[, bands]) array.

    GDAL writes pixel-interleaved straight into the channel-last buffer (``out`` is a
    band-first view of it), which saves reading band-first and copying every pixel again.
    """
    if len(bands) == 1:
        return src.read(bands[0], **kwargs)
    dtypes = {src.dtypes[i - 1] for i in bands}
    if len(dtypes) != 1:  # mixed band types: let rasterio choose the common type
        return np.ascontiguousarray(np.moveaxis(src.read(bands, **kwargs), 0, -1))
    window = kwargs.get("window")
    rows, cols = (int(window.height), int(window.width)) if window is not None else (src.height, src.width)
    buf = np.empty((rows, cols, len(bands)), dtype=dtypes.pop())
    src.read(bands, out=buf.transpose(2, 0, 1), **kwargs)
    return buf


def _read_native(src, scene: SceneRef, aoi: AOI, geoms, crs, *, margin_m: float, max_pixels: int):
    from rasterio.windows import Window, from_bounds

    xmin, ymin, xmax, ymax = _aoi_bounds(geoms, margin_m)
    w = from_bounds(xmin, ymin, xmax, ymax, transform=src.transform)
    c0, r0 = _floor(w.col_off), _floor(w.row_off)
    c1, r1 = _ceil(w.col_off + w.width), _ceil(w.row_off + w.height)
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, src.width), min(r1, src.height)
    if c1 <= c0 or r1 <= r0:
        raise NoCoverageError(
            f"scene {scene.id!r} ({scene.href}) does not cover AOI {aoi.id!r}: the AOI window lies outside the "
            "image; choose a scene over the AOI."
        )
    window = Window(c0, r0, c1 - c0, r1 - r0)
    bands = _data_bands(src)
    _check_window_size(window.height, window.width, len(bands), href=scene.href, max_pixels=max_pixels)
    data = _read_channel_last(src, bands, window=window)
    valid = _valid_mask(src, window=window)
    # Computed here rather than with src.window_transform, which multiplies Affines with
    # the `*` operator that affine >= 3 deprecates.
    a, b, c, d, e, f = tuple(src.transform)[:6]
    transform = (a, b, c + a * window.col_off + b * window.row_off, d, e, f + d * window.col_off + e * window.row_off)
    gsd = float((abs(src.transform.a) + abs(src.transform.e)) / 2.0)
    return data, valid, transform, crs, gsd, False


def _valid_mask(src, **kwargs) -> np.ndarray:
    """True where ``src`` holds data; no read at all when GDAL says every pixel is valid."""
    from rasterio.enums import MaskFlags

    if all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums):
        window = kwargs.get("window")
        shape = (int(window.height), int(window.width)) if window is not None else (src.height, src.width)
        return np.ones(shape, dtype=bool)
    return src.dataset_mask(**kwargs) > 0


def _native_gsd_m(src, crs_m) -> float:
    """The scene's pixel size in metres, measured at the scene's centre in ``crs_m``."""
    from rasterio.warp import transform as warp_transform

    col, row = src.width / 2.0, src.height / 2.0
    t = src.transform
    pts = [t @ (col, row), t @ (col + 1, row), t @ (col, row + 1)]
    xs, ys = warp_transform(src.crs, crs_m.to_wkt(), [p[0] for p in pts], [p[1] for p in pts])
    dx = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
    dy = math.hypot(xs[2] - xs[0], ys[2] - ys[0])
    # The finer of the two: warping must not throw detail away.
    return float(min(dx, dy))


def _read_warped(src, scene: SceneRef, aoi: AOI, geoms, *, margin_m: float, max_pixels: int):
    from affine import Affine
    from rasterio.crs import CRS as RioCRS
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds

    dst_crs = aoi.crs
    gsd = _native_gsd_m(src, dst_crs)
    if not (gsd > 0 and math.isfinite(gsd)):
        raise CRSError(f"scene {scene.href!r}: cannot derive a pixel size in metres from its CRS {src.crs}; reproject it to UTM.")
    xmin, ymin, xmax, ymax = _aoi_bounds(geoms, margin_m)
    # Snap the window to whole pixels of a grid anchored at 0 so neighbouring reads agree.
    xmin, ymax = _floor(xmin / gsd) * gsd, _ceil(ymax / gsd) * gsd
    cols, rows = _ceil((xmax - xmin) / gsd), _ceil((ymax - ymin) / gsd)
    bands = _data_bands(src)
    _check_window_size(rows, cols, len(bands), href=scene.href, max_pixels=max_pixels)

    # Refuse early when the scene's footprint misses the window.
    rio_dst = RioCRS.from_wkt(dst_crs.to_wkt())
    sx0, sy0, sx1, sy1 = transform_bounds(src.crs, rio_dst, *src.bounds, densify_pts=21)
    if sx1 <= xmin or sx0 >= xmin + cols * gsd or sy1 <= ymax - rows * gsd or sy0 >= ymax:
        raise NoCoverageError(
            f"scene {scene.id!r} ({scene.href}) does not cover AOI {aoi.id!r}: the AOI window lies outside the "
            "image; choose a scene over the AOI."
        )
    transform = Affine(gsd, 0.0, xmin, 0.0, -gsd, ymax)
    has_mask_source = src.nodata is not None
    with WarpedVRT(
        src,
        crs=rio_dst,
        transform=transform,
        width=cols,
        height=rows,
        resampling=Resampling.bilinear,
        # Without nodata, an alpha band tells pixels outside the scene from black ones.
        add_alpha=not has_mask_source and len(bands) == src.count,
    ) as vrt:
        data = _read_channel_last(vrt, bands)
        valid = vrt.dataset_mask() > 0
    return data, valid, tuple(transform)[:6], dst_crs, gsd, True


def _read_cloud(href: str, *, transform, crs, shape, max_dataset_pixels: int) -> np.ndarray:
    """The cloud mask resampled (nearest) onto the window's grid; True where cloud."""
    from affine import Affine
    from rasterio.crs import CRS as RioCRS
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.vrt import WarpedVRT

    rows, cols = shape
    with gdal_env(href), open_scene(href, max_dataset_pixels=max_dataset_pixels) as src:
        if src.crs is None:
            raise CRSError(f"cloud mask {href!r} has no CRS; georeference it like its scene.")
        try:
            with WarpedVRT(src, crs=RioCRS.from_wkt(crs.to_wkt()), transform=Affine(*transform), width=cols,
                           height=rows, resampling=Resampling.nearest, nodata=0) as vrt:
                data = vrt.read(1)
        except RasterioError as exc:
            raise SceneReadError(f"cloud mask {href!r} could not be read ({exc}); the file is corrupt or truncated.") from None
    return data > 0
