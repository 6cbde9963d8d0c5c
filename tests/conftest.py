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
    (bands, rows, cols); ``transform`` defaults to 0.5 m pixels at a Tumangang-area
    UTM 52N origin; ``crs=None`` writes no CRS; other keywords go into the profile
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
    """Factory building an AOI from UTM 52N (EPSG:32652) coordinates, near Tumangang.

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
