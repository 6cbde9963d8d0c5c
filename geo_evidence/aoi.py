"""Areas of interest: a yard polygon plus track centre lines, read from GeoJSON.

An AOI file is a GeoJSON FeatureCollection in EPSG:4326 (lon/lat). Each feature has
``properties.kind``: ``"yard"`` (Polygon/MultiPolygon, at least one), ``"track"``
(LineString, optional ``name`` and ``gauge_mm``) or ``"exclude"`` (Polygon: areas the
counter must ignore, e.g. a platform). Top-level members ``id``, ``name``, ``description``
and ``sources`` describe it.

:func:`load_aoi` validates the file and reprojects it to a local metric CRS (the UTM zone
of its centroid), where track lengths and yard areas are in metres.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import LineString, MultiPolygon, Polygon, shape
from shapely.validation import explain_validity

from geo_evidence._resources import aoi_dir
from geo_evidence.errors import AOIError

__all__ = ["AOI", "Track", "list_aois", "load_aoi", "resolve_aoi_path", "utm_crs_for"]

#: A bundled AOI name: lower-case letters, digits, ``_`` and ``-``; no path tricks.
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

#: A track whose nearest point is farther than this from the yard is refused.
MAX_TRACK_DISTANCE_M = 500.0


@dataclass(frozen=True)
class Track:
    """One track centre line, in lon/lat and in the AOI's metric CRS."""

    name: str
    line_lonlat: LineString
    line: LineString
    gauge_mm: int | None = None

    @property
    def length_m(self) -> float:
        return float(self.line.length)


@dataclass(frozen=True)
class AOI:
    """A validated AOI. Geometries without a suffix are in :attr:`crs` (metres)."""

    id: str
    name: str
    description: str
    sources: tuple[str, ...]
    crs: CRS
    yard_lonlat: Polygon | MultiPolygon
    yard: Polygon | MultiPolygon
    tracks: tuple[Track, ...]
    excludes: tuple[Polygon, ...] = ()
    excludes_lonlat: tuple[Polygon, ...] = ()
    path: Path | None = None

    @property
    def track_length_m(self) -> float:
        return float(sum(t.length_m for t in self.tracks))

    @property
    def area_m2(self) -> float:
        return float(self.yard.area)

    @property
    def bounds_lonlat(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the yard and every track, in degrees."""
        geoms = [self.yard_lonlat, *(t.line_lonlat for t in self.tracks)]
        return tuple(shapely.total_bounds(np.array(geoms, dtype=object)).tolist())

    @cached_property
    def checksum(self) -> str | None:
        """sha256 of the AOI file, when it came from one."""
        if self.path is None:
            return None
        import hashlib

        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def geometries_in(self, crs: CRS | str | int) -> tuple[Any, list[LineString], list[Any]]:
        """The yard, the track lines and the exclude polygons reprojected to ``crs``."""
        target = CRS.from_user_input(crs)
        tr = Transformer.from_crs(CRS.from_epsg(4326), target, always_xy=True)

        def project(geom):
            return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

        return (
            project(self.yard_lonlat),
            [project(t.line_lonlat) for t in self.tracks],
            [project(e) for e in self.excludes_lonlat],
        )

    def summary(self) -> dict[str, Any]:
        """What ``geoev aoi show`` prints: tracks, total length, area, CRS."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "crs": self.crs.to_string(),
            "tracks": len(self.tracks),
            "track_names": [t.name for t in self.tracks],
            "track_length_m": round(self.track_length_m, 1),
            "yard_area_m2": round(self.area_m2, 1),
            "yard_area_ha": round(self.area_m2 / 1e4, 2),
            "bounds_lonlat": [round(v, 6) for v in self.bounds_lonlat],
            "sources": list(self.sources),
            "path": str(self.path) if self.path else None,
        }


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM CRS whose zone holds ``(lon, lat)``."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def list_aois() -> list[str]:
    """Names of the bundled AOIs (``aoi/*.geojson``), sorted."""
    folder = aoi_dir()
    return sorted(p.stem for p in folder.glob("*.geojson") if SAFE_NAME.match(p.stem))


def resolve_aoi_path(name_or_path: str | Path) -> Path:
    """Turn ``--aoi`` into a file path.

    A value ending in ``.geojson`` or ``.json`` is a path to a file. Anything else must be a
    safe identifier naming a bundled AOI (``aoi/NAME.geojson``); a value such as ``../etc``
    is refused rather than followed.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".geojson", ".json")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise AOIError(f"AOI file {text!r} does not exist; give a path to a GeoJSON file or a bundled AOI name ({', '.join(list_aois())}).")
        return path
    if not SAFE_NAME.match(text):
        raise AOIError(
            f"AOI name {text!r} is not a safe identifier (lower-case letters, digits, '_' and '-'); "
            "to use a file, give its path ending in .geojson."
        )
    path = aoi_dir() / f"{text}.geojson"
    if not path.is_file():
        raise AOIError(f"no bundled AOI named {text!r}; known AOIs: {', '.join(list_aois()) or 'none'}.")
    return path


def load_aoi(name_or_path: str | Path | dict) -> AOI:
    """Load and validate an AOI by bundled name, file path or an already-parsed GeoJSON dict.

    Raises :class:`~geo_evidence.errors.AOIError` naming the problem and the fix.
    """
    if isinstance(name_or_path, dict):
        return _aoi_from_geojson(name_or_path, label="<dict>", path=None)
    path = resolve_aoi_path(name_or_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # Windows tools often add a BOM
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AOIError(f"AOI file {str(path)!r} is not GeoJSON: {exc}. Save it as a GeoJSON FeatureCollection.") from None
    return _aoi_from_geojson(data, label=str(path), path=path)


def _aoi_from_geojson(data: Any, *, label: str, path: Path | None) -> AOI:
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise AOIError(f"AOI {label!r} is not a GeoJSON FeatureCollection; wrap the yard and track features in one.")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise AOIError(f"AOI {label!r} has no features; add a 'yard' polygon and 'track' lines.")

    yards, tracks_ll, names, gauges, excludes = [], [], [], [], []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict) or not isinstance(feat.get("geometry"), dict):
            raise AOIError(f"AOI {label!r}: feature {i} has no geometry.")
        props = feat.get("properties") or {}
        kind = props.get("kind")
        try:
            geom = shape(feat["geometry"])
        except Exception as exc:  # shapely raises several types for bad GeoJSON geometry
            raise AOIError(f"AOI {label!r}: feature {i} has an unreadable geometry ({exc}).") from None
        _check_lonlat(geom, label=label, index=i)
        if kind == "yard":
            if not isinstance(geom, (Polygon, MultiPolygon)):
                raise AOIError(f"AOI {label!r}: yard feature {i} must be a Polygon or MultiPolygon, got {geom.geom_type}.")
            if not geom.is_valid:
                raise AOIError(
                    f"AOI {label!r}: yard feature {i} is not a valid polygon ({explain_validity(geom)}); "
                    "redraw it without self-crossing edges."
                )
            yards.append(geom)
        elif kind == "track":
            if not isinstance(geom, LineString):
                raise AOIError(f"AOI {label!r}: track feature {i} must be a LineString, got {geom.geom_type}.")
            if len(geom.coords) < 2 or geom.length == 0:
                raise AOIError(f"AOI {label!r}: track feature {i} has fewer than two distinct points.")
            tracks_ll.append(geom)
            names.append(str(props.get("name") or f"track-{len(tracks_ll)}"))
            gauge = props.get("gauge_mm")
            gauges.append(int(gauge) if gauge is not None else None)
        elif kind == "exclude":
            if not isinstance(geom, (Polygon, MultiPolygon)) or not geom.is_valid:
                raise AOIError(f"AOI {label!r}: exclude feature {i} must be a valid Polygon.")
            excludes.append(geom)
        else:
            raise AOIError(f"AOI {label!r}: feature {i} has kind {kind!r}; use 'yard', 'track' or 'exclude'.")

    if not yards:
        raise AOIError(f"AOI {label!r} has no yard; add a Polygon feature with properties.kind = 'yard'.")
    if not tracks_ll:
        raise AOIError(f"AOI {label!r} has no tracks; add LineString features with properties.kind = 'track'.")
    if len(set(names)) != len(names):
        raise AOIError(f"AOI {label!r} has duplicate track names; give each track a unique 'name'.")

    yard_ll = yards[0] if len(yards) == 1 else shapely.union_all(yards)
    c = yard_ll.centroid
    crs = utm_crs_for(c.x, c.y)
    tr = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)

    def project(geom):
        return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    yard = project(yard_ll)
    tracks = []
    for name, line_ll, gauge in zip(names, tracks_ll, gauges):
        line = project(line_ll)
        dist = yard.distance(line)
        if dist > MAX_TRACK_DISTANCE_M:
            raise AOIError(
                f"AOI {label!r}: track {name!r} is {dist:.0f} m from the yard (limit {MAX_TRACK_DISTANCE_M:.0f} m); "
                "check its coordinates or the yard polygon."
            )
        tracks.append(Track(name=name, line_lonlat=line_ll, line=line, gauge_mm=gauge))

    aoi_id = str(data.get("id") or (path.stem if path else "aoi"))
    if not SAFE_NAME.match(aoi_id):
        raise AOIError(f"AOI {label!r}: id {aoi_id!r} is not a safe identifier (lower-case letters, digits, '_' and '-').")
    sources = data.get("sources") or []
    if isinstance(sources, str):
        sources = [sources]
    return AOI(
        id=aoi_id,
        name=str(data.get("name") or aoi_id),
        description=str(data.get("description") or ""),
        sources=tuple(str(s) for s in sources),
        crs=crs,
        yard_lonlat=yard_ll,
        yard=yard,
        tracks=tuple(tracks),
        excludes=tuple(project(e) for e in excludes),
        excludes_lonlat=tuple(excludes),
        path=path.resolve() if path else None,
    )


def _check_lonlat(geom, *, label: str, index: int) -> None:
    xy = shapely.get_coordinates(geom)
    if xy.size == 0:
        raise AOIError(f"AOI {label!r}: feature {index} is empty.")
    if not np.isfinite(xy).all():
        raise AOIError(f"AOI {label!r}: feature {index} has non-finite coordinates.")
    lon, lat = xy[:, 0], xy[:, 1]
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        if (np.abs(lon) <= 90).all() and (np.abs(lat) <= 180).all():
            hint = "they look like (lat, lon); GeoJSON wants (lon, lat), so swap them"
        else:
            hint = "they look projected (metres); reproject the file to EPSG:4326 lon/lat"
        raise AOIError(f"AOI {label!r}: feature {index} has coordinates outside lon/lat range: {hint}.")
