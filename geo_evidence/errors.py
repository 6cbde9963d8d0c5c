"""One root exception for everything geo_evidence raises on purpose.

Each subclass also inherits the builtin it resembles, so callers may catch either
``GeoEvidenceError`` ("anything this library refused") or the builtin they already handle.
Messages name the offending input and say how to fix it.
"""

from __future__ import annotations


class GeoEvidenceError(Exception):
    """Root of every error geo_evidence raises deliberately."""


class AOIError(GeoEvidenceError, ValueError):
    """An AOI file or name is missing, malformed or geometrically wrong."""


class SceneSourceError(GeoEvidenceError, ValueError):
    """A scene source (folder, STAC catalog, STAC API) cannot be listed."""


class SceneReadError(GeoEvidenceError, OSError):
    """A scene file cannot be opened or read (corrupt, wrong driver, too large)."""


class NoCoverageError(GeoEvidenceError, ValueError):
    """The AOI window of a scene is empty: the scene does not cover the AOI."""


class CRSError(GeoEvidenceError, ValueError):
    """A coordinate reference system is missing or unusable for the task."""


class CoreInputError(GeoEvidenceError, ValueError):
    """The image core received arrays or geometry it cannot work with."""


class SimulationError(GeoEvidenceError, ValueError):
    """The scene simulator was given impossible parameters."""


class ClaimError(GeoEvidenceError, ValueError):
    """A claims file or claim record is malformed."""


class ManifestError(GeoEvidenceError, ValueError):
    """A provenance manifest is missing, malformed or does not match its files."""


class SchedulerError(GeoEvidenceError, ConnectionError):
    """A dask scheduler address does not answer."""


class ReviewError(GeoEvidenceError, ValueError):
    """An analyst review entry or review.json is malformed or names an unknown scene."""


class OutputExistsError(GeoEvidenceError, FileExistsError):
    """An output folder exists and holds something geo_evidence did not write there."""


class SeriesError(GeoEvidenceError, ValueError):
    """Count records or arguments that cannot make a time series or a baseline."""
