"""Shared fixtures: tiny GeoTIFFs written with rasterio, and a loopback HTTP server."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for tests/_http.py


@pytest.fixture
def make_geotiff(tmp_path):
    """Factory writing a small GeoTIFF into ``tmp_path`` and returning its path.

    ``make_geotiff(name, data, *, crs="EPSG:32652", transform=None, nodata=None,
    tags=None, **profile)``: ``data`` is (rows, cols) for panchromatic or
    (bands, rows, cols); ``transform`` defaults to 0.5 m pixels at the
    UTM 52N origin (331000, 4699000); ``crs=None`` writes no CRS; other keywords go into the profile
    (``tiled=True``, ``compress="deflate"``, ``photometric="RGB"``, ...).
    """
    import rasterio
    from affine import Affine

    def from_origin(west, north, xres, yres):
        # Not rasterio.transform.from_origin: it uses Affine `*`, which affine 3 deprecates.
        return Affine(xres, 0.0, west, 0.0, -yres, north)

    def factory(name, data, *, crs="EPSG:32652", transform=None, nodata=None, tags=None, **profile):
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        count, rows, cols = data.shape
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        prof = {
            "driver": "GTiff",
            "width": cols,
            "height": rows,
            "count": count,
            "dtype": data.dtype,
            "transform": transform if transform is not None else from_origin(331000.0, 4699000.0, 0.5, 0.5),
            "nodata": nodata,
        }
        if crs is not None:
            prof["crs"] = crs
        prof.update(profile)
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(data)
            if tags:
                dst.update_tags(**tags)
        return path

    return factory


@pytest.fixture
def http_server():
    """Factory starting a Range-capable HTTP server on 127.0.0.1 serving a folder.

    ``http_server(root, api=None)`` returns the server (``.url``, ``.bytes_sent`` per
    path, ``.requests``); every server started is shut down after the test.
    """
    from _http import serve

    started = []

    def factory(root, api=None):
        server = serve(Path(root), api=api)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def utm_aoi():
    """Factory building an AOI from UTM 52N (EPSG:32652) coordinates.

    ``utm_aoi(yard, tracks, excludes=(), aoi_id="synthetic")``: ``yard`` is a list of
    (x, y) ring vertices, ``tracks`` a dict name -> list of (x, y), ``excludes`` a list of
    rings. Coordinates go to lon/lat (as an AOI file has them) and through ``load_aoi``.
    """
    from pyproj import Transformer

    from geo_evidence.aoi import load_aoi

    to_ll = Transformer.from_crs(32652, 4326, always_xy=True)

    def ll(coords):
        return [list(to_ll.transform(x, y)) for x, y in coords]

    def factory(yard, tracks, excludes=(), aoi_id="synthetic"):
        ring = list(yard) + ([yard[0]] if tuple(yard[0]) != tuple(yard[-1]) else [])
        feats = [{"type": "Feature", "properties": {"kind": "yard"}, "geometry": {"type": "Polygon", "coordinates": [ll(ring)]}}]
        for name, line in tracks.items():
            feats.append({"type": "Feature", "properties": {"kind": "track", "name": name},
                          "geometry": {"type": "LineString", "coordinates": ll(line)}})
        for ex in excludes:
            ex = list(ex) + [ex[0]]
            feats.append({"type": "Feature", "properties": {"kind": "exclude"}, "geometry": {"type": "Polygon", "coordinates": [ll(ex)]}})
        return load_aoi({"type": "FeatureCollection", "id": aoi_id, "features": feats})

    return factory


@pytest.fixture
def make_stac_catalog():
    """Factory writing a static STAC catalog (pystac, relative hrefs) over GeoTIFFs.

    ``make_stac_catalog(root, scenes)``: ``scenes`` is a list of dicts with ``id``,
    ``path`` (a GeoTIFF, ideally under ``root``), ``datetime`` (aware, or None for a
    range-less item, which then needs ``start_datetime``), optional ``bbox``,
    ``properties``, ``cloud`` (a mask GeoTIFF path) and ``checksum`` (multihash string).
    Layout: catalog -> collection ``scenes`` -> sub-catalog ``by-year`` -> items, so
    readers must follow child links and resolve relative hrefs. Returns catalog.json.
    """
    import pystac

    def factory(root, scenes):
        root = Path(root)
        cat = pystac.Catalog(id="test-catalog", description="test scenes")
        extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]]))
        coll = pystac.Collection(id="scenes", description="test collection", extent=extent)
        sub = pystac.Catalog(id="by-year", description="nested sub-catalog")
        cat.add_child(coll)
        coll.add_child(sub)
        for s in scenes:
            props = dict(s.get("properties") or {})
            if s.get("datetime") is None:
                props.setdefault("start_datetime", "2020-01-01T00:00:00Z")
                props.setdefault("end_datetime", "2020-01-02T00:00:00Z")
            bbox = s.get("bbox")
            # STAC forbids a bbox without a geometry: give the footprint as a polygon too.
            geometry = None if bbox is None else {"type": "Polygon", "coordinates": [[
                [bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]}
            item = pystac.Item(
                id=s["id"],
                geometry=geometry,
                bbox=bbox,
                datetime=s.get("datetime"),
                properties=props,
            )
            extra = {"file:checksum": s["checksum"]} if s.get("checksum") else {}
            item.add_asset("image", pystac.Asset(href=str(Path(s["path"]).resolve()), media_type=pystac.MediaType.COG,
                                                 roles=["data"], extra_fields=extra))
            if s.get("cloud"):
                item.add_asset("cloud_mask", pystac.Asset(href=str(Path(s["cloud"]).resolve()),
                                                          media_type=pystac.MediaType.GEOTIFF, roles=["cloud"]))
            sub.add_item(item)
        cat.normalize_hrefs(str(root))
        cat.make_all_asset_hrefs_relative()
        cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        return root / "catalog.json"

    return factory
