"""Ribbon sampling: bilinear samples, mask look-ups and features against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from geo_evidence.core._geometry import pixel_coords, to_pixel
from geo_evidence.core._ribbon import (band_scale, band_views, inside_image, inside_pixels, mask_at_pixels, ribbon_pixels,
                                       sample_grid, sample_mask, sample_pixels, to_features)

# 0.5 m pixels, north-up, and a slightly rotated grid (the general affine path).
TRANSFORMS = [
    (0.5, 0.0, 1000.0, 0.0, -0.5, 2000.0),
    (0.49, 0.03, 1000.0, 0.02, -0.51, 2000.0),
]


def _points(transform, shape, n, rng):
    """Map points spread over the image and a little beyond it."""
    h, w = shape
    cr = np.column_stack([rng.uniform(-3, w + 3, n), rng.uniform(-3, h + 3, n)])
    a, b, c, d, e, f = transform
    return np.column_stack([a * cr[:, 0] + b * cr[:, 1] + c, d * cr[:, 0] + e * cr[:, 1] + f])


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_sample_grid_is_bilinear_interpolation_of_every_band(transform, dtype):
    rng = np.random.default_rng(7)
    image = (rng.random((37, 53, 3)) * 250).astype(dtype)
    xy = _points(transform, image.shape[:2], 3000, rng).reshape(60, 50, 2)
    got = sample_grid(band_views(image), transform, xy)
    assert got.shape == (60, 50, 3) and got.dtype == np.float32

    cr = to_pixel(transform, xy.reshape(-1, 2))
    col, row = cr[:, 0] - 0.5, cr[:, 1] - 0.5  # element centres
    h, w = image.shape[:2]
    outside = (col < -0.5) | (row < -0.5) | (col > w - 0.5) | (row > h - 0.5)
    want = np.stack(
        [ndimage.map_coordinates(image[..., k].astype(np.float64), [row, col], order=1, mode="nearest") for k in range(3)],
        axis=-1,
    )
    flat = got.reshape(-1, 3)
    assert np.isnan(flat[outside]).all()
    assert not np.isnan(flat[~outside]).any()
    np.testing.assert_allclose(flat[~outside], want[~outside], rtol=1e-5, atol=1e-3)


def test_sample_grid_of_a_panchromatic_image_has_one_band():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    t = TRANSFORMS[0]
    xy = _points(t, image.shape, 200, rng)
    got = sample_grid(band_views(image), t, xy)
    assert got.shape == (200, 1)
    # A point on a pixel centre returns that pixel exactly.
    centre = np.array([[t[2] + 0.5 * (7 + 0.5), t[5] - 0.5 * (4 + 0.5)]])
    assert sample_grid(band_views(image), t, centre)[0, 0] == image[4, 7]


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_mask_lookup_and_inside_follow_the_pixel_under_each_point(transform):
    rng = np.random.default_rng(3)
    mask = rng.random((25, 40)) > 0.5
    xy = _points(transform, mask.shape, 2000, rng).reshape(40, 50, 2)
    a, b, c, d, e, f = transform
    # Independent inverse of the affine with numpy's solver.
    m = np.array([[a, b], [d, e]])
    cr = np.linalg.solve(m, (xy.reshape(-1, 2) - [c, f]).T).T
    col, row = np.floor(cr[:, 0]).astype(int), np.floor(cr[:, 1]).astype(int)
    ins = (col >= 0) & (row >= 0) & (col < 40) & (row < 25)
    want = np.zeros(len(col), bool)
    want[ins] = mask[row[ins], col[ins]]
    assert np.array_equal(sample_mask(mask, transform, xy, default=True).reshape(-1), want)
    inside = inside_image(mask.shape, transform, xy).reshape(-1)
    assert np.array_equal(inside, (cr[:, 0] >= 0) & (cr[:, 1] >= 0) & (cr[:, 0] < 40) & (cr[:, 1] < 25))
    pc, pr = pixel_coords(transform, xy)
    np.testing.assert_allclose(np.stack([pc, pr], -1).reshape(-1, 2), cr, rtol=0, atol=1e-9)


def test_features_are_scaled_luminance_and_opponent_colours():
    rng = np.random.default_rng(5)
    values = rng.uniform(20, 200, (30, 11, 3)).astype(np.float32)
    lo, hi = band_scale(values)
    assert np.all(lo == lo[0]) and np.all(hi == hi[0])
    assert lo[0] == pytest.approx(np.percentile(values, 2, axis=(0, 1)).min(), rel=1e-5)
    assert hi[0] == pytest.approx(np.percentile(values, 98, axis=(0, 1)).max(), rel=1e-5)
    feats = to_features(values, lo, hi)
    v = (values.astype(np.float64) - lo[0]) / (hi[0] - lo[0])
    r, g, b = v[..., 0], v[..., 1], v[..., 2]
    want = np.stack([(r + g + b) / 3, (r - b) * 0.8, (r + b - 2 * g) * 0.5], axis=-1)
    np.testing.assert_allclose(feats, want, rtol=1e-4, atol=1e-5)
    logf = to_features(values, lo, hi, log=True)
    vl = 0.5 * np.log(np.clip(v, 0, None) + 0.3) + 0.6
    np.testing.assert_allclose(logf[..., 0], vl.mean(axis=-1), rtol=1e-4, atol=1e-5)
    # Per-band scales (not what band_scale gives, but allowed) scale each band on its own.
    lo3, hi3 = np.array([10, 20, 30], np.float32), np.array([110, 220, 330], np.float32)
    pb = to_features(values, lo3, hi3)
    v3 = (values.astype(np.float64) - lo3) / (hi3 - lo3)
    np.testing.assert_allclose(pb[..., 1], (v3[..., 0] - v3[..., 2]) * 0.8, rtol=1e-4, atol=1e-5)


def test_band_scale_ignores_samples_outside_the_image():
    values = np.full((100, 3), np.nan, np.float32)
    values[:50] = np.linspace(0, 100, 50, dtype=np.float32)[:, None]
    lo, hi = band_scale(values)
    assert lo[0] == pytest.approx(2.0, abs=0.1) and hi[0] == pytest.approx(98.0, abs=0.1)
    lo, hi = band_scale(np.full((10, 3), np.nan, np.float32))
    assert np.all(lo == 0) and np.all(hi == 1)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_a_ribbon_sampled_from_its_pixel_planes_is_the_ribbon_sampled_from_its_grid(transform):
    # The counter samples each ribbon (and looks up its masks) from pixel planes computed
    # once; they must give the very numbers of the map-space grid, bit for bit.
    rng = np.random.default_rng(5)
    image = rng.integers(0, 4000, (60, 80, 3)).astype(np.uint16)
    mask = rng.random((60, 80)) > 0.3
    xy = _points(transform, (60, 80), 300, rng)
    nrm = rng.normal(size=(300, 2))
    nrm /= np.hypot(nrm[:, 0], nrm[:, 1])[:, None]
    offsets = np.arange(-2.75, 2.76, 0.25)
    grid = xy[:, None, :] + nrm[:, None, :] * offsets[None, :, None]
    col, row = ribbon_pixels(transform, xy, nrm, offsets)
    pc, pr = pixel_coords(transform, grid)
    assert np.array_equal(col, pc) and np.array_equal(row, pr)
    bands = band_views(image)
    np.testing.assert_array_equal(sample_pixels(bands, col, row), sample_grid(bands, transform, grid))
    assert np.array_equal(mask_at_pixels(mask, col, row), sample_mask(mask, transform, grid, default=True))
    assert np.array_equal(inside_pixels(mask.shape, col, row), inside_image(mask.shape, transform, grid))
