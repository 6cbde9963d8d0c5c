"""Affine transforms and track polylines: pixel <-> map, resampling at a fixed step, normals."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def _to_pixel_into(transform: tuple, mx: np.ndarray, my: np.ndarray, col: np.ndarray, row: np.ndarray) -> None:
    a, b, c, d, e, f = transform
    det = a * e - b * d
    # In-place ufuncs: the ribbons call this on grids of ~10^5 points several times per
    # track, where temporaries dominate the cost. The operations and their order are those
    # of (e*x - b*y)/det and (-d*x + a*y)/det; the rotation terms are skipped on a north-up
    # grid, where they only add +-0.
    x = np.subtract(mx, c)
    y = np.subtract(my, f)
    np.multiply(x, e, out=col)
    np.multiply(y, a, out=row)
    if b != 0.0 or d != 0.0:
        col -= b * y
        row += -d * x
    col /= det
    row /= det


def to_pixel(transform: tuple, xy: np.ndarray) -> np.ndarray:
    """Map (x, y) -> fractional pixel (col, row), corner convention like GDAL."""
    xy = np.asarray(xy)
    out = np.empty(xy.shape[:-1] + (2,), dtype=np.result_type(xy.dtype, 1.0))
    _to_pixel_into(transform, xy[..., 0], xy[..., 1], out[..., 0], out[..., 1])
    return out


def pixel_coords(transform: tuple, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`to_pixel`, but the columns and rows as two contiguous arrays ``xy.shape[:-1]``."""
    xy = np.asarray(xy)
    return pixel_planes(transform, xy[..., 0], xy[..., 1])


def pixel_planes(transform: tuple, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`pixel_coords`, from the map x and y as two arrays of one shape."""
    dtype = np.result_type(x.dtype, 1.0)
    col = np.empty(x.shape, dtype=dtype)
    row = np.empty(x.shape, dtype=dtype)
    _to_pixel_into(transform, x, y, col, row)
    return col, row


def to_map(transform: tuple, cr: np.ndarray) -> np.ndarray:
    """Fractional pixel (col, row) -> map (x, y)."""
    a, b, c, d, e, f = transform
    col = cr[..., 0]
    row = cr[..., 1]
    return np.stack([a * col + b * row + c, d * col + e * row + f], axis=-1)


def gsd_of(transform: tuple) -> float:
    """Ground sample distance: the geometric mean of the two pixel side lengths."""
    a, b, c, d, e, f = transform
    return float(np.sqrt(abs(a * e - b * d)))


def resample_line(line: np.ndarray, step: float, *, smooth_m: float = 3.0):
    """Points every ``step`` metres along a polyline, with unit left normals.

    Returns ``(s, xy, normal)``: arc length (S,), positions (S, 2), left normals (S, 2).
    The tangent is smoothed over ``smooth_m`` so vertices of a digitised curve do not make
    the ribbon kink.
    """
    seg = np.diff(line, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    keep = np.concatenate([[True], seglen > 1e-9])
    line = line[keep]
    seg = np.diff(line, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    total = cum[-1]
    n = max(int(np.floor(total / step)) + 1, 2)
    s = np.linspace(0.0, total, n)
    xy = np.stack([np.interp(s, cum, line[:, 0]), np.interp(s, cum, line[:, 1])], axis=-1)
    idx = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    tan = seg[idx] / seglen[idx, None]
    sig = smooth_m / max(s[1] - s[0], 1e-9)
    if sig > 0.5 and n > 3:
        tan = gaussian_filter1d(tan, sig, axis=0, mode="nearest")
    tan /= np.maximum(np.hypot(tan[:, 0], tan[:, 1]), 1e-12)[:, None]
    normal = np.stack([-tan[:, 1], tan[:, 0]], axis=-1)
    return s, xy, normal


def rect_polygon(xy0: np.ndarray, xy1: np.ndarray, n0: np.ndarray, n1: np.ndarray, half_width: float) -> np.ndarray:
    """A closed 4-corner polygon (5, 2) from two centreline ends and their normals."""
    p = np.array([xy0 + n0 * half_width, xy1 + n1 * half_width, xy1 - n1 * half_width, xy0 - n0 * half_width])
    return np.vstack([p, p[:1]])


def points_in_polygons(points: np.ndarray, rings: list[np.ndarray]) -> np.ndarray:
    """Boolean (S,) mask of points inside any ring (shapely, vectorised)."""
    if not rings:
        return np.zeros(len(points), bool)
    import shapely

    polys = shapely.union_all([shapely.Polygon(r) for r in rings])
    return shapely.contains_xy(polys, points[:, 0], points[:, 1])
