"""Scene sources: a folder of GeoTIFFs, a static STAC catalog, a STAC API search.

:func:`list_scenes` turns any of them into :class:`SceneRef` records sorted by acquisition
datetime. The datetime comes from the STAC item, else the ``TIFFTAG_DATETIME`` tag, else an
ISO date in the file name; a scene with none keeps ``datetime=None`` and a warning is
logged: the date of a piece of evidence is never guessed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

from geo_evidence._io import sha256_file
from geo_evidence.errors import SceneReadError, SceneSourceError
from geo_evidence.imagery._gdal import gdal_env, is_loopback, is_url, open_scene

if TYPE_CHECKING:  # pragma: no cover
    from geo_evidence.aoi import AOI

__all__ = [
    "SceneRef",
    "default_scene_source",
    "list_scenes",
    "open_url",
    "scene_checksum",
    "scene_datetime_from_filename",
    "parse_tiff_datetime",
]

log = logging.getLogger(__name__)

#: File name endings that a folder source lists.
TIFF_SUFFIXES = (".tif", ".tiff")

#: Prefix that marks a STAC API URL (``stac-api+https://host/path``).
STAC_API_PREFIX = "stac-api+"

#: sha2-256 multihash prefix (code 0x12, length 0x20) used by the STAC file extension.
_SHA256_MULTIHASH = "1220"

_CHUNK = 1 << 20

# 2023-10-05, 2023_10_05, 20231005 (not part of a longer digit run), optional time.
_FILENAME_DATE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<sep>[-_.]?)(?P<m>0[1-9]|1[0-2])(?P=sep)(?P<d>0[1-9]|[12]\d|3[01])"
    r"(?:[T_-]?(?P<H>[01]\d|2[0-3])[:\-]?(?P<M>[0-5]\d)(?:[:\-]?(?P<S>[0-5]\d))?)?(?!\d)"
)
_TIFF_DATETIME = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})\s*$")


@dataclass(frozen=True)
class SceneRef:
    """One acquisition: where its image is and what is known about it.

    Attributes
    ----------
    id : str
        STAC item id, or the file name without suffix for a folder source.
    href : str
        Local path or http(s) URL of the GeoTIFF/COG.
    datetime : datetime.datetime or None
        Acquisition time, timezone-aware UTC; None when no source gives one.
    datetime_source : {"stac", "tiff_tag", "filename"} or None
        Where :attr:`datetime` came from.
    checksum : str or None
        sha256 hex digest declared by the catalog (``file:checksum``), if any.
    cloud_mask_href : str or None
        A raster whose non-zero pixels mark cloud, when the catalog has one.
    properties : dict
        ``simulated``, ``gsd``, ``platform`` and other item properties.
    bbox : tuple of float or None
        Footprint (west, south, east, north) in degrees, when known.
    """

    id: str
    href: str
    datetime: dt.datetime | None = None
    datetime_source: str | None = None
    checksum: str | None = None
    cloud_mask_href: str | None = None
    properties: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    bbox: tuple[float, float, float, float] | None = None

    @property
    def simulated(self) -> bool | None:
        """True for a simulated scene, None when the source does not say."""
        value = self.properties.get("simulated")
        return None if value is None else bool(value)


# --------------------------------------------------------------------------------------
# Public entry points


def default_scene_source(aoi_id: str) -> str:
    """The bundled simulated scenes of a bundled AOI: ``sample_tiles/<aoi_id>/catalog.json``.

    Raises
    ------
    SceneSourceError
        If ``aoi_id`` is not a safe identifier or no sample tiles are bundled for it.
    """
    from geo_evidence._resources import sample_tiles_dir
    from geo_evidence.aoi import SAFE_NAME

    if not SAFE_NAME.match(str(aoi_id)):
        raise SceneSourceError(f"AOI id {aoi_id!r} is not a safe identifier; give a bundled AOI name such as 'tumangang'.")
    path = sample_tiles_dir() / str(aoi_id) / "catalog.json"
    if not path.is_file():
        raise SceneSourceError(
            f"no bundled sample tiles for AOI {aoi_id!r} ({path} does not exist); "
            "pass --scenes with a folder of GeoTIFFs or a STAC catalog."
        )
    return str(path)


def list_scenes(
    source: str | Path,
    *,
    aoi: AOI | None = None,
    collection: str | None = None,
    start: dt.date | dt.datetime | str | None = None,
    end: dt.date | dt.datetime | str | None = None,
) -> list[SceneRef]:
    """List the scenes of a source, sorted by acquisition datetime.

    Parameters
    ----------
    source : str or Path
        A folder of GeoTIFFs (``<stem>.cloud.tif`` beside ``<stem>.tif`` is its cloud mask); a static STAC ``catalog.json`` / ``collection.json`` (or a
        single item or an ItemCollection) as a path or http(s) URL; or a STAC API URL,
        either prefixed ``stac-api+`` or passed together with ``collection``.
    aoi : AOI, optional
        Keep only scenes whose footprint intersects the AOI (always sent to a STAC API).
    collection : str, optional
        STAC API collection to search.
    start, end : date, datetime or ISO string, optional
        Keep only scenes acquired in ``[start, end]``; a date ``end`` includes that day.
        Scenes without a datetime are dropped when either bound is given.

    Returns
    -------
    list of SceneRef
        Sorted by datetime; scenes without one come last (and a warning is logged).

    Raises
    ------
    SceneSourceError
        The source does not exist, cannot be read, or holds no scene (after filtering).
    """
    text = str(source)
    t0, t1 = _as_utc(start, end=False), _as_utc(end, end=True)
    if t0 is not None and t1 is not None and t1 < t0:
        raise SceneSourceError(f"start {start!s} is after end {end!s}; swap them.")
    bbox = tuple(aoi.bounds_lonlat) if aoi is not None else None

    if text.startswith(STAC_API_PREFIX) or (collection is not None and is_url(text)):
        url = text[len(STAC_API_PREFIX):] if text.startswith(STAC_API_PREFIX) else text
        scenes = _from_stac_api(url, collection=collection, bbox=bbox, start=t0, end=t1)
        what = f"STAC API {url!r}" + (f" (collection {collection!r})" if collection else "")
    elif is_url(text):
        scenes = _from_static_stac(text)
        what = f"STAC catalog {text!r}"
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            scenes = _from_folder(path)
            what = f"folder {text!r}"
        elif path.is_file() and path.suffix.lower() == ".json":
            scenes = _from_static_stac(str(path.resolve()))
            what = f"STAC catalog {text!r}"
        elif path.is_file() and path.suffix.lower() in TIFF_SUFFIXES:
            mask = path.with_name(path.stem + ".cloud.tif")
            scenes = [_scene_from_file(path, cloud=mask if mask.is_file() else None)]
            what = f"file {text!r}"
        elif not path.exists():
            raise SceneSourceError(
                f"scene source {text!r} does not exist; give a folder of GeoTIFFs, a STAC catalog.json "
                "(path or http URL) or 'stac-api+URL' with a collection."
            )
        else:
            raise SceneSourceError(
                f"scene source {text!r} is neither a folder, a STAC catalog (.json) nor an http(s) URL; "
                "give a folder of GeoTIFFs, a catalog.json, or 'stac-api+URL' with a collection."
            )
    n_all = len(scenes)
    scenes = [s for s in scenes if _in_period(s, t0, t1)]
    if bbox is not None:
        scenes = [s for s in scenes if _intersects(s, bbox)]
    if not scenes:
        if n_all == 0 and what.startswith("STAC API"):
            raise SceneSourceError(
                f"{what} found no item matching"
                + (f" the AOI {aoi.id!r}" if aoi is not None else "")
                + (f" in {start!s} to {end!s}" if (t0 or t1) else "")
                + "; check the collection id, widen the period, or choose another source."
            )
        if n_all == 0:
            raise SceneSourceError(f"{what} holds no scenes; add GeoTIFF/COG scenes to it or choose another --scenes source.")
        raise SceneSourceError(
            f"none of the {n_all} scenes of {what} matches"
            + (f" the AOI {aoi.id!r}" if aoi is not None else "")
            + (f" the period {start!s} to {end!s}" if (t0 or t1) else "")
            + "; widen the period or choose a source that covers the AOI."
        )
    undated = [s.id for s in scenes if s.datetime is None]
    if undated:
        log.warning(
            "%d scene(s) of %s have no acquisition datetime (no STAC datetime, TIFFTAG_DATETIME or date in the "
            "file name): %s; they are listed last and cannot be placed in a time series.",
            len(undated), what, ", ".join(undated),
        )
    far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    return sorted(scenes, key=lambda s: (s.datetime is None, s.datetime or far, s.id))


def scene_checksum(scene: SceneRef | str | Path, *, cache=None, trust_cache: bool = True) -> str:
    """sha256 hex digest of a scene's image: the catalog's when declared, else computed.

    The file (or URL, fetched with urllib) is streamed in 1 MiB chunks, never loaded whole.

    Parameters
    ----------
    scene : SceneRef, str or Path
        A SceneRef's declared ``checksum`` is trusted; a plain href is always hashed
        unless a ``cache`` is given.
    cache : geo_evidence._io.ChecksumCache, optional
        Remembers the sha256 of local files by their stat signature (device, inode, size,
        mtime, ctime): a local file that is provably unchanged since it was last hashed is
        not read again. URLs are always fetched.
    trust_cache : bool
        False hashes the file even when the cache has it (and refreshes the entry).

    Raises
    ------
    SceneReadError
        The file or URL cannot be read.
    """
    if isinstance(scene, SceneRef):
        if scene.checksum:
            return scene.checksum
        href = scene.href
    else:
        href = str(scene)
    try:
        if not is_url(href):
            if cache is not None:
                return cache.checksum(href, trust=trust_cache)
            return sha256_file(href)
        h = hashlib.sha256()
        with open_url(href) as resp:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                h.update(chunk)
    except OSError as exc:
        raise SceneReadError(f"cannot read scene {href!r} to checksum it ({exc}); check that the file or URL exists.") from None
    return h.hexdigest()


def open_url(url: str, *, timeout: float = 60.0):
    """Open an http(s) URL with urllib; loopback hosts bypass any configured proxy."""
    handlers = [urllib.request.ProxyHandler({})] if is_loopback(url) else []
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, headers={"User-Agent": "geo_evidence"})
    return opener.open(req, timeout=timeout)


# --------------------------------------------------------------------------------------
# Datetimes


def parse_tiff_datetime(value: str | None) -> dt.datetime | None:
    """Parse a TIFF ``DateTime`` tag (``YYYY:MM:DD HH:MM:SS``, taken as UTC); None if malformed."""
    if not value:
        return None
    m = _TIFF_DATETIME.match(str(value))
    if not m:
        return None
    try:
        return dt.datetime(*map(int, m.groups()), tzinfo=dt.timezone.utc)
    except ValueError:  # e.g. month 13: a broken tag is no date at all
        return None


def scene_datetime_from_filename(name: str) -> dt.datetime | None:
    """An ISO date (``2023-10-05``, ``2023_10_05``, ``20231005``, optional time) in a file name."""
    for m in _FILENAME_DATE.finditer(Path(name).name):
        try:
            return dt.datetime(
                int(m["y"]), int(m["m"]), int(m["d"]),
                int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0), tzinfo=dt.timezone.utc,
            )
        except ValueError:  # 2023-02-31
            continue
    return None


def _resolve_datetime(stac_dt: dt.datetime | None, href: str, *, tags: dict | None = None) -> tuple[dt.datetime | None, str | None]:
    """STAC datetime > TIFFTAG_DATETIME > date in the file name > None."""
    if stac_dt is not None:
        return _to_utc(stac_dt), "stac"
    if tags is None:
        tags = _read_tags(href)
    tag_dt = parse_tiff_datetime(tags.get("TIFFTAG_DATETIME"))
    if tag_dt is not None:
        return tag_dt, "tiff_tag"
    name_dt = scene_datetime_from_filename(urlsplit(href).path if is_url(href) else href)
    if name_dt is not None:
        return name_dt, "filename"
    return None, None


def _read_tags(href: str) -> dict:
    """Dataset tags of a GeoTIFF; {} when it cannot be opened (read_window reports that)."""
    from rasterio.errors import RasterioError

    try:
        with gdal_env(href), open_scene(href) as src:
            tags = dict(src.tags())
            tags["_crs"] = src.crs
            tags["_transform"] = src.transform
            tags["_bounds"] = tuple(src.bounds)
            return tags
    except (RasterioError, OSError) as exc:  # SceneReadError is an OSError
        log.debug("cannot read tags of %s: %s", href, exc)
        return {}


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _as_utc(value, *, end: bool) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SceneSourceError(f"date {value!r} is not an ISO date; write it as YYYY-MM-DD.") from None
        if len(value.strip()) == 10:  # a bare date
            value = parsed.date()
        else:
            return _to_utc(parsed)
    if isinstance(value, dt.datetime):
        return _to_utc(value)
    if isinstance(value, dt.date):
        t = dt.time.max if end else dt.time.min
        return dt.datetime.combine(value, t, tzinfo=dt.timezone.utc)
    raise SceneSourceError(f"date {value!r} must be a date, datetime or ISO string.")


def _in_period(scene: SceneRef, t0, t1) -> bool:
    if t0 is None and t1 is None:
        return True
    if scene.datetime is None:
        return False
    return (t0 is None or scene.datetime >= t0) and (t1 is None or scene.datetime <= t1)


def _intersects(scene: SceneRef, bbox) -> bool:
    fb = scene.bbox
    if fb is None:  # unknown footprint: let read_window decide (NoCoverageError)
        return True
    return not (fb[2] < bbox[0] or fb[0] > bbox[2] or fb[3] < bbox[1] or fb[1] > bbox[3])


# --------------------------------------------------------------------------------------
# Folder source


#: A file ``<stem>.cloud.tif`` beside ``<stem>.tif`` is that scene's cloud mask, not a scene.
CLOUD_MASK_SUFFIXES = (".cloud.tif", ".cloud.tiff")


def _from_folder(folder: Path) -> list[SceneRef]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES)
    masks = {p.name.lower(): p for p in files if p.name.lower().endswith(CLOUD_MASK_SUFFIXES)}
    out = []
    for p in files:
        if p.name.lower() in masks:
            continue
        cloud = next((masks[f"{p.stem}{suf}".lower()] for suf in CLOUD_MASK_SUFFIXES if f"{p.stem}{suf}".lower() in masks), None)
        out.append(_scene_from_file(p, cloud=cloud))
    return out


def _scene_from_file(path: Path, *, cloud: Path | None = None) -> SceneRef:
    href = str(path.resolve())
    tags = _read_tags(href)
    when, source = _resolve_datetime(None, href, tags=tags)
    props: dict[str, Any] = {}
    bbox = None
    crs, transform, bounds = tags.get("_crs"), tags.get("_transform"), tags.get("_bounds")
    if crs is not None and transform is not None:
        if crs.is_projected and crs.linear_units_factor[1] == 1.0:
            props["gsd"] = round(float((abs(transform.a) + abs(transform.e)) / 2.0), 4)
        props["proj:epsg"] = crs.to_epsg()
        try:
            from rasterio.warp import transform_bounds

            bbox = tuple(transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21))
        except Exception as exc:  # an odd CRS: the footprint is unknown, not an error
            log.debug("cannot compute the footprint of %s: %s", href, exc)
    simulated = tags.get("simulated", tags.get("SIMULATED"))
    if simulated is not None:
        props["simulated"] = str(simulated).strip().lower() in ("1", "true", "yes")
    return SceneRef(id=path.stem, href=href, datetime=when, datetime_source=source, properties=props, bbox=bbox,
                    cloud_mask_href=str(cloud.resolve()) if cloud is not None else None)


# --------------------------------------------------------------------------------------
# STAC: static catalogs and STAC API


def _stac_io():
    from pystac.stac_io import DefaultStacIO

    class _LoopbackSafeStacIO(DefaultStacIO):
        # urllib with proxy bypass for loopback hosts; the same opener as scene_checksum.
        def read_text_from_href(self, href: str) -> str:
            if is_url(href):
                with open_url(href) as resp:
                    return resp.read().decode("utf-8")
            return super().read_text_from_href(href)

    return _LoopbackSafeStacIO()


def _from_static_stac(href: str) -> list[SceneRef]:
    import pystac

    try:
        obj = pystac.read_file(href, stac_io=_stac_io())
    except FileNotFoundError:
        raise SceneSourceError(f"STAC catalog {href!r} does not exist; check the path.") from None
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError, pystac.STACTypeError) as exc:
        # urllib's HTTPError/URLError are OSErrors; a malformed document is a ValueError or
        # a STACError / STACTypeError.
        raise SceneSourceError(
            f"cannot read STAC catalog {href!r} ({type(exc).__name__}: {exc}); "
            "give a catalog.json, collection.json or item JSON that pystac can read."
        ) from None
    if isinstance(obj, pystac.Item):
        items: Iterable = [obj]
    elif isinstance(obj, pystac.ItemCollection):
        items = list(obj)
    elif isinstance(obj, pystac.Catalog):  # Collection is a Catalog
        try:
            items = list(obj.get_items(recursive=True))
        except (OSError, ValueError, pystac.STACError) as exc:
            raise SceneSourceError(f"cannot walk STAC catalog {href!r} ({exc}); check its child and item links.") from None
    else:
        raise SceneSourceError(f"{href!r} is a STAC {type(obj).__name__}, not a catalog, collection or item.")
    return [_scene_from_item(item, source=href) for item in items]


def _from_stac_api(url: str, *, collection: str | None, bbox, start, end) -> list[SceneRef]:
    import pystac
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO

    if collection is None:
        raise SceneSourceError(f"STAC API {url!r} needs a collection; pass collection= (or --collection).")
    stac_io = StacApiIO(max_retries=3, timeout=60)
    if is_loopback(url):
        # requests reads proxy settings from the environment; a loopback API must not go
        # through a proxy meant for the outside world.
        stac_io.session.trust_env = False
    dt_range = None
    if start is not None or end is not None:
        dt_range = f"{start.isoformat() if start else '..'}/{end.isoformat() if end else '..'}"
    try:
        client = Client.open(url, stac_io=stac_io)
        search = client.search(collections=[collection], bbox=list(bbox) if bbox else None, datetime=dt_range)
        items = list(search.items())
    except (APIError, OSError, ValueError, pystac.STACError) as exc:
        raise SceneSourceError(
            f"STAC API search at {url!r} (collection {collection!r}) failed ({type(exc).__name__}: {exc}); "
            "check the URL, that it serves /search, and the collection id."
        ) from None
    except Exception as exc:  # requests' ConnectionError and NotImplementedError for missing conformance
        raise SceneSourceError(
            f"STAC API {url!r} cannot be searched ({type(exc).__name__}: {exc}); check the URL and that the API "
            "conforms to STAC API item-search."
        ) from None
    return [_scene_from_item(item, source=url) for item in items]


def _image_asset(item):
    """The GeoTIFF data asset of an item: role data/visual, or key image/visual/data."""
    assets = item.assets

    def is_tiff(a) -> bool:
        mt = (a.media_type or "").lower()
        return "tiff" in mt or urlsplit(a.href).path.lower().endswith(TIFF_SUFFIXES)

    candidates = [(k, a) for k, a in assets.items() if is_tiff(a) and "cloud" not in (a.roles or []) and "cloud" not in k.lower()]
    for pref in ("image", "visual", "data", "pan", "panchromatic"):
        for k, a in candidates:
            if k == pref:
                return a
    for k, a in candidates:
        if {"data", "visual"} & set(a.roles or []):
            return a
    return candidates[0][1] if candidates else None


def _cloud_asset(item):
    for k, a in item.assets.items():
        if "cloud" in (a.roles or []) or k.lower() in ("cloud", "cloud_mask", "cloudmask"):
            return a
    return None


def _checksum_from(asset) -> str | None:
    value = asset.extra_fields.get("file:checksum")
    if isinstance(value, str) and value.lower().startswith(_SHA256_MULTIHASH) and len(value) == 68:
        return value[4:].lower()
    return None  # another hash function: compute sha256 ourselves when asked


def _scene_from_item(item, *, source: str) -> SceneRef:
    asset = _image_asset(item)
    if asset is None:
        raise SceneSourceError(
            f"STAC item {item.id!r} of {source!r} has no GeoTIFF asset (looked for key 'image'/'visual'/'data' or "
            "role 'data' with a .tif href or image/tiff media type); add one."
        )
    href = asset.get_absolute_href() or asset.href
    cloud = _cloud_asset(item)
    cloud_href = (cloud.get_absolute_href() or cloud.href) if cloud is not None else None
    stac_dt = item.datetime
    if stac_dt is None and item.properties.get("start_datetime"):
        # A range-only item: its start is when the acquisition began.
        stac_dt = dt.datetime.fromisoformat(str(item.properties["start_datetime"]).replace("Z", "+00:00"))
    when, source_kind = _resolve_datetime(stac_dt, href)
    props = dict(item.properties)
    props.pop("datetime", None)
    for key in ("gsd", "simulated", "platform"):
        if key not in props and key in asset.extra_fields:
            props[key] = asset.extra_fields[key]
    props.setdefault("collection", item.collection_id)
    return SceneRef(
        id=item.id,
        href=href,
        datetime=when,
        datetime_source=source_kind,
        checksum=_checksum_from(asset),
        cloud_mask_href=cloud_href,
        properties=props,
        bbox=_item_bbox(item),
    )


def _item_bbox(item) -> tuple[float, float, float, float] | None:
    if item.bbox and len(item.bbox) >= 4:
        b = item.bbox
        return (b[0], b[1], b[3], b[4]) if len(b) == 6 else tuple(b[:4])  # 3-D bbox: drop heights
    if item.geometry:
        import shapely.geometry

        try:
            return tuple(shapely.geometry.shape(item.geometry).bounds)
        except (ValueError, TypeError, AttributeError):  # an unreadable footprint is unknown, not an error
            return None
    return None
