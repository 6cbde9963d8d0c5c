"""The frame of a track bundle: samples of all tracks, normals turned one way, free sides.

Used by the coarse-GSD path (geo_evidence/core/_coarse.py) to find the ground beside the
bundle, which never holds a car.
"""

from __future__ import annotations

import numpy as np

from geo_evidence.core._geometry import resample_line

__all__ = ["bundle_frame"]


def bundle_frame(lines, step: float, *, spacing_m: float = 5.0) -> dict:
    """Samples of all track lines every ``step`` m in one frame of the bundle.

    Returns a dict: ``xy`` (N, 2) positions, ``nv`` (N, 2) normals all turned to the same
    side of the bundle, ``tid`` (N,) track index, ``along`` (N,) coordinate along the
    bundle's main direction from its ``centre``, ``u`` that direction, and ``left`` /
    ``right`` (N,) whether another track runs within ~1.8 spacings on that side (False
    marks the bundle's free edges).
    """
    pts, nrm, tan, tid = [], [], [], []
    for k, line in enumerate(lines):
        _, xy, n = resample_line(line, step)
        pts.append(xy)
        nrm.append(n)
        tan.append(np.stack([n[:, 1], -n[:, 0]], axis=-1))
        tid.append(np.full(len(xy), k))
    xy = np.vstack(pts)
    nv = np.vstack(nrm)
    tv = np.vstack(tan)
    tid = np.concatenate(tid)
    centre = xy.mean(axis=0)
    # The bundle's main direction (tangents folded onto one half-plane).
    sgn = np.where(tv @ tv[len(tv) // 2] < 0, -1.0, 1.0)
    u = (tv * sgn[:, None]).mean(axis=0)
    u /= max(np.hypot(*u), 1e-12)
    along = (xy - centre) @ u
    # Every sample's normal is turned to the bundle's normal side, so one lateral shift
    # and one rotation mean the same motion for tracks drawn in either direction.
    n_mean = np.array([-u[1], u[0]])
    nv = nv * np.where(nv @ n_mean < 0, -1.0, 1.0)[:, None]
    from scipy.spatial import cKDTree  # lazy: scipy.spatial costs ~0.2 s at CLI start-up

    tree = cKDTree(xy)
    pairs = tree.query_pairs(1.8 * spacing_m, output_type="ndarray")
    left = np.zeros(len(xy), bool)
    right = np.zeros(len(xy), bool)
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        other = tid[i] != tid[j]
        i, j = i[other], j[other]
        off_ij = ((xy[j] - xy[i]) * nv[i]).sum(1)
        off_ji = ((xy[i] - xy[j]) * nv[j]).sum(1)
        for a, off in ((i, off_ij), (j, off_ji)):
            side = np.abs(off) > 0.5 * spacing_m
            np.logical_or.at(left, a[side & (off > 0)], True)
            np.logical_or.at(right, a[side & (off < 0)], True)
    return {"xy": xy, "nv": nv, "tid": tid, "along": along, "centre": centre, "u": u, "n_mean": n_mean,
            "left": left, "right": right}
