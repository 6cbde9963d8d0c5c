"""Remote scenes over HTTP: a static STAC catalog and COGs, and a minimal STAC API, both
served on 127.0.0.1 by the test with real byte-range support (see tests/_http.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from rasterio.shutil import copy as rio_copy

from geo_evidence.errors import SceneSourceError
from geo_evidence.imagery import SceneRef, list_scenes, read_window, scene_checksum

UTC = dt.timezone.utc
# A 2048 x 2048 RGB COG at 0.5 m: x 331000..332024, y 4697976..4699000 (UTM 52N).
SIZE = 2048
YARD = [(331480, 4698480), (331560, 4698480), (331560, 4698520), (331480, 4698520)]
TRACKS = {"T1": [(331485, 4698500.25), (331555, 4698500.25)]}


@pytest.fixture
def cog(make_geotiff, tmp_path):
    # Noise does not compress, so the file is as large as its pixels (~12 MB): fetching
    # it whole would show in the byte count.
    data = np.random.default_rng(42).integers(0, 256, size=(3, SIZE, SIZE), dtype=np.uint8)
    src = make_geotiff("plain.tif", data, tiled=True, blockxsize=256, blockysize=256, photometric="RGB")
    dst = tmp_path / "www" / "data" / "big_cog.tif"
    dst.parent.mkdir(parents=True)
    rio_copy(src, dst, driver="COG", blocksize=256, compress="DEFLATE", overviews="AUTO")
    src.unlink()
    return dst, data


def test_static_catalog_and_cog_windowed_read_over_http(cog, make_stac_catalog, utm_aoi, http_server, tmp_path):
    path, data = cog
    www = tmp_path / "www"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    make_stac_catalog(www, [{"id": "big", "path": path, "datetime": dt.datetime(2023, 10, 5, 2, 10, tzinfo=UTC),
                             "checksum": "1220" + digest, "properties": {"simulated": True, "gsd": 0.5}}])
    server = http_server(www)
    scenes = list_scenes(f"{server.url}/catalog.json")
    assert len(scenes) == 1
    scene = scenes[0]
    assert scene.href == f"{server.url}/data/big_cog.tif"  # relative href resolved against the URL
    assert scene.checksum == digest and scene.simulated

    server.reset_counts()
    aoi = utm_aoi(YARD, TRACKS)
    win = read_window(scene, aoi, margin_m=10.0)
    # Window: x 331470..331570 -> cols 940..1140; y 4698530..4698470 -> rows 940..1060.
    assert win.image.shape == (120, 200, 3)
    np.testing.assert_array_equal(win.image, np.moveaxis(data, 0, -1)[940:1060, 940:1140])
    fetched = server.bytes_sent.get("/data/big_cog.tif", 0)
    size = path.stat().st_size
    assert size > 10_000_000
    assert 0 < fetched < 0.1 * size, f"fetched {fetched:,} of {size:,} bytes"
    ranged = [r for m, p, r in server.requests if p == "/data/big_cog.tif" and m == "GET"]
    assert ranged and all(r and r.startswith("bytes=") for r in ranged)

    # The computed checksum streams the file over HTTP and agrees with the catalog.
    assert scene_checksum(SceneRef(id="big", href=scene.href)) == digest


def test_range_server_answers_like_a_cog_host(tmp_path, http_server):
    import urllib.request

    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 4)
    server = http_server(tmp_path)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(f"{server.url}/f.bin", headers={"Range": "bytes=10-19"})
    with opener.open(req) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == "bytes 10-19/1024"
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.read() == bytes(range(10, 20))
    with opener.open(urllib.request.Request(f"{server.url}/f.bin", method="HEAD")) as resp:
        assert resp.status == 200 and resp.headers["Content-Length"] == "1024" and resp.read() == b""


def test_missing_remote_catalog_is_a_source_error(tmp_path, http_server):
    server = http_server(tmp_path)
    with pytest.raises(SceneSourceError, match=r"127\.0\.0\.1.*nothing/catalog.json"):
        list_scenes(f"{server.url}/nothing/catalog.json")


# --------------------------------------------------------------------------- STAC API

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


def _parse_dt(text):
    return None if text in ("", "..") else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class MiniStacApi:
    """Landing page, /conformance, /collections, /collections/<id> and /search (GET and
    POST) filtered by collections, bbox and datetime, paged, as a STAC API serves them."""

    PAGE = 2

    def __init__(self, items):
        self.items = items
        self.base = None
        self.searches = []

    def __call__(self, method, path, body):
        parts = urlsplit(path)
        b = self.base
        if parts.path in ("", "/"):
            return 200, {
                "type": "Catalog", "id": "mini-api", "stac_version": "1.0.0", "description": "test STAC API",
                "conformsTo": CONFORMS,
                "links": [
                    {"rel": "self", "href": f"{b}/", "type": "application/json"},
                    {"rel": "root", "href": f"{b}/", "type": "application/json"},
                    {"rel": "conformance", "href": f"{b}/conformance", "type": "application/json"},
                    {"rel": "data", "href": f"{b}/collections", "type": "application/json"},
                    {"rel": "search", "href": f"{b}/search", "type": "application/geo+json", "method": "GET"},
                    {"rel": "search", "href": f"{b}/search", "type": "application/geo+json", "method": "POST"},
                ],
            }
        if parts.path == "/conformance":
            return 200, {"conformsTo": CONFORMS}
        if parts.path == "/collections":
            return 200, {"collections": [self._collection()], "links": []}
        if parts.path == "/collections/scenes":
            return 200, self._collection()
        if parts.path == "/search":
            if method == "POST":
                q = json.loads(body or b"{}")
            else:
                qs = parse_qs(parts.query)
                q = {k: v[0] for k, v in qs.items()}
                if "bbox" in q:
                    q["bbox"] = [float(v) for v in q["bbox"].split(",")]
                if "collections" in q:
                    q["collections"] = q["collections"].split(",")
            self.searches.append(q)
            # Pages of PAGE items, linked by "next" as a real API does (POST: merged body).
            found = self._filter(q)
            start = int(q.get("token") or 0)
            links = []
            if start + self.PAGE < len(found):
                token = start + self.PAGE
                if method == "POST":
                    links.append({"rel": "next", "href": f"{b}/search", "method": "POST", "body": {"token": token}, "merge": True})
                else:
                    links.append({"rel": "next", "href": f"{b}/search?{parts.query}&token={token}", "method": "GET"})
            return 200, {"type": "FeatureCollection", "features": found[start:start + self.PAGE], "links": links}
        return None  # a file: served from disk by the Range handler

    def _collection(self):
        return {
            "type": "Collection", "id": "scenes", "stac_version": "1.0.0", "description": "scenes", "license": "CC0-1.0",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
            "links": [{"rel": "self", "href": f"{self.base}/collections/scenes"}],
        }

    def _filter(self, q):
        out = []
        for item in self.items:
            if q.get("collections") and item["collection"] not in q["collections"]:
                continue
            if q.get("bbox"):
                w, s, e, n = q["bbox"]
                iw, is_, ie, in_ = item["bbox"]
                if iw > e or ie < w or is_ > n or in_ < s:
                    continue
            if q.get("datetime"):
                lo, _, hi = q["datetime"].partition("/")
                t = _parse_dt(item["properties"]["datetime"])
                if (lo and _parse_dt(lo) and t < _parse_dt(lo)) or (hi and _parse_dt(hi) and t > _parse_dt(hi)):
                    continue
            out.append(item)
        return out


def _item(item_id, when, bbox, href, collection="scenes"):
    w, s, e, n = bbox
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n],
        "properties": {"datetime": when, "gsd": 0.5},
        "assets": {"image": {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"]}},
        "links": [],
    }


def test_stac_api_search_by_collection_bbox_and_period(cog, utm_aoi, http_server, tmp_path):
    path, data = cog
    aoi = utm_aoi(YARD, TRACKS)
    w, s, e, n = aoi.bounds_lonlat
    api = MiniStacApi([])
    server = http_server(tmp_path / "www", api=api)
    api.base = server.url
    href = f"{server.url}/data/big_cog.tif"
    api.items = [
        _item("before", "2023-09-01T02:00:00Z", (w, s, e, n), href),
        _item("late", "2023-10-07T02:00:00Z", (w, s, e, n), href),
        _item("early", "2023-10-04T02:00:00Z", (w, s, e, n), href),
        _item("far-away", "2023-10-05T02:00:00Z", (w + 5, s + 5, e + 5, n + 5), href),
        _item("other-coll", "2023-10-05T02:00:00Z", (w, s, e, n), href, collection="other"),
    ]
    scenes = list_scenes(f"stac-api+{server.url}", collection="scenes", aoi=aoi, start="2023-10-01", end="2023-10-31")
    assert [sc.id for sc in scenes] == ["early", "late"]  # sorted by datetime, filtered by the API
    assert all(sc.datetime_source == "stac" for sc in scenes)
    assert scenes[0].datetime == dt.datetime(2023, 10, 4, 2, tzinfo=UTC)
    q = api.searches[0]
    assert len(api.searches) == 1  # two matches: one page
    assert q["collections"] == ["scenes"]
    assert q["bbox"] == pytest.approx(list(aoi.bounds_lonlat))
    assert q["datetime"].startswith("2023-10-01T00:00:00")
    # The same URL with collection= and no prefix is a STAC API too; the scene reads remotely.
    again = list_scenes(server.url, collection="scenes", aoi=aoi)
    assert [sc.id for sc in again] == ["before", "early", "late"]  # three matches: two pages followed
    assert len(api.searches) == 3 and api.searches[2].get("token") == 2
    win = read_window(again[0], aoi, margin_m=0.0)
    np.testing.assert_array_equal(win.image, np.moveaxis(data, 0, -1)[960:1040, 960:1120])

    with pytest.raises(SceneSourceError, match="collection 'nope'.*found no item matching"):
        list_scenes(f"stac-api+{server.url}", collection="nope", aoi=aoi)
    with pytest.raises(SceneSourceError, match="needs a collection"):
        list_scenes(f"stac-api+{server.url}")


def test_loopback_reads_bypass_a_configured_proxy(cog, make_stac_catalog, utm_aoi, http_server, tmp_path, monkeypatch):
    # A proxy on a closed port: any request that goes through it fails at once.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    path, data = cog
    make_stac_catalog(tmp_path / "www", [{"id": "big", "path": path, "datetime": dt.datetime(2023, 10, 5, tzinfo=UTC)}])
    server = http_server(tmp_path / "www")
    (scene,) = list_scenes(f"{server.url}/catalog.json")
    win = read_window(scene, utm_aoi(YARD, TRACKS), margin_m=0.0)
    assert win.image.shape == (80, 160, 3)
    assert scene_checksum(scene) == hashlib.sha256(path.read_bytes()).hexdigest()
