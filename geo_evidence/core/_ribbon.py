"""Straightened ribbons: the image resampled on a (along, across) grid that follows a track.

Only the ribbon is read from the image (``scipy.ndimage.map_coordinates``), so the cost grows
with track length, not with image area.
"""

from __future__ import annotations

import numpy as np

from geo_evidence.core._geometry import pixel_coords, pixel_planes


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


#: Points per block in :func:`sample_grid`. Its temporaries (the four neighbours' indices,
#: the gathered pixels, the weights) for a whole ribbon are megabytes, and fresh memory of
#: that size costs more to map than the arithmetic on it; per block of this size they stay
#: small and are reused from block to block.
_BLOCK = 1 << 14


def sample_grid(bands: Raster, transform: tuple, xy: np.ndarray, *, order: int = 1) -> np.ndarray:
    """Bilinear samples of every band at map points ``xy`` (..., 2); NaN outside the image.

    Returns an array of shape ``xy.shape[:-1] + (len(bands),)``, float32. The four
    neighbours of every point are fetched in one gather of all bands, and the weights are
    applied in place; the arithmetic (and so every output bit) is that of the textbook
    ``(v00 (1 - fx) + v01 fx) (1 - fy) + (v10 (1 - fx) + v11 fx) fy``.
    """
    xy = np.asarray(xy)
    return sample_pixels(bands, *pixel_coords(transform, xy))


def sample_pixels(bands: Raster, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """As :func:`sample_grid`, at fractional pixel columns and rows (corner convention,
    arrays of one shape, as :func:`ribbon_pixels` gives them)."""
    cf, rf = col.reshape(-1), row.reshape(-1)
    out = np.empty((len(cf), bands.nbands), np.float32)
    for i in range(0, len(cf), _BLOCK):
        _bilinear_into(bands, cf[i:i + _BLOCK], rf[i:i + _BLOCK], out[i:i + _BLOCK])
    return out.reshape(col.shape + (bands.nbands,))


def ribbon_pixels(transform: tuple, xy: np.ndarray, nrm: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel columns and rows (S, O) of a ribbon: the points ``xy + nrm * offset`` for every
    centre-line sample ``xy`` (S, 2), its normal ``nrm`` and every offset (O,).

    The very numbers of ``pixel_coords(transform, xy[:, None, :] + nrm[:, None, :] *
    offsets[None, :, None])``, built on two contiguous planes instead of a (S, O, 2) grid
    (a broadcast over rows of two values), so that the samples and the masks of a ribbon
    share one transform to pixels.
    """
    gx = np.multiply.outer(nrm[:, 0], offsets)
    gx += xy[:, 0, None]
    gy = np.multiply.outer(nrm[:, 1], offsets)
    gy += xy[:, 1, None]
    return pixel_planes(transform, gx, gy)


def _bilinear_into(bands: Raster, x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """:func:`sample_grid` at fractional pixel columns ``x`` and rows ``y`` (corner
    convention), into ``out`` (n, bands)."""
    # Array element centres sit at corner + 0.5 pixel.
    x = x - 0.5
    y = y - 0.5
    h, w = bands.shape
    outside = y < -0.5
    outside |= x < -0.5
    outside |= y > h - 0.5
    outside |= x > w - 0.5
    np.clip(x, 0, w - 1.000001, out=x)
    np.clip(y, 0, h - 1.000001, out=y)
    x0 = x.astype(np.intp)
    y0 = y.astype(np.intp)
    x -= x0
    y -= y0
    fx = x.astype(np.float32)
    fy = y.astype(np.float32)
    # After the clip, x0 <= w - 2 on an image at least 2 wide, so x0 + 1 is always in the
    # image; a 1-pixel-wide image has both neighbours in column 0.
    dx = 1 if w > 1 else 0
    dy = w if h > 1 else 0
    n = len(fx)
    i00 = y0
    i00 *= w
    i00 += x0
    quad = np.empty((4, n), np.intp)
    quad[0] = i00
    np.add(i00, dx, out=quad[1])
    np.add(i00, dy, out=quad[2])
    np.add(i00, dy + dx, out=quad[3])
    # One gather of the four neighbours' pixels (all bands), then band-major float32
    # planes so that every weighting below runs over long contiguous rows rather than
    # rows of three values.
    v = np.take(bands.table, quad.reshape(-1), axis=0).T.astype(np.float32, order="C").reshape(bands.nbands, 4, n)
    omfx = 1 - fx
    v[:, 0] *= omfx
    v[:, 1] *= fx
    v[:, 2] *= omfx
    v[:, 3] *= fx
    top = np.add(v[:, 0], v[:, 1])
    bot = np.add(v[:, 2], v[:, 3])
    top *= 1 - fy
    bot *= fy
    top += bot
    out[...] = top.T
    if outside.any():
        out[outside] = np.nan


def sample_mask(mask: np.ndarray | None, transform: tuple, xy: np.ndarray, *, default: bool) -> np.ndarray:
    """Nearest-neighbour lookup of a boolean (rows, cols) mask at map points; off-image -> False."""
    if mask is None:
        raise ValueError("mask required")
    return mask_at_pixels(mask, *pixel_coords(transform, xy))


def mask_at_pixels(mask: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """As :func:`sample_mask`, at fractional pixel columns and rows (corner convention)."""
    col = np.floor(col).astype(np.int64)
    row = np.floor(row).astype(np.int64)
    h, w = mask.shape
    inside = row >= 0
    inside &= col >= 0
    inside &= row < h
    inside &= col < w
    # Gather at clipped indices and clear the outside points afterwards: cheaper than
    # indexing with the boolean mask, and the same answer.
    np.clip(col, 0, w - 1, out=col)
    np.clip(row, 0, h - 1, out=row)
    row *= w
    row += col
    out = np.take(mask.reshape(-1), row)
    out &= inside
    return out


def inside_image(shape: tuple, transform: tuple, xy: np.ndarray) -> np.ndarray:
    return inside_pixels(shape, *pixel_coords(transform, xy))


def inside_pixels(shape: tuple, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Whether fractional pixel coordinates (corner convention) fall inside an image of ``shape``."""
    h, w = shape[:2]
    ok = col >= 0
    ok &= row >= 0
    ok &= col < w
    ok &= row < h
    return ok


def to_features(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, log: bool = False) -> np.ndarray:
    """Raw band values -> (luminance, two opponent chroma channels), scaled to ~[0, 1].

    The chroma channels make a red car on grey ballast stand out even at equal brightness.
    """
    lo = np.asarray(lo)
    scale = np.maximum(hi - lo, 1e-6)
    if (lo.ndim <= 1 and scale.ndim <= 1 and lo.size and (lo == lo.reshape(-1)[0]).all()
            and (scale == scale.reshape(-1)[0]).all()):
        # band_scale gives every band the same scale: subtract and divide by one-element
        # arrays (same dtype and type promotion, hence the same result), one contiguous
        # pass each instead of rows of three.
        lo, scale = lo.reshape(-1)[:1], scale.reshape(-1)[:1]
    v = np.subtract(values, lo)
    v /= scale
    if log:
        # Shading (cloud shadow, a neighbour's shadow, low sun) multiplies brightness; in a
        # log scale it becomes an offset that the local-background difference removes.
        # The +0.3 keeps sensor noise in dark areas from blowing up.
        np.clip(v, 0, None, out=v)
        v += 0.3
        np.log(v, out=v)
        v *= 0.5
        v += 0.6
    if v.shape[-1] == 1:
        return v
    r, g, b = v[..., 0], v[..., 1], v[..., 2]
    # In place, in the operation order of lum = (r + g + b) / 3, (r - b) * 0.8 and
    # (r + b - 2 g) * 0.5.
    out = np.empty(v.shape[:-1] + (3,), dtype=v.dtype)
    lum, c1, c2 = out[..., 0], out[..., 1], out[..., 2]
    np.add(r, g, out=lum)
    lum += b
    lum /= 3.0
    np.subtract(r, b, out=c1)
    c1 *= 0.8
    np.add(r, b, out=c2)
    c2 -= 2.0 * g
    c2 *= 0.5
    return out


def band_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust per-band scale from sampled values (2nd and 98th percentile)."""
    base = values.reshape(-1, values.shape[-1])
    step = len(base) // 400_000 + 1 if len(base) > 400_000 else 1
    flat = base[::step]
    finite = np.isfinite(flat[:, 0])
    for k in range(1, flat.shape[1]):
        finite &= np.isfinite(flat[:, k])
    # The rows kept are every k-th finite row of every step-th sample; gather only those
    # (~40,000) from the contiguous samples rather than copying every finite row first.
    rows = np.flatnonzero(finite)
    if len(rows) == 0:
        return np.zeros(values.shape[-1], np.float32), np.ones(values.shape[-1], np.float32)
    if len(rows) > 40_000:
        rows = rows[:: len(rows) // 40_000 + 1]
    flat = np.take(base, rows * step, axis=0)
    # Both percentiles from one partition of the sample.
    lo, hi = np.percentile(flat, [2, 98], axis=0).astype(np.float32)
    # One scale for all bands keeps colour ratios meaningful.
    lo_all, hi_all = float(lo.min()), float(hi.max())
    return np.full_like(lo, lo_all), np.full_like(hi, max(hi_all, lo_all + 1e-6))
