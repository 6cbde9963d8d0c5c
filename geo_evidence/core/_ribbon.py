"""Straightened ribbons: the image resampled on a (along, across) grid that follows a track.

Only the ribbon is read from the image (``scipy.ndimage.map_coordinates``), so the cost grows
with track length, not with image area.
"""

from __future__ import annotations

import numpy as np

from geo_evidence.core._geometry import to_pixel


class Raster:
    """The image as a (rows*cols, B) table of the bands used (a view where possible)."""

    def __init__(self, image: np.ndarray):
        img = image if image.ndim == 3 else image[:, :, None]
        h, w, nb = img.shape
        use = 1 if nb < 3 else 3
        img = np.ascontiguousarray(img)
        self.table = img.reshape(h * w, nb)[:, :use]
        self.shape = (h, w)
        self.nbands = use


def band_views(image: np.ndarray) -> Raster:
    """The bands used for counting: the single band of a pan image, else the first three."""
    return Raster(image)


def sample_grid(bands: Raster, transform: tuple, xy: np.ndarray, *, order: int = 1) -> np.ndarray:
    """Bilinear samples of every band at map points ``xy`` (..., 2); NaN outside the image.

    Returns an array of shape ``xy.shape[:-1] + (len(bands),)``, float32. One gather per
    neighbour fetches all bands at once, which is cheaper than ``map_coordinates`` per band.
    """
    cr = to_pixel(transform, xy.reshape(-1, 2))
    # Array element centres sit at corner + 0.5 pixel.
    x = cr[:, 0] - 0.5
    y = cr[:, 1] - 0.5
    h, w = bands.shape
    outside = (y < -0.5) | (x < -0.5) | (y > h - 0.5) | (x > w - 0.5)
    x = np.clip(x, 0, w - 1.000001)
    y = np.clip(y, 0, h - 1.000001)
    x0 = x.astype(np.int64)
    y0 = y.astype(np.int64)
    fx = (x - x0).astype(np.float32)[:, None]
    fy = (y - y0).astype(np.float32)[:, None]
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    stack = bands.table
    i00 = y0 * w + x0
    i01 = y0 * w + x1
    i10 = y1 * w + x0
    i11 = y1 * w + x1
    top = stack[i00].astype(np.float32) * (1 - fx) + stack[i01].astype(np.float32) * fx
    bot = stack[i10].astype(np.float32) * (1 - fx) + stack[i11].astype(np.float32) * fx
    out = top * (1 - fy) + bot * fy
    out[outside] = np.nan
    return out.reshape(xy.shape[:-1] + (bands.nbands,))


def sample_mask(mask: np.ndarray | None, transform: tuple, xy: np.ndarray, *, default: bool) -> np.ndarray:
    """Nearest-neighbour lookup of a boolean (rows, cols) mask at map points; off-image -> False."""
    cr = to_pixel(transform, xy)
    col = np.floor(cr[..., 0]).astype(np.int64)
    row = np.floor(cr[..., 1]).astype(np.int64)
    if mask is None:
        raise ValueError("mask required")
    h, w = mask.shape
    inside = (row >= 0) & (col >= 0) & (row < h) & (col < w)
    out = np.zeros(xy.shape[:-1], bool)
    out[inside] = mask[row[inside], col[inside]]
    return out


def inside_image(shape: tuple, transform: tuple, xy: np.ndarray) -> np.ndarray:
    cr = to_pixel(transform, xy)
    h, w = shape[:2]
    return (cr[..., 0] >= 0) & (cr[..., 1] >= 0) & (cr[..., 0] < w) & (cr[..., 1] < h)


def to_features(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, log: bool = False) -> np.ndarray:
    """Raw band values -> (luminance, two opponent chroma channels), scaled to ~[0, 1].

    The chroma channels make a red car on grey ballast stand out even at equal brightness.
    """
    v = (values - lo) / np.maximum(hi - lo, 1e-6)
    if log:
        # Shading (cloud shadow, a neighbour's shadow, low sun) multiplies brightness; in a
        # log scale it becomes an offset that the local-background difference removes.
        # The +0.3 keeps sensor noise in dark areas from blowing up.
        v = 0.5 * np.log(np.clip(v, 0, None) + 0.3) + 0.6
    if v.shape[-1] == 1:
        return v
    r, g, b = v[..., 0], v[..., 1], v[..., 2]
    lum = (r + g + b) / 3.0
    return np.stack([lum, (r - b) * 0.8, (r + b - 2.0 * g) * 0.5], axis=-1)


def band_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust per-band scale from sampled values (2nd and 98th percentile)."""
    flat = values.reshape(-1, values.shape[-1])
    if len(flat) > 400_000:
        flat = flat[:: len(flat) // 400_000 + 1]
    flat = flat[np.isfinite(flat).all(axis=1)]
    if len(flat) == 0:
        return np.zeros(values.shape[-1], np.float32), np.ones(values.shape[-1], np.float32)
    if len(flat) > 40_000:
        flat = flat[:: len(flat) // 40_000 + 1]
    lo = np.percentile(flat, 2, axis=0).astype(np.float32)
    hi = np.percentile(flat, 98, axis=0).astype(np.float32)
    # One scale for all bands keeps colour ratios meaningful.
    lo_all, hi_all = float(lo.min()), float(hi.max())
    return np.full_like(lo, lo_all), np.full_like(hi, max(hi_all, lo_all + 1e-6))
