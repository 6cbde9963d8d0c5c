"""Imagery: scene sources and windowed reads, the only layer that opens paths and URLs.

- :func:`list_scenes` lists a folder of GeoTIFFs, a static STAC catalog or a STAC API
  search as :class:`SceneRef` records sorted by acquisition datetime.
- :func:`read_window` reads only the AOI window of a scene into a :class:`SceneWindow`
  (channel-last image, valid and cloud masks, metric transform, tracks in that CRS).
- :func:`scene_checksum` gives the sha256 of a scene's image; :func:`scene_info` what
  its header says (CRS, GSD, size) without reading pixels.
- :func:`default_scene_source` names the bundled simulated scenes of a bundled AOI.
"""

from geo_evidence.imagery.read import (
    DEFAULT_MAX_DATASET_PIXELS,
    DEFAULT_MAX_PIXELS,
    SceneWindow,
    read_window,
    scene_info,
)
from geo_evidence.imagery.sources import (
    SceneRef,
    default_scene_source,
    list_scenes,
    scene_checksum,
)

__all__ = [
    "DEFAULT_MAX_DATASET_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "SceneRef",
    "SceneWindow",
    "default_scene_source",
    "list_scenes",
    "read_window",
    "scene_checksum",
    "scene_info",
]
