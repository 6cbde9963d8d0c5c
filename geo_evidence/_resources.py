"""Find the bundled AOIs and sample tiles, from a checkout or from an installed wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _bundled_dir(name: str) -> Path:
    # A checkout (or editable install) has the folder beside the package; a regular
    # install carries a copy inside the package as geo_evidence/_bundled/<name>.
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir() and (_PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return checkout
    installed = Path(str(resources.files("geo_evidence"))) / "_bundled" / name
    return installed


def aoi_dir() -> Path:
    """Folder holding the bundled AOI GeoJSON files and their claims files."""
    return _bundled_dir("aoi")


def sample_tiles_dir() -> Path:
    """Folder holding the bundled simulated sample tiles (one sub-folder per AOI)."""
    return _bundled_dir("sample_tiles")
