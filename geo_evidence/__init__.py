"""geo_evidence: check public claims about rail yards against satellite imagery."""

from geo_evidence.errors import GeoEvidenceError

__version__ = "0.1.0"
__all__ = ["GeoEvidenceError", "__version__"]
