"""The image core: a vectorised railcar counter (arrays and geometry in, records out).

Pure numpy / scipy / scikit-image / shapely; it never opens files. See
:func:`count_railcars`.
"""

from geo_evidence.core._api import CountParams, CountResult, Detection, TrackCount, count_railcars

__all__ = ["CountParams", "CountResult", "Detection", "TrackCount", "count_railcars"]
