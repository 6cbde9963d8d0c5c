"""GDAL settings for scene reads, scoped with :class:`rasterio.Env` (never ``os.environ``).

Every open of a scene, local or remote, happens inside :func:`gdal_env`, so the settings
below apply to our reads only and leave the caller's GDAL configuration untouched.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import rasterio

from geo_evidence.errors import SceneReadError

#: Most values (rows x cols x bands) a scene may declare: a 40,000 x 40,000 RGBA tile passes,
#: a forged header claiming a million pixels square does not.
DEFAULT_MAX_DATASET_PIXELS = 8 * 1024**3

#: Hosts that never go through a proxy: a test server or a local tile server.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

#: Settings for every read. Why each one:
#: - GDAL_DISABLE_READDIR_ON_OPEN: don't list the folder (or issue an HTTP directory
#:   listing) looking for sidecar files; a COG carries everything it needs.
#: - GDAL_HTTP_MAX_RETRY / RETRY_DELAY: ride out a flaky tile host (429, 502, 503, 504).
#: - VSI_CACHE: keep the header and recently read blocks in memory between window reads.
#: - GDAL_HTTP_MERGE_CONSECUTIVE_RANGES: one request for adjacent tiles, not many.
#: - GDAL_HTTP_TIMEOUT / CONNECTTIMEOUT: a dead host fails the scene, not the whole batch.
BASE_OPTIONS: dict[str, object] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": 3,
    "GDAL_HTTP_RETRY_DELAY": 0.5,
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_TIMEOUT": 60,
    "GDAL_HTTP_CONNECTTIMEOUT": 15,
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": 64 * 1024 * 1024,
    "CPL_VSIL_CURL_CACHE_SIZE": 64 * 1024 * 1024,
}

#: Extensions GDAL may request over HTTP: stops it probing ``.aux.xml``, ``.ovr``, ``.msk``.
TIFF_EXTENSIONS = ".tif,.tiff,.TIF,.TIFF"


def is_url(href: str) -> bool:
    """True for an http(s) URL, False for a local path."""
    return urlsplit(str(href)).scheme.lower() in ("http", "https")


def is_loopback(href: str) -> bool:
    """True for a URL on this machine (127.0.0.1, localhost)."""
    return is_url(href) and (urlsplit(str(href)).hostname or "") in LOOPBACK_HOSTS


def gdal_env(href: str | None = None, **overrides) -> rasterio.Env:
    """A :class:`rasterio.Env` holding the scene-read settings for ``href``.

    Parameters
    ----------
    href : str, optional
        The scene being opened; a URL whose path ends in ``.tif``/``.tiff`` also limits
        the extensions GDAL may fetch, and a loopback URL bypasses any proxy.
    **overrides
        Further GDAL config options, which win over the defaults.
    """
    options = dict(BASE_OPTIONS)
    if href is not None and is_url(href):
        path = urlsplit(href).path.lower()
        if path.endswith((".tif", ".tiff")):
            # Only when the URL has a TIFF extension: a signed URL without one would be
            # refused by GDAL under this setting.
            options["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] = TIFF_EXTENSIONS
        if is_loopback(href):
            # A proxy configured for the outside world (http_proxy in the environment,
            # which libcurl reads itself) must not see loopback requests: an empty proxy
            # string tells libcurl to use none.
            options["GDAL_HTTP_PROXY"] = ""
            options["GDAL_HTTPS_PROXY"] = ""
            options["NO_PROXY"] = ",".join(LOOPBACK_HOSTS)
    options.update(overrides)
    return rasterio.Env(**{k: v for k, v in options.items() if v is not None})


def open_scene(href: str, *, max_dataset_pixels: int = DEFAULT_MAX_DATASET_PIXELS):
    """Open a GeoTIFF/COG with the GTiff driver only and check its declared size.

    Must be called inside :func:`geo_evidence.imagery._gdal.gdal_env`.

    Raises
    ------
    SceneReadError
        Not a GeoTIFF (a VRT, PNG, ... named .tif), unreadable, or declaring more than
        ``max_dataset_pixels`` values.
    """
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            # A file without georeferencing is refused below with a CRSError that says
            # how to fix it; rasterio's warning would only repeat it less clearly.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            # driver="GTiff" restricts GDAL's probing to that driver: a VRT (which can point at
            # any file on the machine), PNG or HTML page named .tif is refused, not opened.
            src = rasterio.open(href, driver="GTiff")
    except (RasterioError, OSError) as exc:
        raise SceneReadError(
            f"scene {href!r} is not a readable GeoTIFF ({exc}); check that the file is a complete GeoTIFF/COG."
        ) from None
    if src.driver != "GTiff":  # belt and braces: never trust another driver with a path
        src.close()
        raise SceneReadError(f"scene {href!r} is a {src.driver} file, not a GeoTIFF; convert it to a COG.")
    declared = int(src.width) * int(src.height) * int(src.count)
    if declared > max_dataset_pixels:
        src.close()
        raise SceneReadError(
            f"scene {href!r} declares {src.width} x {src.height} x {src.count} = {declared:,} values, more than "
            f"the limit of {max_dataset_pixels:,}; if the file is genuine, raise max_dataset_pixels."
        )
    return src
