"""Windowed reads of real GeoTIFFs written into tmp_path (geo_evidence.imagery.read_window)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine

from geo_evidence.errors import CRSError, GeoEvidenceError, NoCoverageError, SceneReadError
from geo_evidence.imagery import SceneRef, read_window

# The default tile of `make_geotiff`: 0.5 m pixels, upper-left corner at (331000, 4699000)
# in UTM 52N; 400 x 400 pixels cover x 331000..331200, y 4698800..4699000.
X0, Y0, RES, N = 331000.0, 4699000.0, 0.5, 400
# The AOI: a yard x 331060..331140, y 4698880..4698920 and one track at y = 4698900.25 (the
# centre of pixel row 199) from x 331070 to 331130 (pixel columns 140..259).
YARD = [(331060, 4698880), (331140, 4698880), (331140, 4698920), (331060, 4698920)]
TRACK_Y = 4698900.25
TRACKS = {"T1": [(331070, TRACK_Y), (331130, TRACK_Y)]}


def from_origin(west, north, xres, yres):
    return Affine(xres, 0.0, west, 0.0, -yres, north)


def rgb_noise(seed=0, shape=(3, N, N)):
    return np.random.default_rng(seed).integers(1, 200, size=shape, dtype=np.uint8)


def test_window_is_exactly_the_aoi_pixels(make_geotiff, utm_aoi):
    data = rgb_noise()
    path = make_geotiff("scene.tif", data, tiled=True, blockxsize=128, blockysize=128)
    aoi = utm_aoi(YARD, TRACKS)
    win = read_window(SceneRef(id="s", href=str(path)), aoi, margin_m=10.0)
    # Bounds plus 10 m: x 331050..331150 -> cols 100..300; y 4698930..4698870 -> rows 140..260.
    assert win.image.shape == (120, 200, 3)
    assert win.image.dtype == np.uint8
    with rasterio.open(path) as src:
        full = src.read()
    np.testing.assert_array_equal(win.image, np.moveaxis(full, 0, -1)[140:260, 100:300])
    assert win.transform == pytest.approx((0.5, 0.0, 331050.0, 0.0, -0.5, 4698930.0), abs=1e-6)
    assert win.crs.to_epsg() == 32652 and win.gsd_m == 0.5 and not win.reprojected
    assert win.valid.shape == (120, 200) and win.valid.all()
    assert win.cloud is None
    assert win.track_names == ["T1"]
    # The track comes back in the scene CRS, where it was drawn (mm-level round trip).
    np.testing.assert_allclose(win.tracks[0], np.array(TRACKS["T1"]), atol=1e-3)


def test_pan_scene_gives_2d_image_in_file_dtype(make_geotiff, utm_aoi):
    data = np.random.default_rng(1).integers(0, 4000, size=(N, N), dtype=np.uint16)
    path = make_geotiff("pan.tif", data)
    win = read_window(SceneRef(id="p", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=0.0)
    assert win.image.ndim == 2 and win.image.dtype == np.uint16
    np.testing.assert_array_equal(win.image, data[160:240, 120:280])


def test_track_lands_on_the_bright_line(make_geotiff, utm_aoi):
    data = np.full((3, N, N), 30, np.uint8)
    data[:, 199, 140:260] = 250  # the track, drawn at its known map position
    path = make_geotiff("line.tif", data)
    win = read_window(SceneRef(id="l", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=30.0)
    a, _, c, _, e, f = win.transform
    xy = win.tracks[0]
    xs = np.linspace(xy[0, 0] + 0.25, xy[-1, 0] - 0.25, 50)  # pixel centres along the drawn line
    cols = np.floor((xs - c) / a).astype(int)
    rows = np.floor((np.full_like(xs, xy[0, 1]) - f) / e).astype(int)
    assert (win.image[rows, cols, 0] == 250).all()
    assert (win.image[rows - 3, cols, 0] == 30).all() and (win.image[rows + 3, cols, 0] == 30).all()


def test_geographic_tile_is_reprojected_to_aoi_utm_with_correct_placement(make_geotiff, utm_aoi):
    from pyproj import Transformer

    aoi = utm_aoi(YARD, TRACKS)
    to_ll = Transformer.from_crs(32652, 4326, always_xy=True)
    lon0, lat0 = to_ll.transform(X0, Y0)
    dlon, dlat = 6e-6, 4.5e-6  # about 0.49 m x 0.50 m at 42.4 N
    rows, cols = 500, 500
    data = np.full((rows, cols), 20, np.uint8)
    # Draw the track's lon/lat vertices (joined by a straight pixel line).
    (lon_a, lat_a), (lon_b, lat_b) = (to_ll.transform(x, y) for x, y in TRACKS["T1"])
    for t in np.linspace(0, 1, 2000):
        lon, lat = lon_a + t * (lon_b - lon_a), lat_a + t * (lat_b - lat_a)
        data[int((lat0 + 20 * dlat - lat) / dlat), int((lon - (lon0 - 20 * dlon)) / dlon)] = 255
    path = make_geotiff("geo.tif", data, crs="EPSG:4326", transform=from_origin(lon0 - 20 * dlon, lat0 + 20 * dlat, dlon, dlat))
    win = read_window(SceneRef(id="g", href=str(path)), aoi, margin_m=10.0)
    assert win.reprojected and win.crs.to_epsg() == 32652
    # Native resolution in metres: the finer of 6e-6 deg lon and 4.5e-6 deg lat at 42.4 N.
    assert 0.48 < win.gsd_m < 0.51
    a, b, c, d, e, f = win.transform
    assert a == pytest.approx(win.gsd_m) and e == pytest.approx(-win.gsd_m) and b == d == 0
    xs = np.linspace(TRACKS["T1"][0][0] + 2, TRACKS["T1"][1][0] - 2, 40)
    cols_ = np.floor((xs - c) / a).astype(int)
    row = int(np.floor((TRACK_Y - f) / e))
    near = np.max(np.stack([win.image[row + k, cols_] for k in (-1, 0, 1)]), axis=0)
    assert (near > 120).all(), "the bright line is not where the track is"
    assert (win.image[row + 6, cols_] < 60).all() and (win.image[row - 6, cols_] < 60).all()
    assert win.valid.all()


def test_geographic_tile_edge_is_invalid_not_black(make_geotiff, utm_aoi):
    from pyproj import Transformer

    to_ll = Transformer.from_crs(32652, 4326, always_xy=True)
    lon0, lat0 = to_ll.transform(331100, 4698900)  # tile starts at the AOI centre
    path = make_geotiff("half.tif", np.full((300, 300), 90, np.uint8), crs="EPSG:4326",
                        transform=from_origin(lon0, lat0 + 300 * 4.5e-6, 6e-6, 4.5e-6))
    win = read_window(SceneRef(id="h", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=0.0)
    frac = win.valid.mean()
    assert 0.15 < frac < 0.35  # about the south-east quarter... of the window is the tile's
    assert (win.image[win.valid] > 80).mean() > 0.95


def test_nodata_is_invalid(make_geotiff, utm_aoi):
    data = rgb_noise(2)
    data[:, 150:170, 110:130] = 0
    path = make_geotiff("nd.tif", data, nodata=0)
    win = read_window(SceneRef(id="n", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=10.0)
    # Window origin is (row 140, col 100): the hole is rows 10..30, cols 10..30 of the window.
    assert not win.valid[10:30, 10:30].any()
    assert win.valid.sum() == 120 * 200 - 400


def test_internal_mask_and_alpha_are_honoured(make_geotiff, utm_aoi, tmp_path):
    data = rgb_noise(3)
    path = make_geotiff("masked.tif", data)
    mask = np.full((N, N), 255, np.uint8)
    mask[200:260, 100:300] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as dst:
        dst.write_mask(mask)
    aoi = utm_aoi(YARD, TRACKS)
    win = read_window(SceneRef(id="m", href=str(path)), aoi, margin_m=10.0)
    assert win.valid[:60].all() and not win.valid[60:].any()

    alpha = np.full((1, N, N), 255, np.uint8)
    alpha[0, 140:200, 100:150] = 0
    rgba = make_geotiff("rgba.tif", np.concatenate([data, alpha]), photometric="RGB", alpha="YES")
    win = read_window(SceneRef(id="a", href=str(rgba)), aoi, margin_m=10.0)
    assert win.image.shape == (120, 200, 3)  # alpha is a mask, not a fourth band
    assert not win.valid[:60, :50].any() and win.valid[60:].all() and win.valid[:, 50:].all()


def test_cloud_mask_asset_is_resampled_to_the_window(make_geotiff, utm_aoi):
    path = make_geotiff("c.tif", rgb_noise(4))
    # A 2 m cloud mask: cloud over x 331100..331200 (the east half of the tile).
    cmask = np.zeros((100, 100), np.uint8)
    cmask[:, 50:] = 1
    cpath = make_geotiff("c_cloud.tif", cmask, transform=from_origin(X0, Y0, 2.0, 2.0))
    scene = SceneRef(id="c", href=str(path), cloud_mask_href=str(cpath))
    win = read_window(scene, utm_aoi(YARD, TRACKS), margin_m=10.0)
    assert win.cloud.shape == win.valid.shape and win.cloud.dtype == bool
    # The window spans x 331050..331150: cloud from x = 331100, i.e. window column 100 on.
    assert not win.cloud[:, :100].any() and win.cloud[:, 100:].all()


def test_aoi_off_the_image_is_no_coverage(make_geotiff, utm_aoi):
    path = make_geotiff("far.tif", rgb_noise(5), transform=from_origin(X0 + 5000, Y0, RES, RES))
    with pytest.raises(NoCoverageError, match="does not cover AOI 'synthetic'"):
        read_window(SceneRef(id="far", href=str(path)), utm_aoi(YARD, TRACKS))


def test_window_all_nodata_is_no_coverage(make_geotiff, utm_aoi):
    data = rgb_noise(6)
    data[:, 100:300, 50:350] = 0
    path = make_geotiff("empty.tif", data, nodata=0)
    with pytest.raises(NoCoverageError, match="only nodata"):
        read_window(SceneRef(id="e", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=10.0)


@pytest.mark.parametrize("fmt", ["VRT", "PNG"])
def test_tif_that_is_another_format_is_refused(make_geotiff, utm_aoi, tmp_path, fmt):
    from rasterio.shutil import copy as rio_copy

    real = make_geotiff("real.tif", rgb_noise(7))
    fake = tmp_path / f"fake_{fmt.lower()}.tif"
    rio_copy(real, tmp_path / f"tmp.{fmt.lower()}", driver=fmt)
    (tmp_path / f"tmp.{fmt.lower()}").rename(fake)
    with warnings.catch_warnings():
        # The renamed PNG lost its .aux.xml georeferencing; only its driver matters here.
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(fake) as check:  # GDAL itself would open it with its own driver
            assert check.driver == fmt
    with pytest.raises(SceneReadError, match=f"{fake.name}.*not a readable GeoTIFF"):
        read_window(SceneRef(id="f", href=str(fake)), utm_aoi(YARD, TRACKS))


def test_truncated_file_is_refused_naming_it(make_geotiff, utm_aoi, tmp_path):
    path = make_geotiff("cut.tif", rgb_noise(8))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SceneReadError, match="cut.tif") as info:
        read_window(SceneRef(id="cut", href=str(path)), utm_aoi(YARD, TRACKS))
    assert isinstance(info.value, OSError) and isinstance(info.value, GeoEvidenceError)


def test_garbage_file_is_refused(tmp_path, utm_aoi):
    path = tmp_path / "junk.tif"
    path.write_bytes(b"II*\x00" + np.random.default_rng(9).bytes(5000))
    with pytest.raises(SceneReadError, match="junk.tif"):
        read_window(SceneRef(id="j", href=str(path)), utm_aoi(YARD, TRACKS))


def test_declared_size_is_checked_before_reading(make_geotiff, utm_aoi, tmp_path):
    # A sparse tiled file declaring 100,000 x 100,000 pixels is a few MB on disk.
    path = tmp_path / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100_000, height=100_000, count=1, dtype="uint8",
                       crs="EPSG:32652", transform=from_origin(X0 - 20_000, Y0 + 20_000, RES, RES),
                       tiled=True, blockxsize=512, blockysize=512, sparse_ok=True):
        pass
    assert path.stat().st_size < 10_000_000
    with pytest.raises(SceneReadError, match=r"100000 x 100000 x 1 = 10,000,000,000 values"):
        read_window(SceneRef(id="huge", href=str(path)), utm_aoi(YARD, TRACKS))
    # A genuine large file passes when the caller raises the limit, and only the window is read.
    win = read_window(SceneRef(id="huge", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=0.0,
                      max_dataset_pixels=10**11)
    assert win.image.shape == (80, 160)


def test_40k_tile_with_small_window_passes_the_default_limits(utm_aoi, tmp_path):
    path = tmp_path / "big.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40_000, height=40_000, count=3, dtype="uint8",
                       crs="EPSG:32652", transform=from_origin(X0 - 10_000, Y0 + 10_000, RES, RES),
                       tiled=True, blockxsize=512, blockysize=512, sparse_ok=True, photometric="RGB"):
        pass
    win = read_window(SceneRef(id="big", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=30.0)
    assert win.image.shape == (200, 280, 3)


def test_window_larger_than_max_pixels_is_refused_before_reading(make_geotiff, utm_aoi):
    path = make_geotiff("w.tif", rgb_noise(10))
    with pytest.raises(SceneReadError, match=r"200 x 120 x 3 = 72,000 values.*max_pixels=50,000"):
        read_window(SceneRef(id="w", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=10.0, max_pixels=50_000)


def test_scene_without_crs_is_a_crs_error(make_geotiff, utm_aoi):
    path = make_geotiff("nocrs.tif", rgb_noise(11), crs=None)
    with pytest.raises(CRSError, match="nocrs.tif.*no CRS"):
        read_window(SceneRef(id="x", href=str(path)), utm_aoi(YARD, TRACKS))


def test_excludes_come_back_as_rings_in_the_window_crs(make_geotiff, utm_aoi):
    ring = [(331080, 4698885), (331090, 4698885), (331090, 4698895), (331080, 4698895)]
    path = make_geotiff("ex.tif", rgb_noise(12))
    win = read_window(SceneRef(id="x", href=str(path)), utm_aoi(YARD, TRACKS, excludes=[ring]))
    assert len(win.excludes) == 1
    np.testing.assert_allclose(win.excludes[0][:4], np.array(ring), atol=1e-3)


def test_scene_in_another_utm_zone_is_read_natively(make_geotiff, utm_aoi):
    from pyproj import Transformer

    # The same place in UTM zone 53N: a projected metric CRS is read as is, no warp.
    x53, y53 = Transformer.from_crs(32652, 32653, always_xy=True).transform(331100, 4698900)
    path = make_geotiff("z53.tif", rgb_noise(13), crs="EPSG:32653", transform=from_origin(x53 - 100, y53 + 100, RES, RES))
    win = read_window(SceneRef(id="z", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=5.0)
    assert not win.reprojected and win.crs.to_epsg() == 32653
    # The track's middle lies near the tile centre (x53, y53), in zone-53 coordinates.
    mid = win.tracks[0].mean(axis=0)
    assert np.hypot(mid[0] - x53, mid[1] - (y53 + 0.25)) < 0.05


@pytest.mark.parametrize("margin", [-1.0, float("nan"), float("inf")])
def test_bad_margin_is_refused(make_geotiff, utm_aoi, margin):
    from geo_evidence.errors import AOIError

    path = make_geotiff("m.tif", rgb_noise(14))
    with pytest.raises(AOIError, match="margin_m"):
        read_window(SceneRef(id="m", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=margin)


def test_projected_crs_in_feet_is_warped_to_metres(make_geotiff, utm_aoi):
    ft = 0.3048
    crs = "+proj=utm +zone=52 +datum=WGS84 +units=ft +no_defs"
    data = np.full((N, N), 25, np.uint8)
    data[199, 140:260] = 240  # the track row, as in the metric tile
    # The same grid as the metric tile, expressed in feet: 0.5 m = 1.6404 ft pixels.
    path = make_geotiff("feet.tif", data, crs=crs, transform=Affine(0.5 / ft, 0, X0 / ft, 0, -0.5 / ft, Y0 / ft))
    win = read_window(SceneRef(id="ft", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=10.0)
    assert win.reprojected and win.crs.to_epsg() == 32652
    assert win.gsd_m == pytest.approx(0.5, abs=1e-6)
    a, _, c, _, e, f = win.transform
    row = int(np.floor((TRACK_Y - f) / e))
    cols = np.floor((np.linspace(331075, 331125, 30) - c) / a).astype(int)
    assert (win.image[row, cols] > 200).all() and (win.image[row + 4, cols] < 60).all()


@pytest.mark.parametrize("interleave", ["pixel", "band"])
def test_window_is_contiguous_channel_last_whatever_the_file_interleave(make_geotiff, utm_aoi, interleave):
    # Four data bands (RGB + NIR, no alpha): all four come back, channel-last and
    # C-contiguous, which the core uses without another copy.
    data = rgb_noise(seed=4, shape=(4, N, N))
    path = make_geotiff(f"rgbn_{interleave}.tif", data, interleave=interleave, photometric="MINISBLACK", tiled=True,
                        blockxsize=128, blockysize=128)
    win = read_window(SceneRef(id="n", href=str(path)), utm_aoi(YARD, TRACKS), margin_m=10.0)
    assert win.image.shape == (120, 200, 4) and win.image.flags.c_contiguous
    np.testing.assert_array_equal(win.image, np.moveaxis(data, 0, -1)[140:260, 100:300])
    assert win.valid.all() and win.valid.dtype == bool


def test_warped_window_is_contiguous_channel_last(make_geotiff, utm_aoi):
    from pyproj import Transformer

    aoi = utm_aoi(YARD, TRACKS)
    lon0, lat0 = Transformer.from_crs(32652, 4326, always_xy=True).transform(X0, Y0)
    data = np.full((3, N, N), 90, np.uint8)
    data[1] = 160
    path = make_geotiff("ll.tif", data, crs="EPSG:4326", transform=from_origin(lon0, lat0, 6e-6, 4.5e-6))
    win = read_window(SceneRef(id="ll", href=str(path)), aoi, margin_m=5.0)
    assert win.reprojected and win.image.ndim == 3 and win.image.flags.c_contiguous
    inside = win.image[win.valid]
    assert (inside[:, 0] == 90).all() and (inside[:, 1] == 160).all()
