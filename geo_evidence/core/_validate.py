"""Input checks for the image core: every refusal names the input and the fix."""

from __future__ import annotations

import numpy as np

from geo_evidence.errors import CoreInputError


def validate_inputs(image, transform, tracks, track_names, valid, cloud, excludes):
    """Check and normalise the arguments of :func:`count_railcars`."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 2 or image.shape[1] < 2:
        raise CoreInputError(
            f"image must be a (rows, cols) or (rows, cols, bands) array of at least 2x2 pixels, got shape {image.shape}; "
            "pass a panchromatic band or a channel-last multiband array."
        )
    if image.ndim == 3 and image.shape[2] < 1:
        raise CoreInputError(f"image has no bands (shape {image.shape}); pass at least one band.")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise CoreInputError(f"image dtype {image.dtype} is not numeric; pass integer or float pixel values.")
    for label, m in (("valid", valid), ("cloud", cloud)):
        if m is not None and np.shape(m) != image.shape[:2]:
            raise CoreInputError(f"{label} mask has shape {np.shape(m)} but the image is {image.shape[:2]}; pass a (rows, cols) bool mask matching the image.")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        # NaN pixels are nodata: fold them into the valid mask rather than refuse.
        bad = ~np.isfinite(image) if image.ndim == 2 else ~np.isfinite(image).all(axis=2)
        valid = ~bad if valid is None else (np.asarray(valid, bool) & ~bad)
        image = np.where(np.isfinite(image), image, 0.0).astype(np.float32)
    try:
        tf = tuple(float(v) for v in tuple(transform)[:6])
    except (TypeError, ValueError):
        raise CoreInputError(f"transform must be an affine 6-tuple (a, b, c, d, e, f) of numbers, got {transform!r}.") from None
    if len(tf) != 6 or not all(np.isfinite(tf)):
        raise CoreInputError(f"transform must be 6 finite numbers (a, b, c, d, e, f), got {tf!r}; check the scene's geotransform.")
    if abs(tf[0] * tf[4] - tf[1] * tf[3]) < 1e-12:
        raise CoreInputError(f"transform {tf!r} is singular (zero pixel area); check the scene's geotransform.")
    if tracks is None or len(tracks) == 0:
        raise CoreInputError("no tracks given; pass at least one (N, 2) track centre line in map coordinates.")
    lines = []
    for i, tr in enumerate(tracks):
        arr = np.asarray(tr, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
            raise CoreInputError(f"track {i} must be an (N, 2) array of map (x, y) with N >= 2, got shape {arr.shape}.")
        if not np.isfinite(arr).all():
            raise CoreInputError(f"track {i} has non-finite coordinates; remove NaN/inf vertices.")
        if np.hypot(*np.diff(arr, axis=0).T).sum() < 1.0:
            raise CoreInputError(f"track {i} is shorter than 1 m; check its coordinates and CRS.")
        lines.append(arr)
    if track_names is None:
        names = [f"T{i + 1}" for i in range(len(lines))]
    else:
        names = [str(n) for n in track_names]
        if len(names) != len(lines):
            raise CoreInputError(f"track_names has {len(names)} names for {len(lines)} tracks; give one name per track.")
    shape2 = image.shape[:2]
    out_masks = []
    for label, m in (("valid", valid), ("cloud", cloud)):
        if m is None:
            out_masks.append(None)
            continue
        m = np.asarray(m)
        if m.shape != shape2:
            raise CoreInputError(f"{label} mask has shape {m.shape} but the image is {shape2}; pass a (rows, cols) bool mask matching the image.")
        out_masks.append(m.astype(bool))
    rings = []
    for i, ring in enumerate(excludes or []):
        arr = np.asarray(ring, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3 or not np.isfinite(arr).all():
            raise CoreInputError(f"exclude {i} must be a (K, 2) polygon ring with K >= 3 finite vertices, got shape {arr.shape}.")
        rings.append(arr)
    # The image must overlap at least one track; otherwise nothing can be said.
    return image, tf, lines, names, out_masks[0], out_masks[1], rings
