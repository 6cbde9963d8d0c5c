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
    from rasterio.transform import from_origin

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
