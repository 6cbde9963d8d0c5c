"""The static claim site: one page per claim with its verdict, chart, evidence and provenance.

See :func:`build_site`. The site works from the file system (``file://``) and from any
static host: relative links only, every script and style bundled, no external request.
"""

from geo_evidence.site.builder import SITE_MARKER, build_site, claim_review_jsonld

__all__ = ["SITE_MARKER", "build_site", "claim_review_jsonld"]
