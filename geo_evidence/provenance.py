"""Provenance manifests: what went into a count run and what came out, by sha256.

``write_manifest`` is called at the end of every count run. ``verify_manifest`` re-hashes
every input (scenes, AOI file, claims file) and output and says what changed, so a number
on the claim site can be traced to the exact bytes it came from.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from geo_evidence import __version__
from geo_evidence._io import atomic_write_json, sha256_file
from geo_evidence.errors import ManifestError

__all__ = ["software_versions", "verify_manifest", "write_manifest"]

MANIFEST_VERSION = 1
_PACKAGES = (
    "numpy", "scipy", "scikit-image", "shapely", "pyproj", "rasterio", "xarray",
    "pandas", "geopandas", "pystac", "pystac-client", "dask", "distributed", "matplotlib",
)


def software_versions() -> dict[str, str]:
    """Versions of Python, GDAL and every library that shapes a count."""
    versions = {"python": platform.python_version(), "geo_evidence": __version__}
    installed = _dist_info_versions()
    for name in _PACKAGES:
        version = installed.get(_normalize(name))
        if version is None:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                version = "not installed"
        versions[name] = version
    try:
        import rasterio

        versions["gdal"] = rasterio.__gdal_version__
    except ImportError:  # pragma: no cover - rasterio is a hard dependency
        versions["gdal"] = "unknown"
    return versions


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info_versions() -> dict[str, str]:
    """Normalised name -> version of every ``NAME-VERSION.dist-info`` folder on sys.path.

    The version in the folder name is the installed version (wheel spec); reading the
    names once replaces one METADATA parse per package (~5 ms each). The first entry on
    sys.path wins, as with :func:`importlib.metadata.version`; anything not found this
    way is looked up with importlib.metadata.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            stem = folder[: -len(".dist-info")] if folder.endswith(".dist-info") else ""
            if stem.count("-") == 1:
                name, version = stem.split("-")
                found.setdefault(_normalize(name), version)
    return found


def _claims_path(aoi) -> Path | None:
    if aoi.path is None:
        return None
    path = aoi.path.with_name(f"{aoi.id}.claims.json")
    return path if path.is_file() else None


def write_manifest(path, *, aoi, source, scenes, outputs, parameters, started) -> Path:
    """Write the manifest of one AOI's count run (atomically) and return its path."""
    path = Path(path)
    base = path.parent
    claims = _claims_path(aoi)
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "aoi": {"id": aoi.id, "path": str(aoi.path) if aoi.path else None, "sha256": aoi.checksum},
        "claims": {"path": str(claims), "sha256": sha256_file(claims)} if claims else None,
        "scene_source": source,
        "scenes": [
            {
                "id": s.id,
                "href": s.href,
                "datetime": s.datetime.isoformat() if s.datetime else None,
                "sha256": s.checksum,
            }
            for s in scenes
        ],
        "parameters": parameters,
        "software": software_versions(),
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]) if sys.argv else None,
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "outputs": [
            {"path": Path(p).resolve().relative_to(base.resolve()).as_posix(), "sha256": sha256_file(p)}
            for p in outputs
        ],
    }
    return atomic_write_json(path, manifest)


def _hash_href(href: str) -> str | None:
    """sha256 of a scene's bytes, or None when it cannot be reached."""
    from geo_evidence.imagery import scene_checksum

    try:
        return scene_checksum(str(href))  # a plain href is always re-hashed, never trusted
    except OSError:
        return None


def verify_manifest(path: str | Path) -> dict[str, Any]:
    """Re-hash every input and output named in a manifest.

    Returns ``{"ok": bool, "checked": int, "problems": [{"kind", "name", "status",
    "expected", "actual"}]}`` where status is ``changed`` or ``missing``.
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest {str(path)!r} does not exist; give the manifest.json written by `geoev count`.") from None
    except ValueError as exc:
        raise ManifestError(f"manifest {str(path)!r} is not JSON ({exc}).") from None
    if not isinstance(manifest, dict) or manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ManifestError(f"{str(path)!r} is not a geo_evidence manifest (manifest_version {MANIFEST_VERSION} expected).")

    checks: list[tuple[str, str, str | None, Any]] = []  # kind, name, expected, how to hash
    aoi = manifest.get("aoi") or {}
    if aoi.get("path") and aoi.get("sha256"):
        checks.append(("aoi", aoi["path"], aoi["sha256"], aoi["path"]))
    claims = manifest.get("claims")
    if claims:
        checks.append(("claims", claims["path"], claims["sha256"], claims["path"]))
    for scene in manifest.get("scenes", []):
        if scene.get("sha256"):
            checks.append(("scene", scene["id"], scene["sha256"], ("href", scene["href"])))
    for out in manifest.get("outputs", []):
        checks.append(("output", out["path"], out["sha256"], path.parent / out["path"]))

    problems = []
    for kind, name, expected, target in checks:
        if isinstance(target, tuple):
            actual = _hash_href(target[1])
        else:
            actual = sha256_file(target) if Path(target).is_file() else None
        if actual is None:
            problems.append({"kind": kind, "name": name, "status": "missing", "expected": expected, "actual": None})
        elif actual != expected:
            problems.append({"kind": kind, "name": name, "status": "changed", "expected": expected, "actual": actual})
    return {"ok": not problems, "checked": len(checks), "problems": problems, "manifest": str(path)}
